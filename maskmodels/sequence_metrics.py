"""Error rates of output sequences against one or several references.

Token error rate: the edit distance (insertions, deletions, substitutions)
between an output and its reference, summed over examples and divided by
the summed reference lengths. Sequence error rate: the fraction of outputs
that are not exactly a reference. Where an example has several references
(a word's alternate pronunciations), the output is right if it equals any
of them, and its token errors count against the closest one (the fewest
edits; the first of equals), whose length is the one summed.

Shapes: outputs int ``[batch, time]`` with lengths ``[batch]``; references
int ``[batch, references, time]`` with lengths ``[batch, references]`` and
a count ``[batch]`` of real references per example (at least 1). Ids past
a length are ignored.
"""

import keras
import tensorflow as tf


def _sparse(ids, lengths):
  """Dense ids ``[..., time]`` cut to ``lengths`` ``[...]``, as the
  ``SparseTensor`` ``tf.edit_distance`` takes."""
  ids = tf.cast(ids, tf.int64)
  real = tf.sequence_mask(lengths, tf.shape(ids)[-1])
  indices = tf.where(real)
  return tf.SparseTensor(indices, tf.gather_nd(ids, indices),
                         tf.shape(ids, out_type=tf.int64))


def closest_reference_errors(outputs, output_lengths, references,
                             reference_lengths, reference_count=None):
  """Token errors of each output against its closest reference.

  Args:
    outputs: int ``[batch, time]``; output_lengths: int ``[batch]``.
    references: int ``[batch, references, ref_time]``.
    reference_lengths: int ``[batch, references]``.
    reference_count: int ``[batch]``, real references per example (None:
      all of them).

  Returns:
    ``(errors, lengths, exact)``: float32 ``[batch]`` edit distances to the
    closest reference, float32 ``[batch]`` its length, and bool
    ``[batch]``, whether the output equals a reference.
  """
  references = tf.convert_to_tensor(references)
  reference_lengths = tf.cast(reference_lengths, tf.int32)
  batch, count = tf.shape(references)[0], tf.shape(references)[1]
  tiled = tf.repeat(tf.convert_to_tensor(outputs)[:, tf.newaxis], count,
                    axis=1)
  tiled_lengths = tf.repeat(tf.cast(output_lengths, tf.int32)[:, tf.newaxis],
                            count, axis=1)
  # TensorFlow's edit distance refuses an output of no element (a batch
  # of no example).
  distance = tf.cond(
      batch * count > 0,
      lambda: tf.reshape(tf.edit_distance(
          _sparse(tiled, tiled_lengths),
          _sparse(references, reference_lengths), normalize=False),
                         [batch, count]),
      lambda: tf.zeros([batch, count]))
  if reference_count is not None:
    real = tf.sequence_mask(reference_count, count)
    distance = tf.where(real, distance, float("inf"))
  closest = tf.argmin(distance, axis=1, output_type=tf.int32)
  errors = tf.gather(distance, closest, batch_dims=1)
  lengths = tf.cast(tf.gather(reference_lengths, closest, batch_dims=1),
                    tf.float32)
  return errors, lengths, tf.equal(errors, 0.0)


class TokenErrorRate(keras.metrics.Metric):
  """Summed token errors over summed closest-reference lengths.

  ``update_state(errors, lengths, sample_weight=None)`` takes
  :func:`closest_reference_errors`' first two results (a weight of 0
  leaves an example out)."""

  def __init__(self, name="token_error_rate", **kwargs):
    super().__init__(name=name, **kwargs)
    self.errors = self.add_variable((), "zeros", name="errors")
    self.length = self.add_variable((), "zeros", name="length")

  def update_state(self, errors, lengths, sample_weight=None):
    weight = (tf.ones_like(errors) if sample_weight is None else
              tf.cast(sample_weight, tf.float32))
    self.errors.assign_add(tf.reduce_sum(errors * weight))
    self.length.assign_add(tf.reduce_sum(lengths * weight))

  def result(self):
    return tf.math.divide_no_nan(self.errors, self.length)


class SequenceErrorRate(keras.metrics.Mean):
  """The fraction of outputs that equal no reference:
  ``update_state(exact, sample_weight=None)`` with
  :func:`closest_reference_errors`' third result."""

  def __init__(self, name="sequence_error_rate", **kwargs):
    super().__init__(name=name, **kwargs)

  def update_state(self, exact, sample_weight=None):
    super().update_state(1.0 - tf.cast(exact, tf.float32),
                         sample_weight=sample_weight)
