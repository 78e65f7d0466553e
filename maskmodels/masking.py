"""Mask utilities: the one place where mask rules are written down.

Conventions used throughout maskmodels:

* A mask is a ``bool`` tensor ``[batch, time]``; ``True`` marks a real step.
* ``mask=None`` means every step is real.
* The internal layout is *right-padded*: real steps first, padding after.
  Left-padded (or holey) input is packed once with :func:`to_right_padded`.
"""

import tensorflow as tf

from maskmodels import graph as _graph  # noqa: F401  (AutoGraph leaves us be)

PADDING_MODES = ("same", "valid", "causal")


def mask_from_ids(ids, pad_id=0):
  """Mask of the real steps of token ids.

  Args:
    ids: int tensor ``[batch, time]``.
    pad_id: the id that marks padding.

  Returns:
    bool tensor ``[batch, time]``, True where ``ids != pad_id``.
  """
  return tf.not_equal(ids, tf.cast(pad_id, ids.dtype))


def full_mask(inputs):
  """An all-True mask ``[batch, time]`` for ``inputs`` ``[batch, time, ...]``."""
  shape = tf.shape(inputs)
  return tf.ones(shape[:2], dtype=tf.bool)


def ensure_mask(inputs, mask):
  """Returns ``mask`` as bool, or an all-True mask for ``inputs`` if None."""
  if mask is None:
    return full_mask(inputs)
  return tf.cast(mask, tf.bool)


def lengths_from_mask(mask):
  """Number of real steps per sequence: bool ``[batch, time]`` -> int32 ``[batch]``."""
  return tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)


def apply_mask(inputs, mask):
  """Zeroes the pad steps of ``inputs`` ``[batch, time, ...]``.

  Zeroing uses ``tf.where``, so pad steps holding NaN or Inf become exactly 0
  and no gradient reaches them.
  """
  if mask is None:
    return inputs
  return tf.where(_expanded(mask, inputs), inputs, tf.zeros((), inputs.dtype))


def right_padding_permutation(mask):
  """Per-row time permutation that moves real steps first, keeping their order.

  Args:
    mask: bool ``[batch, time]``, any pattern (left-padded, right-padded, holes).

  Returns:
    int32 ``[batch, time]`` indices ``perm`` such that
    ``tf.gather(x, perm, batch_dims=1)`` is right-padded.
  """
  return tf.argsort(tf.cast(tf.logical_not(mask), tf.int32), axis=1,
                    stable=True)


def to_right_padded(inputs, mask):
  """Packs the real steps of ``inputs`` to the front of the time axis.

  Args:
    inputs: tensor ``[batch, time, ...]`` (ids or features).
    mask: bool ``[batch, time]``.

  Returns:
    ``(packed, packed_mask, perm)``: packed inputs and mask, both right-padded,
    and the permutation used, for :func:`restore_order`.
  """
  perm = right_padding_permutation(mask)
  return reorder(inputs, perm), reorder(mask, perm), perm


def restore_order(packed, perm):
  """Inverse of :func:`to_right_padded` for a ``[batch, time, ...]`` tensor."""
  return reorder(packed, tf.argsort(perm, axis=1))


def reorder(values, perm):
  """``values`` ``[batch, time, ...]`` reordered along time by ``perm``
  (``tf.gather(values, perm, batch_dims=1)``), without a copy when ``perm``
  is the identity (input already right-padded, the usual case inside a
  model)."""
  identity = tf.reduce_all(tf.equal(
      perm, tf.range(tf.shape(perm)[1], dtype=perm.dtype)))
  return tf.cond(identity, lambda: tf.identity(values),
                 lambda: tf.gather(values, perm, batch_dims=1))


def to_left_padded(inputs, mask):
  """Moves the real steps of ``inputs`` to the end of the time axis.

  Returns ``(inputs, mask)`` left-padded; the order of real steps is kept.
  """
  perm = tf.argsort(tf.cast(mask, tf.int32), axis=1, stable=True)
  return tf.gather(inputs, perm, batch_dims=1), tf.gather(mask, perm,
                                                          batch_dims=1)


# --------------------------------------------------------------------------
# The time-axis rule for convolution and pooling.
#
# maskmodels pads explicitly, with amounts that do not depend on the tensor's
# length, so the output grid is anchored at step 0 of the sequence. Output
# step t reads the input taps  t*stride - left + j*dilation,  j = 0..k-1.
#
#   "same":   left = ((k-1)//2)*dilation; anchor tap is the centre, input t*s.
#   "causal": left = (k-1)*dilation;      anchor tap is the last, input t*s.
#   "valid":  left = 0; no anchor: the output step is real only if every tap
#             is real (a window that is wholly inside the sequence).
#
# With "same"/"causal", output step t is real iff input step t*stride is real.
# On a right-padded sequence of length L this gives ceil(L/s) real outputs for
# same/causal and floor((L - (k-1)d - 1)/s) + 1 for valid: exactly the lengths
# of convolving the unpadded sequence.
# --------------------------------------------------------------------------


def truncate_steps(tokens, max_len, truncation="head"):
  """Keeps at most ``max_len`` steps per row of a ragged ``[batch, (len),
  ...]`` (tokens, words, frames, per-step labels).

  ``"head"`` keeps the first tokens, ``"tail"`` the last, ``"both"`` the first
  ``max_len // 2`` and the last ``max_len - max_len // 2``.
  """
  # int32 index arithmetic throughout: oneDNN has no int64 kernels here.
  tokens = tokens.with_row_splits_dtype(tf.int32)
  lengths = tokens.row_lengths()
  kept = tf.minimum(lengths, max_len)
  head_budget = {"head": max_len, "tail": 0, "both": max_len // 2}[truncation]
  head = tf.where(lengths <= max_len, lengths, head_budget)
  positions = tf.ragged.range(kept, row_splits_dtype=tf.int32)
  row = positions.value_rowids()
  position = positions.flat_values
  # Position p < head reads token p; later ones read from the row's end.
  offset = tf.where(position < tf.gather(head, row), position,
                    position + tf.gather(lengths - kept, row))
  index = tf.gather(tokens.row_starts(), row) + offset
  return positions.with_values(tf.gather(tokens.values, index)
                               ).with_row_splits_dtype(tf.int64)


def crop_steps(values, starts, lengths, pad=0, keep_width=False):
  """Each row's window of real steps, moved to the front.

  Args:
    values: ``[batch, time, ...]``, right-padded.
    starts: int32 ``[batch]``: the first step kept of each row.
    lengths: int32 ``[batch]``: the steps kept (``starts + lengths`` within
      each row's real steps).
    pad: what fills the steps past each window.
    keep_width: keep ``time`` (static shapes) instead of cutting the batch
      to its longest window.

  Returns:
    ``[batch, max(lengths), ...]`` (or ``values``' shape): row ``i`` holds
    steps ``starts[i]`` to ``starts[i] + lengths[i] - 1`` of ``values[i]``,
    then ``pad``.
  """
  if keep_width:
    return tf.ensure_shape(
        _crop_to(values, starts, lengths, pad, tf.shape(values)[1]),
        values.shape)
  return _crop_to(values, starts, lengths, pad,
                  tf.reduce_max(tf.concat([lengths, [0]], 0)))


def _crop_to(values, starts, lengths, pad, width):
  """:func:`crop_steps` to ``width`` steps."""
  steps = tf.range(width)[tf.newaxis]
  last = tf.maximum(tf.shape(values)[1] - 1, 0)
  positions = tf.minimum(starts[:, tf.newaxis] + steps, last)
  kept = tf.gather(values, positions, batch_dims=1)
  real = _expanded(steps < lengths[:, tf.newaxis], kept)
  return tf.where(real, kept, tf.cast(pad, kept.dtype))


def _check_conv_args(kernel_size, strides, dilation_rate, padding):
  for name, value in (("kernel_size", kernel_size), ("strides", strides),
                      ("dilation_rate", dilation_rate)):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}.")
  if padding not in PADDING_MODES:
    raise ValueError(
        f"padding must be one of {PADDING_MODES}, got {padding!r}.")


def conv_padding(kernel_size, dilation_rate=1, padding="same"):
  """Explicit ``(left, right)`` time padding for a conv or pooling window.

  Args:
    kernel_size: window size ``k``.
    dilation_rate: spacing ``d`` between taps.
    padding: ``"same"``, ``"valid"`` or ``"causal"``.

  Returns:
    ``(left, right)`` ints; ``left + right == (k-1)*d`` except for "valid".
  """
  _check_conv_args(kernel_size, 1, dilation_rate, padding)
  span = (kernel_size - 1) * dilation_rate
  if padding == "valid":
    return 0, 0
  if padding == "causal":
    return span, 0
  left = ((kernel_size - 1) // 2) * dilation_rate
  return left, span - left


def conv_output_length(length, kernel_size, strides=1, dilation_rate=1,
                       padding="same"):
  """Output time length for an input of ``length`` steps (int or tensor)."""
  _check_conv_args(kernel_size, strides, dilation_rate, padding)
  span = (kernel_size - 1) * dilation_rate
  if padding == "valid":
    if isinstance(length, int):
      return max(0, (length - span - 1) // strides + 1)
    return tf.maximum(0, (length - span - 1) // strides + 1)
  return -(-length // strides)


def conv_output_mask(mask, kernel_size, strides=1, dilation_rate=1,
                     padding="same"):
  """The mask after a 1-D convolution or pooling (see the rule above).

  Args:
    mask: bool ``[batch, time]``.
    kernel_size, strides, dilation_rate: the window's geometry, ints >= 1.
    padding: ``"same"``, ``"valid"`` or ``"causal"``.

  Returns:
    bool ``[batch, out_time]`` with ``out_time`` from :func:`conv_output_length`.
  """
  _check_conv_args(kernel_size, strides, dilation_rate, padding)
  mask = tf.cast(mask, tf.bool)
  if padding != "valid":
    return mask[:, ::strides]
  time = tf.shape(mask)[1]
  out_time = conv_output_length(time, kernel_size, strides, dilation_rate,
                                "valid")
  starts = tf.range(out_time) * strides
  taps = starts[:, tf.newaxis] + tf.range(kernel_size) * dilation_rate
  windows = tf.gather(mask, taps, axis=1)  # [batch, out_time, kernel]
  return tf.reduce_all(windows, axis=2)


# --------------------------------------------------------------------------
# Masked reductions over time. Each is finite for a sequence with no real
# step: its result is zeros.
# --------------------------------------------------------------------------


def _expanded(mask, inputs):
  mask = tf.cast(mask, tf.bool)
  while mask.shape.rank < inputs.shape.rank:
    mask = mask[..., tf.newaxis]
  return mask


def masked_sum(inputs, mask):
  """Sum over real steps: ``[batch, time, dim]`` -> ``[batch, dim]``."""
  return tf.reduce_sum(apply_mask(inputs, mask), axis=1)


def masked_mean(inputs, mask):
  """Mean over real steps, zeros for an empty sequence: -> ``[batch, dim]``."""
  mask = ensure_mask(inputs, mask)
  count = tf.cast(lengths_from_mask(mask), inputs.dtype)[:, tf.newaxis]
  return masked_sum(inputs, mask) / tf.maximum(count, tf.ones((), inputs.dtype))


def masked_max(inputs, mask):
  """Max over real steps, zeros for an empty sequence: -> ``[batch, dim]``."""
  mask = ensure_mask(inputs, mask)
  lowest = tf.constant(inputs.dtype.min, inputs.dtype)
  best = tf.reduce_max(tf.where(_expanded(mask, inputs), inputs, lowest),
                       axis=1)
  has_real = tf.reduce_any(mask, axis=1)[:, tf.newaxis]
  return tf.where(has_real, best, tf.zeros((), inputs.dtype))


def last_valid_index(mask):
  """Index of the last real step per row, -1 if none: bool -> int32 ``[batch]``."""
  mask = tf.cast(mask, tf.bool)
  steps = tf.range(tf.shape(mask)[1], dtype=tf.int32)
  return tf.reduce_max(tf.where(mask, steps, -1), axis=1)


def masked_last(inputs, mask):
  """The last real step, zeros for an empty sequence: -> ``[batch, dim]``.

  Also defined on an empty time axis (``[batch, 0, dim]``): every row is
  empty there, so the result is zeros.
  """
  mask = ensure_mask(inputs, mask)
  index = last_valid_index(mask)
  # An empty row reads an appended zero step, which exists even when the
  # time axis itself is empty.
  time = tf.shape(inputs)[1]
  padded = tf.pad(inputs, [[0, 0], [0, 1]] + [[0, 0]] * (inputs.shape.rank - 2))
  return tf.gather(padded, tf.where(index >= 0, index, time), batch_dims=1)


def masked_softmax(scores, mask):
  """Softmax over time of ``scores`` ``[batch, time]`` restricted to real steps.

  Pad steps get weight exactly 0; a row with no real step gets all zeros.
  """
  mask = ensure_mask(scores[..., tf.newaxis], mask)
  lowest = tf.constant(scores.dtype.min, scores.dtype)
  weights = tf.nn.softmax(tf.where(mask, scores, lowest), axis=1)
  return tf.where(mask, weights, tf.zeros((), scores.dtype))
