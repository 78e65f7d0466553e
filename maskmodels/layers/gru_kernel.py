"""A GRU recurrence for the CPU over packed sequences.

Keras 3 runs its generic RNN loop on a CPU, and ``GRUCell.call`` multiplies
the input by the kernel inside every step, for every row, pad steps
included. Here, as in cuDNN and PyTorch's packed sequences:

* **Only real steps are computed, in any padding layout.** The rows are
  sorted by length, longest first, so the rows still running at step ``t``
  are a prefix of the batch, and their real steps, wherever the mask puts
  them, are packed step by step into ``[real steps, channels]``, one
  gather: the state shrinks as rows end, and a batch of random lengths
  costs about half of its padded size. The outputs go back where their
  steps were with another gather (pad steps read a zero row), and each
  gather's gradient is the other gather, not a scatter.
* **The backward direction is a forward one** over each row's steps read in
  reverse (another gather of the same input), so both directions run the
  same loop, and a row's final state is its state at its last step.
* **The input projection of every step (and its bias) is one matrix product
  before the loop**, which carries only ``h·U`` and the gates. The forward
  loop writes only the states; the gradient recomputes every step's gates
  from them at once with two products, and its loop carries only the
  state's gradient: the factors that turn it into the gates' gradients come
  from those gates in a few whole-tensor ops before the loop, and ``dW``
  and ``dU`` are each one product over all steps after it.
* The update and reset gates' products and the candidate's are separate,
  so no whole-sequence tensor is split (a split is a copy); the two
  directions of a bidirectional layer are two independent loops, which
  TensorFlow runs side by side.

XLA needs static shapes, which a shrinking state and a packed length are
not, so a function traced for XLA (``jit_compile``, TPU) runs the same
arithmetic over the right-padded, time-major batch instead
(:func:`gru_recurrence`): every step of every row, the backward direction
from the last step of the time axis, where a row's pad steps come first
from the zero state with an update gate of exactly 1, which keeps the state
zero and stops every gradient through them.

The arithmetic is Keras's GRU with ``reset_after=True`` (Keras's default
and cuDNN's), gate order ``[z, r, h]``:

    z = sigmoid(x W_z + b_z + h U_z + c_z)
    r = sigmoid(x W_r + b_r + h U_r + c_r)
    n = tanh(x W_h + b_h + r * (h U_h + c_h))
    h' = z * h + (1 - z) * n
"""

import tensorflow as tf
from tensorflow.python.ops import control_flow_util  # pylint: disable=g-direct-tensorflow-import

from maskmodels import masking

# An update-gate input whose sigmoid is exactly 1 in every float type: the
# step keeps its state, and no gradient passes through the gate.
_KEEP_STATE = 1e4


def _step(gates_x, candidate_x, state, gates_kernel, candidate_kernel, bias):
  """One GRU step from its input projections: ``[rows, 2u]``, ``[rows, u]``
  and the state ``[rows, u]`` -> the next state ``[rows, u]``."""
  update, reset = tf.split(tf.sigmoid(
      gates_x + tf.matmul(state, gates_kernel)), 2, axis=1)
  candidate = tf.tanh(candidate_x + reset * (
      tf.matmul(state, candidate_kernel) + bias))
  return candidate + update * (state - candidate)


def _gradient_factors(gates_x, candidate_x, previous, kernel, bias):
  """Every step's gates, recomputed at once, and what turns a state's
  gradient into its gates' gradients.

  Args:
    gates_x, candidate_x: the steps' input projections, ``[..., 2u]`` and
      ``[..., u]``.
    previous: the state each step started from, ``[..., u]``.
    kernel, bias: ``U`` ``[u, 3u]`` and ``c_h`` ``[u]``.

  Returns:
    ``(update, gate_factors, candidate_factor, d_candidate)``: the update
    gate ``[..., u]``; ``d(gate inputs) = gate_factors * [d h', d h']``;
    ``d(h U_h + c_h) = candidate_factor * d h'``; ``d(candidate input) =
    d_candidate * d h'``.
  """
  units = bias.shape[0]
  gates_kernel, candidate_kernel = tf.split(kernel, [2 * units, units], axis=1)
  update, reset = tf.split(
      tf.sigmoid(gates_x + _times(previous, gates_kernel)), 2, axis=-1)
  candidate_h = _times(previous, candidate_kernel) + bias
  candidate = tf.tanh(candidate_x + reset * candidate_h)
  d_candidate = (1 - update) * (1 - tf.square(candidate))
  gate_factors = tf.concat([
      (previous - candidate) * update * (1 - update),
      d_candidate * candidate_h * reset * (1 - reset)], axis=-1)
  return update, gate_factors, d_candidate * reset, d_candidate


def _times(x, kernel):
  """``x [..., u] · kernel [u, k]`` -> ``[..., k]``, as one product."""
  if x.shape.rank == 2:
    return tf.matmul(x, kernel)
  shape = tf.shape(x)
  return tf.reshape(tf.matmul(tf.reshape(x, [-1, shape[-1]]), kernel),
                    tf.concat([shape[:-1], [kernel.shape[1]]], axis=0))


def _weight_gradients(previous, d_gates_x, d_candidate_h):
  """``dU`` (one product over every step for each block) and ``dc_h``."""
  units = d_candidate_h.shape[-1]
  previous = tf.reshape(previous, [-1, units])
  d_kernel = tf.concat([
      tf.matmul(previous, tf.reshape(d_gates_x, [-1, 2 * units]),
                transpose_a=True),
      tf.matmul(previous, tf.reshape(d_candidate_h, [-1, units]),
                transpose_a=True)], axis=1)
  return d_kernel, tf.reduce_sum(tf.reshape(d_candidate_h, [-1, units]), 0)


def packed_gru_recurrence(gates_x, candidate_x, counts, recurrent_kernel,
                          recurrent_bias, initial=None):
  """Runs a GRU recurrence over packed steps, each row from its initial
  state (zeros unless given).

  The steps are packed step by step: first every row's step 0, then step 1
  of the rows that have one, and so on; the rows running at step ``t`` are
  always the first ``counts[t]`` (rows sorted by length, longest first).

  Args:
    gates_x: float ``[real steps, 2 * units]``: each step's ``x W + b`` for
      the update and reset gates, their recurrent biases added.
    candidate_x: float ``[real steps, units]``: each step's ``x W + b`` for
      the candidate.
    counts: int32 ``[steps]``, rows running at each step, non-increasing,
      summing to the real steps.
    recurrent_kernel: ``[units, 3 * units]`` (``U``, Keras's layout).
    recurrent_bias: ``[units]``, the candidate's recurrent bias ``c_h``
      (inside the reset gate's product).
    initial: ``[rows, units]``, each row's state before its first step, in
      the rows' sorted order (the first ``counts[0]`` run); None: zeros.

  Returns:
    The state after every step, ``[real steps, units]``, packed the same.
  """
  units = recurrent_bias.shape[0]
  if initial is None:
    initial = tf.zeros([tf.reduce_sum(counts[:1]), units], gates_x.dtype)

  @tf.custom_gradient
  def recurrence(gates_x, candidate_x, kernel, bias, initial):
    dtype = gates_x.dtype
    steps = tf.size(counts)
    offsets = tf.cumsum(counts, exclusive=True)
    first_rows = tf.reduce_sum(counts[:1])  # 0 without steps
    start = initial[:first_rows]
    gates_kernel, candidate_kernel = tf.split(kernel, [2 * units, units],
                                              axis=1)

    # The state's rows change from step to step.
    invariants = (tf.TensorShape([]), tf.TensorShape([None, units]),
                  tf.TensorShape(None))

    # Each step's first packed row and rows, as tf.slice takes them: a
    # step reads two gathered vectors, not a dozen scalar ops.
    begins = tf.stack([offsets, tf.zeros_like(offsets)], axis=1)
    sizes = tf.stack([counts, -tf.ones_like(counts)], axis=1)

    def rows_of(packed, begin, size):  # a step's rows of a packed tensor
      return tf.slice(packed, begin, size)

    def array():  # step t's rows at t + 1, after no rows (concat needs one)
      return tf.TensorArray(
          dtype, size=steps + 1, infer_shape=False,
          element_shape=tf.TensorShape([None, units])).write(
              0, tf.zeros([0, units], dtype))

    def forward(t, state, states):
      begin, size = tf.gather(begins, t), tf.gather(sizes, t)
      state = _step(rows_of(gates_x, begin, size),
                    rows_of(candidate_x, begin, size),
                    tf.slice(state, [0, 0], size), gates_kernel,
                    candidate_kernel, bias)
      # A step's slices have no static width: with one unit, broadcasting
      # could not tell the state's.
      state.set_shape([None, units])
      return t + 1, state, states.write(t + 1, state)

    _, _, states = tf.while_loop(
        lambda t, *_: t < steps, forward, (0, start, array()),
        shape_invariants=invariants)
    states = states.concat()

    def gradient(d_states):
      # The state each step started from: the same row's state one step
      # before (its initial state at step 0), read from behind them.
      step_of = tf.repeat(tf.range(steps), counts)
      rows_before = tf.gather(tf.concat([counts[:1], counts], axis=0),
                              step_of)
      previous = tf.gather(
          tf.concat([start, states], axis=0),
          tf.range(tf.size(step_of)) + first_rows - rows_before)
      update, gate_factors, candidate_factor, d_candidate = (
          _gradient_factors(gates_x, candidate_x, previous, kernel, bias))
      factors = tf.concat([gate_factors, candidate_factor], axis=-1)
      transposed = tf.transpose(kernel)  # [3u, u]

      # Rows whose last step is t join the backward loop there, with no
      # gradient from later steps: zero rows padded below the carried ones.
      joining = counts - tf.concat([counts[1:], counts[-1:]], axis=0)
      zeros = tf.zeros_like(counts)
      paddings = tf.reshape(tf.stack([zeros, joining, zeros, zeros], axis=1),
                            [-1, 2, 2])

      def backward(t, d_state, d_carried):
        begin, size = tf.gather(begins, t), tf.gather(sizes, t)
        d_state = rows_of(d_states, begin, size) + tf.pad(
            d_state, tf.gather(paddings, t))
        d_recurrent = rows_of(factors, begin, size) * tf.tile(d_state, [1, 3])
        carried = (d_state * rows_of(update, begin, size)
                   + tf.matmul(d_recurrent, transposed))
        carried.set_shape([None, units])
        return t - 1, carried, d_carried.write(t + 1, d_state)

      # No gradient comes from after the last step; what the loop carries
      # out of step 0 is the initial states'.
      last_rows = tf.reduce_sum(counts[-1:])
      _, d_start, d_carried = tf.while_loop(
          lambda t, *_: t >= 0, backward,
          (steps - 1, tf.zeros([last_rows, units], dtype), array()),
          shape_invariants=invariants)
      d_carried = d_carried.concat()  # [real steps, u]
      d_gates_x = gate_factors * tf.tile(d_carried, [1, 2])
      d_kernel, d_bias = _weight_gradients(
          previous, d_gates_x, candidate_factor * d_carried)
      d_initial = tf.pad(d_start, [[0, tf.shape(initial)[0] -
                                    tf.shape(d_start)[0]], [0, 0]])
      return (d_gates_x, d_candidate * d_carried, d_kernel, d_bias,
              d_initial)

    return states, gradient

  return recurrence(gates_x, candidate_x, recurrent_kernel, recurrent_bias,
                    initial)


def gru_recurrence(gates_x, candidate_x, recurrent_kernel, recurrent_bias,
                   reverse=False, initial=None):
  """Runs a GRU recurrence over a padded, time-major batch, from each
  row's initial state (zeros unless given).

  Static shapes throughout, for XLA.

  Args:
    gates_x: float ``[time, batch, 2 * units]``: each step's ``x W + b``
      for the update and reset gates, their recurrent biases added.
    candidate_x: float ``[time, batch, units]``: each step's ``x W + b``
      for the candidate.
    recurrent_kernel: ``[units, 3 * units]`` (``U``, Keras's layout).
    recurrent_bias: ``[units]``, the candidate's recurrent bias ``c_h``.
    reverse: run from the last step to the first.
    initial: ``[batch, units]``, the state before the first step; None:
      zeros.

  Returns:
    The state after every step, ``[time, batch, units]``, in the time
    order of the inputs.
  """
  units = recurrent_bias.shape[0]
  if initial is None:
    initial = tf.zeros([tf.shape(gates_x)[1], units], gates_x.dtype)

  @tf.custom_gradient
  def recurrence(gates_x, candidate_x, kernel, bias, initial):
    steps = tf.shape(gates_x)[0]
    dtype = gates_x.dtype
    gates_kernel, candidate_kernel = tf.split(kernel, [2 * units, units],
                                              axis=1)
    # The loops' first step, and how to reach the next one.
    first, stride = (steps - 1, -1) if reverse else (0, 1)

    def array():
      return tf.TensorArray(dtype, size=steps,
                            element_shape=tf.TensorShape([None, units]))

    def forward(t, state, states):
      state = _step(gates_x[t], candidate_x[t], state, gates_kernel,
                    candidate_kernel, bias)
      return t + stride, state, states.write(t, state)

    _, _, states = tf.while_loop(
        lambda t, *_: t >= 0 if reverse else t < steps, forward,
        (first, initial, array()))
    states = states.stack()

    def gradient(d_states):
      # The state each step started from.
      previous = (tf.concat([states[1:], initial[tf.newaxis]], axis=0)
                  if reverse else
                  tf.concat([initial[tf.newaxis], states[:-1]], axis=0))
      update, gate_factors, candidate_factor, d_candidate = (
          _gradient_factors(gates_x, candidate_x, previous, kernel, bias))
      factors = tf.concat([gate_factors, candidate_factor], axis=-1)
      transposed = tf.transpose(kernel)  # [3u, u]

      def backward(t, d_state, d_carried):
        d_state = d_state + d_states[t]
        d_recurrent = factors[t] * tf.tile(d_state, [1, 3])
        return (t - stride,
                d_state * update[t] + tf.matmul(d_recurrent, transposed),
                d_carried.write(t, d_state))

      _, d_initial, d_carried = tf.while_loop(
          lambda t, *_: t < steps if reverse else t >= 0, backward,
          (steps - 1 - first, tf.zeros_like(initial), array()))
      d_carried = d_carried.stack()  # [time, batch, u]
      d_gates_x = gate_factors * tf.tile(d_carried, [1, 1, 2])
      d_kernel, d_bias = _weight_gradients(
          previous, d_gates_x, candidate_factor * d_carried)
      return (d_gates_x, d_candidate * d_carried, d_kernel, d_bias,
              d_initial)

    return states, gradient

  return recurrence(gates_x, candidate_x, recurrent_kernel, recurrent_bias,
                    initial)


def gru_sequences(inputs, mask, cells, initial_states=None):
  """A (bi)directional GRU over the real steps of ``inputs``.

  Args:
    inputs: float ``[batch, time, channels]``, in any padding layout (pad
      steps are never read: they may hold anything, NaN included).
    mask: bool ``[batch, time]``, True = real step.
    cells: Keras ``GRUCell``s with ``reset_after=True``, forward first (a
      second one reads each row backwards); their variables are used as
      they are, cast to the inputs' dtype.
    initial_states: one ``[batch, units]`` per cell, each row's state
      before its first real step (a decoder's, from its source); None:
      zeros.

  Returns:
    ``(outputs, final)``: ``[batch, time, units * directions]``, each real
    step's state where that step was, the directions concatenated, pad
    steps zero; and ``[batch, units * directions]``: the forward state after
    the last real step and the backward one after the first (zeros for an
    empty row).
  """
  run = _padded if _tracing_for_xla() else _packed
  return run(inputs, mask, cells, initial_states or [None] * len(cells))


def _tracing_for_xla():
  """Whether the graph being built will be compiled by XLA."""
  return control_flow_util.GraphOrParentsInXlaContext(
      tf.compat.v1.get_default_graph())


def _projections(x, cell, dtype):
  """A cell's input projections of ``x [..., channels]``: the gates'
  ``[..., 2u]`` (their recurrent biases added) and the candidate's
  ``[..., u]``."""
  units = cell.units
  kernel = tf.cast(cell.kernel, dtype)
  bias = tf.cast(cell.bias, dtype)  # [input, recurrent] biases
  return (_times(x, kernel[:, :2 * units])
          + (bias[0, :2 * units] + bias[1, :2 * units]),
          _times(x, kernel[:, 2 * units:]) + bias[0, 2 * units:])


def _recurrent_weights(cell, dtype):
  """``U`` ``[u, 3u]`` and ``c_h`` ``[u]`` of a cell, in ``dtype``."""
  return (tf.cast(cell.recurrent_kernel, dtype),
          tf.cast(cell.bias[1, 2 * cell.units:], dtype))


def _packed(inputs, mask, cells, initial_states):
  """:func:`gru_sequences` over packed real steps."""
  batch, time = tf.shape(inputs)[0], tf.shape(inputs)[1]
  lengths = masking.lengths_from_mask(mask)
  # Each row's k-th real step, flattened: [batch * time].
  real_steps = tf.reshape(masking.right_padding_permutation(mask)
                          + tf.range(batch)[:, tf.newaxis] * time, [-1])
  order = tf.argsort(lengths, direction="DESCENDING", stable=True)
  sorted_lengths = tf.gather(lengths, order)
  running = tf.sequence_mask(sorted_lengths, tf.reduce_max(
      tf.concat([lengths, [0]], axis=0)))  # [batch, steps]
  counts = tf.reduce_sum(tf.cast(running, tf.int32), axis=0)
  step_and_row = tf.cast(tf.where(tf.transpose(running)), tf.int32)
  step, row = step_and_row[:, 0], step_and_row[:, 1]
  real = tf.shape(step)[0]
  first = tf.gather(order, row) * time  # each packed step's row, flattened
  # Where each packed step lies in the flattened inputs, forwards and
  # backwards, and where each input step lies among the packed ones (the
  # pad steps, and one more, at ``real``: a zero row).
  places = [tf.gather(real_steps, first + step),
            tf.gather(real_steps,
                      first + tf.gather(sorted_lengths, row) - 1 - step)]
  spots = [tf.tensor_scatter_nd_update(
      tf.fill([batch * time + 1], real), place[:, tf.newaxis],
      tf.range(real)) for place in places]
  # A row's final states, forwards after its last real step and backwards
  # after its first, are both its last packed step (zeros for an empty row).
  last = tf.gather(spots[0], tf.gather(
      tf.concat([real_steps, [batch * time]], axis=0),
      tf.where(lengths > 0, tf.range(batch) * time + lengths - 1,
               batch * time)))
  flat = tf.reshape(inputs, [batch * time, tf.shape(inputs)[2]])
  outputs, finals = [], []
  for cell, place, spot, initial in zip(cells, places, spots,
                                       initial_states):
    states = packed_gru_recurrence(
        *_projections(_moved_rows(flat, place, spot[:-1], zero_row=False),
                      cell, inputs.dtype),
        counts, *_recurrent_weights(cell, inputs.dtype),
        initial=None if initial is None else tf.gather(
            tf.cast(initial, inputs.dtype), order))
    outputs.append(tf.reshape(_moved_rows(states, spot[:-1], place),
                              [batch, time, cell.units]))
    finals.append(_moved_rows(states, last, None))
  return _concat(outputs), _concat(finals)


def _moved_rows(values, index, adjoint, zero_row=True):
  """``values [n, c]`` gathered by ``index [m]``, where (if ``zero_row``)
  the index ``n`` reads a row of zeros.

  When the gather is one-to-one, ``adjoint`` (``[n]``, into ``[m]``) gathers
  its gradient back, instead of the scatter ``tf.gather``'s gradient makes;
  None keeps that one. Of the two, only the one that leaves rows out reads
  a zero row (the index ``m`` in ``adjoint`` when ``zero_row`` is False):
  appending one copies the whole tensor.
  """
  def gather(x, rows, pad):
    if pad:
      x = tf.concat([x, tf.zeros([1, tf.shape(x)[1]], x.dtype)], axis=0)
    return tf.gather(x, rows)

  if adjoint is None:
    return gather(values, index, zero_row)

  @tf.custom_gradient
  def moved(values):
    return (gather(values, index, zero_row),
            lambda d: gather(d, adjoint, not zero_row))

  return moved(values)


def _padded(inputs, mask, cells, initial_states):
  """:func:`gru_sequences` over the padded batch, right-padded first."""
  inputs, packed_mask, perm = masking.to_right_padded(
      masking.apply_mask(inputs, mask), mask)
  time = tf.shape(inputs)[1]
  # An empty time axis runs one step, which nothing reads (the pad and the
  # slice forward their input unchanged when the axis is not empty).
  inputs = tf.pad(inputs, [[0, 0], [0, tf.maximum(0, 1 - time)], [0, 0]])
  outputs, final = _padded_steps(
      inputs, masking.lengths_from_mask(packed_mask), cells, initial_states)
  outputs = masking.apply_mask(outputs[:, :time], packed_mask)
  return masking.restore_order(outputs, perm), final


def _padded_steps(inputs, lengths, cells, initial_states):
  """:func:`_padded` on a time axis of at least one step."""
  dtype = inputs.dtype
  batch, time = tf.shape(inputs)[0], tf.shape(inputs)[1]
  steps = tf.transpose(inputs, [1, 0, 2])  # [time, batch, channels]
  outputs, finals = [], []
  for direction, (cell, initial) in enumerate(zip(cells, initial_states)):
    gates_x, candidate_x = _projections(steps, cell, dtype)
    if direction:  # pad steps keep the zero state: an update gate of 1
      real = tf.transpose(tf.sequence_mask(lengths, time))  # [time, batch]
      reset_gate = tf.range(2 * cell.units) >= cell.units
      gates_x = tf.where(real[:, :, tf.newaxis] | reset_gate, gates_x,
                         tf.constant(_KEEP_STATE, dtype))
    states = gru_recurrence(gates_x, candidate_x,
                            *_recurrent_weights(cell, dtype),
                            reverse=bool(direction), initial=None if (
                                initial is None) else tf.cast(initial,
                                                              dtype))
    if direction:
      finals.append(states[0])
    else:
      last = tf.stack([tf.maximum(lengths - 1, 0), tf.range(batch)], axis=1)
      finals.append(tf.where((lengths > 0)[:, tf.newaxis],
                             tf.gather_nd(states, last), tf.zeros((), dtype)))
    outputs.append(states)
  return tf.transpose(_concat(outputs), [1, 0, 2]), _concat(finals)


def _concat(tensors):
  return tensors[0] if len(tensors) == 1 else tf.concat(tensors, axis=-1)
