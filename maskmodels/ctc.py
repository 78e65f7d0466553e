"""CTC on masked logits: a loss with exact lengths, greedy and beam decoding.

The logit lengths are the encoder's output mask, after its strides and
pools, never a proportion of the input length; a row's real steps may sit
anywhere (left or right padding): they are packed to the front before
TensorFlow's CTC reads them, and pad steps are zeroed with ``tf.where``
first, so a pad step holding NaN reaches neither the loss nor a gradient.

Shapes: logits float ``[batch, time, classes]`` (class ``blank``, 0 by
default, is the blank); mask bool ``[batch, time]``, True = real step;
targets int ``[batch, target_time]`` with lengths int ``[batch]`` (ids past
a target's length are ignored; real ids are in ``[0, classes)`` and never
``blank``).

A target fits when the real steps are at least its length plus one blank
between each pair of equal neighbours (:func:`required_steps`,
:func:`fits`). A target that does not fit would have an infinite loss;
:func:`ctc_loss` gives it a loss of exactly 0 with no gradient and says
which rows fit, so the caller counts and reports them (a weight of 0 keeps
them out of the mean).
"""

import tensorflow as tf

from maskmodels import masking


def required_steps(targets, target_lengths):
  """The fewest logit steps CTC needs per target: its length plus one
  blank between each pair of equal neighbours. int32 ``[batch]``."""
  targets = tf.convert_to_tensor(targets)
  target_lengths = tf.cast(target_lengths, tf.int32)
  real = tf.sequence_mask(target_lengths, tf.shape(targets)[1])
  repeats = tf.logical_and(tf.equal(targets[:, 1:], targets[:, :-1]),
                           real[:, 1:])
  return target_lengths + tf.reduce_sum(tf.cast(repeats, tf.int32), axis=1)


def fits(targets, target_lengths, mask):
  """bool ``[batch]``: whether each target fits in its real logit steps
  (``mask`` ``[batch, time]``, True = real step)."""
  return required_steps(targets, target_lengths) <= (
      masking.lengths_from_mask(tf.cast(mask, tf.bool)))


def _packed_logits(logits, mask):
  """float32 logits with real steps first and pad steps 0, and the logit
  lengths int32 ``[batch]``."""
  mask = tf.cast(mask, tf.bool)
  logits = masking.apply_mask(tf.cast(logits, tf.float32), mask)
  packed, _, _ = masking.to_right_padded(logits, mask)
  return packed, masking.lengths_from_mask(mask)


def _cut_targets(targets, target_lengths):
  """int32 targets with every id past its row's length set to 0."""
  targets = tf.cast(targets, tf.int32)
  real = tf.sequence_mask(target_lengths, tf.shape(targets)[1])
  return tf.where(real, targets, tf.zeros_like(targets))


def ctc_loss(targets, target_lengths, logits, mask, blank=0):
  """CTC loss per example with exact logit lengths from ``mask``.

  Args:
    targets: int ``[batch, target_time]``.
    target_lengths: int ``[batch]``.
    logits: float ``[batch, time, classes]``, unnormalized.
    mask: bool ``[batch, time]``, True = real step (the encoder's output
      mask).
    blank: the blank class.

  Returns:
    ``(loss, fits)``: float32 ``[batch]`` negative log likelihoods (0 where
    the target does not fit), and bool ``[batch]``, whether it fits.
  """
  packed, logit_lengths = _packed_logits(logits, mask)
  target_lengths = tf.cast(target_lengths, tf.int32)
  fit = fits(targets, target_lengths, mask)
  # Dense targets: TensorFlow's sparse-target kernel refuses an empty
  # target (whose loss is the all-blank path's). For a target that does not
  # fit, the dense loss is a large finite number (about 700) with
  # meaningless gradients; tf.where below zeroes both.
  loss = tf.nn.ctc_loss(_cut_targets(targets, target_lengths), packed,
                        label_length=target_lengths,
                        logit_length=logit_lengths,
                        logits_time_major=False, blank_index=blank)
  return tf.where(fit, loss, tf.zeros_like(loss)), fit


def _dense_paths(paths, batch):
  """A decoder's ``SparseTensor`` path -> (int32 ids ``[batch, out_time]``,
  0 past each length, and int32 lengths ``[batch]``)."""
  ids = tf.sparse.to_dense(tf.cast(paths, tf.int32))
  lengths = tf.math.unsorted_segment_max(
      tf.cast(paths.indices[:, 1], tf.int32) + 1,
      tf.cast(paths.indices[:, 0], tf.int32), batch)
  # A row with no ids gets the segment maximum's identity: 0 instead.
  return ids, tf.maximum(lengths, 0)


def _decodable(packed, lengths):
  """Time-major logits with at least one row and one step (TensorFlow's
  CTC decoders refuse an empty tensor: a batch of none, or of only empty
  inputs), the added row and step of length 0; and their lengths."""
  rows = tf.maximum(1 - tf.shape(packed)[0], 0)
  steps = tf.maximum(1 - tf.shape(packed)[1], 0)
  packed = tf.pad(packed, [[0, rows], [0, steps], [0, 0]])
  return tf.transpose(packed, [1, 0, 2]), tf.pad(lengths, [[0, rows]])


def greedy_decode(logits, mask, blank=0):
  """Best path decoding: the likeliest class per real step, repeats
  merged, blanks removed.

  Args:
    logits: float ``[batch, time, classes]``.
    mask: bool ``[batch, time]``, True = real step.
    blank: the blank class.

  Returns:
    ``(ids, lengths)``: int32 ``[batch, out_time]`` (0 past each length)
    and int32 ``[batch]``.
  """
  packed, lengths = _packed_logits(logits, mask)
  batch = tf.shape(packed)[0]
  (paths,), _ = tf.nn.ctc_greedy_decoder(*_decodable(packed, lengths),
                                         blank_index=blank)
  ids, lengths = _dense_paths(paths, tf.maximum(batch, 1))
  return ids[:batch], lengths[:batch]


def beam_decode(logits, mask, beam_width=16, blank=0):
  """Beam search decoding (TensorFlow's CTC beam search, which keeps the
  ``beam_width`` likeliest prefixes and merges paths that collapse to the
  same output).

  Args:
    logits: float ``[batch, time, classes]``.
    mask: bool ``[batch, time]``, True = real step.
    beam_width: prefixes kept per step.
    blank: the blank class.

  Returns:
    ``(ids, lengths, log_probability)``: int32 ``[batch, out_time]`` (0
    past each length), int32 ``[batch]`` and float32 ``[batch]``.
  """
  packed, lengths = _packed_logits(logits, mask)
  batch, classes = tf.shape(packed)[0], tf.shape(packed)[2]
  # TensorFlow's beam search takes the last class as the blank.
  order = tf.concat([tf.range(blank), tf.range(blank + 1, classes),
                     [blank]], 0)
  (paths,), log_probability = tf.nn.ctc_beam_search_decoder(
      *_decodable(tf.gather(packed, order, axis=2), lengths),
      beam_width=beam_width, top_paths=1)
  paths = tf.SparseTensor(paths.indices,
                          tf.gather(tf.cast(order, paths.values.dtype),
                                    paths.values), paths.dense_shape)
  ids, lengths = _dense_paths(paths, tf.maximum(batch, 1))
  return ids[:batch], lengths[:batch], log_probability[:batch, 0]
