"""A GRU recurrence for the CPU with the input projection outside the loop.

Keras 3 runs its generic RNN loop on a CPU, and ``GRUCell.call`` multiplies
the input by the kernel inside every step. Here, as in cuDNN, the input
projection of every step (and its bias) is one matrix product before the
loop, the loop carries only ``h·U`` and the gates, and the backward pass
does the same: a hand-written loop yields each step's gate gradients, and
the gradients of ``W`` and ``U`` are each one matrix product over all steps
afterwards.

A step of a small GRU is a few tiny ops, whose dispatch costs more than
their arithmetic, so each step is cut down to what it needs and the rest
is done once, on all steps together:

* A state is held units-major, ``[units, batch]``, so splitting the gates
  apart copies contiguous blocks (splits along a small matrix's last axis
  cost more than its product).
* No step tests a mask. The input is right-padded: the forward direction
  runs every step, a row's final state is read at its last real step, and
  the caller drops the pad steps' outputs. The backward direction reads
  the whole time axis reversed, so a row's pad steps come first, from the
  zero state; their update gate is set to exactly 1 there, which keeps the
  state exactly zero and stops every gradient through them.
* The forward loop writes only the states (a TensorArray write costs
  about as much as the step's matrix product); the gradient recomputes
  every step's gates from them at once, with one matrix product.
* The backward loop carries only the state's gradient: the factors that
  turn it into the gates' gradients come from those gates in a few
  whole-tensor ops before the loop, and the gates' gradients, ``dW`` and
  ``dU`` in a few after it.
* The two directions of a bidirectional layer are two independent loops,
  which TensorFlow runs side by side (one batched loop was slower on two
  cores).

The arithmetic is Keras's GRU with ``reset_after=True`` (Keras's default
and cuDNN's), gate order ``[z, r, h]``:

    z = sigmoid(x W_z + b_z + h U_z + c_z)
    r = sigmoid(x W_r + b_r + h U_r + c_r)
    n = tanh(x W_h + b_h + r * (h U_h + c_h))
    h' = z * h + (1 - z) * n
"""

import tensorflow as tf

# An update-gate input whose sigmoid is exactly 1 in every float type: the
# step keeps its state, and no gradient passes through the gate.
_KEEP_STATE = 1e4


def gru_recurrence(projected, recurrent_kernel, recurrent_bias):
  """Runs a GRU recurrence over precomputed input projections, from zero.

  Tensors are time-major and units-major.

  Args:
    projected: float ``[time, 3 * units, batch]``: each step's ``x W + b``
      for the update, reset and candidate gates, the first two with their
      recurrent biases added.
    recurrent_kernel: ``[units, 3 * units]`` (``U``, Keras's layout).
    recurrent_bias: ``[units, 1]``, the candidate's recurrent bias ``c_h``
      (inside the reset gate's product).

  Returns:
    The state after every step, ``[time, units, batch]``.
  """
  units = recurrent_bias.shape[0]

  @tf.custom_gradient
  def recurrence(projected, kernel, bias):
    steps, batch = tf.shape(projected)[0], tf.shape(projected)[-1]
    dtype = projected.dtype
    transposed = tf.transpose(kernel)  # [3u, u]
    initial = tf.zeros([units, batch], dtype)

    def array():
      return tf.TensorArray(dtype, size=steps,
                            element_shape=tf.TensorShape([units, None]))

    def flat(x, rows):  # [time, rows, batch] -> [rows, time * batch]
      return tf.reshape(tf.transpose(x, [1, 0, 2]), [rows, -1])

    def gates(projected, recurrent):
      """Update and reset gates, the candidate and its recurrent input."""
      gates_x, candidate_x = tf.split(projected, [2 * units, units], axis=-2)
      gates_h, candidate_h = tf.split(recurrent, [2 * units, units], axis=-2)
      update, reset = tf.split(tf.sigmoid(gates_x + gates_h), 2, axis=-2)
      candidate_h = candidate_h + bias
      return update, reset, tf.tanh(candidate_x + reset * candidate_h), (
          candidate_h)

    def forward(t, state, states):
      update, _, candidate, _ = gates(projected[t],
                                      tf.matmul(transposed, state))
      state = candidate + update * (state - candidate)
      return t + 1, state, states.write(t, state)

    # The loop writes only the states: a step's gates are recomputed for
    # all steps at once when the gradient needs them.
    _, _, states = tf.while_loop(lambda t, *_: t < steps, forward,
                                 (tf.constant(0), initial, array()))
    states = states.stack()

    def gradient(d_states):
      previous = tf.concat([initial[tf.newaxis], states[:-1]], axis=0)
      previous_flat = flat(previous, units)
      recurrent = tf.transpose(tf.reshape(
          tf.matmul(transposed, previous_flat),
          [3 * units, steps, batch]), [1, 0, 2])  # [time, 3u, batch]
      update, reset, candidate, candidate_h = gates(projected, recurrent)
      # d(state) -> d(gate inputs), per step: [update, reset, candidate],
      # and d(recurrent candidate input), for U's candidate block.
      d_candidate = (1 - update) * (1 - tf.square(candidate))
      factors = tf.stack([
          (previous - candidate) * update * (1 - update),
          d_candidate * candidate_h * reset * (1 - reset),
          d_candidate * reset], axis=1)  # [time, 3, units, batch]

      def backward(t, d_state, d_carried):
        d_state = d_state + d_states[t]
        d_recurrent = tf.reshape(factors[t] * d_state, [3 * units, -1])
        return (t - 1, d_state * update[t] + tf.matmul(kernel, d_recurrent),
                d_carried.write(t, d_state))

      _, _, d_carried = tf.while_loop(
          lambda t, *_: t >= 0, backward,
          (steps - 1, initial, array()))
      d_carried = d_carried.stack()[:, tf.newaxis]  # [time, 1, u, batch]
      d_recurrent = factors * d_carried
      d_projected = tf.concat([d_recurrent[:, :2], d_candidate[:, tf.newaxis]
                               * d_carried], axis=1)

      # One product over every step and row for U, one sum for c_h.
      d_kernel = tf.matmul(previous_flat, flat(tf.reshape(
          d_recurrent, [steps, 3 * units, -1]), 3 * units), transpose_b=True)
      d_bias = tf.reduce_sum(d_recurrent[:, 2], axis=[0, 2])[:, tf.newaxis]
      return (tf.reshape(d_projected, [steps, 3 * units, -1]), d_kernel,
              d_bias)

    return states, gradient

  return recurrence(projected, recurrent_kernel, recurrent_bias)


def gru_sequences(inputs, lengths, cells):
  """A (bi)directional GRU over right-padded inputs.

  Args:
    inputs: float ``[batch, time, channels]``, right-padded (the real steps
      of each row first).
    lengths: int32 ``[batch]``, real steps per row.
    cells: Keras ``GRUCell``s with ``reset_after=True``, forward first (a
      second one reads each row backwards); their variables are used as
      they are, cast to the inputs' dtype.

  Returns:
    ``(outputs, final)``: ``[batch, time, units * directions]``, each real
    step's state, the directions concatenated (pad steps hold values the
    caller must drop), and ``[batch, units * directions]``: the forward
    state after the last real step and the backward one after the first
    (zeros for an empty row).
  """
  time = tf.shape(inputs)[1]
  # An empty time axis runs one step, which nothing reads (the pad and the
  # slice forward their input unchanged when the axis is not empty).
  outputs, final = _bidirectional(
      tf.pad(inputs, [[0, 0], [0, tf.maximum(0, 1 - time)], [0, 0]]),
      lengths, cells)
  return outputs[:, :time], final


def _bidirectional(inputs, lengths, cells):
  """:func:`gru_sequences` on a time axis of at least one step."""
  dtype = inputs.dtype
  units = cells[0].units
  batch, time = tf.shape(inputs)[0], tf.shape(inputs)[1]
  channels = inputs.shape[-1] or tf.shape(inputs)[-1]
  steps = tf.reshape(tf.transpose(inputs, [2, 1, 0]), [channels, -1])
  outputs, finals = [], []
  for direction, cell in enumerate(cells):
    if direction:  # the whole time axis reversed: the pad steps first
      steps = tf.reshape(tf.reverse(tf.reshape(
          steps, [channels, time, batch]), [1]), [channels, -1])
    bias = tf.cast(cell.bias, dtype)  # [input, recurrent] biases
    # The update and reset gates' recurrent biases add outside the product.
    input_bias = bias[0] + tf.concat([bias[1, :2 * units],
                                      tf.zeros([units], dtype)], axis=0)
    projected = tf.matmul(tf.cast(cell.kernel, dtype), steps,
                          transpose_a=True) + input_bias[:, tf.newaxis]
    projected = tf.transpose(tf.reshape(projected, [3 * units, time, batch]),
                             [1, 0, 2])  # [time, 3u, batch]
    if direction:  # pad steps keep the zero state: an update gate of 1
      real = tf.reverse(tf.transpose(tf.sequence_mask(lengths, time)), [0])
      rows = tf.range(3 * units) < units
      projected = tf.where(real[:, tf.newaxis, :] | ~rows[:, tf.newaxis],
                           projected, tf.constant(_KEEP_STATE, dtype))
    states = gru_recurrence(projected, tf.cast(cell.recurrent_kernel, dtype),
                            bias[1, 2 * units:, tf.newaxis])
    if direction:
      finals.append(tf.transpose(states[-1]))
      states = tf.reverse(states, [0])
    else:
      last = tf.stack([tf.maximum(lengths - 1, 0), tf.range(batch)], axis=1)
      finals.append(tf.where(
          (lengths > 0)[:, tf.newaxis],
          tf.gather_nd(tf.transpose(states, [0, 2, 1]), last),
          tf.zeros((), dtype)))
    outputs.append(states)
  outputs = outputs[0] if len(outputs) == 1 else tf.concat(outputs, axis=1)
  return (tf.transpose(outputs, [2, 0, 1]),
          finals[0] if len(finals) == 1 else tf.concat(finals, axis=-1))
