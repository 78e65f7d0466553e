"""A GRU recurrence for the CPU with the input projection outside the loop.

Keras 3 runs its generic RNN loop on a CPU, and ``GRUCell.call`` multiplies
the input by the kernel inside every step. Here, as in cuDNN, the input
projection of every step (and its bias) is one matrix product before the
loop, the loop carries only ``h·U`` and the gates, and the backward pass
does the same: a hand-written loop yields each step's gate gradients, and
the gradients of ``W`` and ``U`` are each one matrix product over all steps
afterwards.

A step of a small GRU is a few tiny ops, whose dispatch costs about as much
as their arithmetic, and the work outside the loops (the products over all
steps and the gradient's whole-tensor arithmetic) costs as much as the
loops, so both are cut down:

* Tensors are time-major, ``[time, batch, channels]``: the input and the
  output are each transposed once, and every product over all steps reads
  and writes its operands as they lie (a transpose of a whole sequence
  costs about a third of its product).
* The update and reset gates' projections and the candidate's are separate
  products, so no whole-sequence tensor is split (a split is a copy).
* No step tests a mask. The input is right-padded: the forward direction
  runs every step, a row's final state is read at its last real step, and
  the caller drops the pad steps' outputs. The backward direction runs from
  the last step of the time axis to the first, so a row's pad steps come
  first, from the zero state; their update gate is set to exactly 1 there,
  which keeps the state exactly zero and stops every gradient through them.
  Neither direction reverses a tensor.
* The forward loop writes only the states (a TensorArray write costs
  about as much as the step's matrix product); the gradient recomputes
  every step's gates from them at once, with two matrix products.
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


def gru_recurrence(gates_x, candidate_x, recurrent_kernel, recurrent_bias,
                   reverse=False):
  """Runs a GRU recurrence over precomputed input projections, from zero.

  Args:
    gates_x: float ``[time, batch, 2 * units]``: each step's ``x W + b``
      for the update and reset gates, their recurrent biases added.
    candidate_x: float ``[time, batch, units]``: each step's ``x W + b``
      for the candidate.
    recurrent_kernel: ``[units, 3 * units]`` (``U``, Keras's layout).
    recurrent_bias: ``[units]``, the candidate's recurrent bias ``c_h``
      (inside the reset gate's product).
    reverse: run from the last step to the first.

  Returns:
    The state after every step, ``[time, batch, units]``, in the time
    order of the inputs.
  """
  units = recurrent_bias.shape[0]

  @tf.custom_gradient
  def recurrence(gates_x, candidate_x, kernel, bias):
    steps, batch = tf.shape(gates_x)[0], tf.shape(gates_x)[1]
    dtype = gates_x.dtype
    gates_kernel, candidate_kernel = tf.split(kernel, [2 * units, units],
                                              axis=1)
    initial = tf.zeros([batch, units], dtype)
    # The loops' first step, and how to reach the next one.
    first, stride = (steps - 1, -1) if reverse else (0, 1)

    def array():
      return tf.TensorArray(dtype, size=steps,
                            element_shape=tf.TensorShape([None, units]))

    def forward(t, state, states):
      update, reset = tf.split(tf.sigmoid(
          gates_x[t] + tf.matmul(state, gates_kernel)), 2, axis=1)
      candidate = tf.tanh(candidate_x[t] + reset * (
          tf.matmul(state, candidate_kernel) + bias))
      state = candidate + update * (state - candidate)
      return t + stride, state, states.write(t, state)

    # The loop writes only the states: a step's gates are recomputed for
    # all steps at once when the gradient needs them.
    _, _, states = tf.while_loop(
        lambda t, *_: t >= 0 if reverse else t < steps, forward,
        (first, initial, array()))
    states = states.stack()

    def gradient(d_states):
      # The state each step started from.
      previous = (tf.concat([states[1:], initial[tf.newaxis]], axis=0)
                  if reverse else
                  tf.concat([initial[tf.newaxis], states[:-1]], axis=0))
      previous_flat = tf.reshape(previous, [-1, units])

      def recurrent(kernel):  # [time, batch, columns of kernel]
        return tf.reshape(tf.matmul(previous_flat, kernel),
                          [steps, batch, kernel.shape[1]])

      update, reset = tf.split(
          tf.sigmoid(gates_x + recurrent(gates_kernel)), 2, axis=-1)
      candidate_h = recurrent(candidate_kernel) + bias
      candidate = tf.tanh(candidate_x + reset * candidate_h)
      # d(state) -> d(update and reset gate inputs), and d(candidate input)
      # and d(candidate's recurrent product), per step.
      d_candidate = (1 - update) * (1 - tf.square(candidate))
      gate_factors = tf.concat([
          (previous - candidate) * update * (1 - update),
          d_candidate * candidate_h * reset * (1 - reset)], axis=-1)
      candidate_factor = d_candidate * reset
      factors = tf.concat([gate_factors, candidate_factor], axis=-1)
      transposed = tf.transpose(kernel)  # [3u, u]

      def backward(t, d_state, d_carried):
        d_state = d_state + d_states[t]
        d_recurrent = factors[t] * tf.tile(d_state, [1, 3])
        return (t - stride,
                d_state * update[t] + tf.matmul(d_recurrent, transposed),
                d_carried.write(t, d_state))

      _, _, d_carried = tf.while_loop(
          lambda t, *_: t < steps if reverse else t >= 0, backward,
          (steps - 1 - first, initial, array()))
      d_carried = d_carried.stack()  # [time, batch, u]
      d_gates_x = gate_factors * tf.tile(d_carried, [1, 1, 2])
      d_candidate_h = candidate_factor * d_carried
      # One product over every step and row for each block of U, one sum
      # for c_h.
      d_kernel = tf.concat([
          tf.matmul(previous_flat, tf.reshape(d_gates_x, [-1, 2 * units]),
                    transpose_a=True),
          tf.matmul(previous_flat, tf.reshape(d_candidate_h, [-1, units]),
                    transpose_a=True)], axis=1)
      d_bias = tf.reduce_sum(d_candidate_h, axis=[0, 1])
      return d_gates_x, d_candidate * d_carried, d_kernel, d_bias

    return states, gradient

  return recurrence(gates_x, candidate_x, recurrent_kernel, recurrent_bias)


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
  steps = tf.reshape(tf.transpose(inputs, [1, 0, 2]), [-1, channels])
  outputs, finals = [], []
  for direction, cell in enumerate(cells):
    kernel = tf.cast(cell.kernel, dtype)
    bias = tf.cast(cell.bias, dtype)  # [input, recurrent] biases

    def projection(columns, offset):  # [time, batch, columns]
      return tf.reshape(tf.matmul(steps, kernel[:, columns]) + offset,
                        [time, batch, -1])

    # The update and reset gates' recurrent biases add outside the product.
    gates_x = projection(slice(0, 2 * units),
                         bias[0, :2 * units] + bias[1, :2 * units])
    if direction:  # pad steps keep the zero state: an update gate of 1
      real = tf.transpose(tf.sequence_mask(lengths, time))  # [time, batch]
      reset_gate = tf.range(2 * units) >= units
      gates_x = tf.where(real[:, :, tf.newaxis] | reset_gate, gates_x,
                         tf.constant(_KEEP_STATE, dtype))
    states = gru_recurrence(
        gates_x, projection(slice(2 * units, None), bias[0, 2 * units:]),
        tf.cast(cell.recurrent_kernel, dtype), bias[1, 2 * units:],
        reverse=bool(direction))
    if direction:
      finals.append(states[0])
    else:
      last = tf.stack([tf.maximum(lengths - 1, 0), tf.range(batch)], axis=1)
      finals.append(tf.where((lengths > 0)[:, tf.newaxis],
                             tf.gather_nd(states, last), tf.zeros((), dtype)))
    outputs.append(states)
  outputs = outputs[0] if len(outputs) == 1 else tf.concat(outputs, axis=-1)
  return (tf.transpose(outputs, [1, 0, 2]),
          finals[0] if len(finals) == 1 else tf.concat(finals, axis=-1))
