"""Normalization whose statistics come from real steps only."""

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.layers.base import ExplicitMask


def masked_moments(inputs, mask, shift=None):
  """Mean and variance per channel over the real steps of a batch.

  Under a ``tf.distribute`` strategy the sums are all-reduced across replicas
  (one all-reduce), so the statistics are those of the global batch whatever
  the replica count. The sums are taken around ``shift``, a guess of the
  mean (batch normalization passes its moving mean), so the variance keeps
  its precision when the mean is large next to the spread.

  Args:
    inputs: float ``[batch, time, channels]``.
    mask: bool ``[batch, time]``.
    shift: float ``[channels]`` or None (0); the same on every replica.

  Returns:
    ``(mean, variance, count)``: float32 ``[channels]``, ``[channels]`` and the
    number of real steps (a float32 scalar). Empty batches give zeros.
  """
  mask = masking.ensure_mask(inputs, mask)
  x = tf.cast(inputs, tf.float32)
  shift = tf.zeros((), tf.float32) if shift is None else tf.cast(shift,
                                                                  tf.float32)
  # tf.where, not a product: pad steps holding Inf or NaN must not leak.
  x = tf.where(mask[..., tf.newaxis], x - shift, 0.0)
  count = tf.reduce_sum(tf.cast(mask, tf.float32))
  total = tf.reduce_sum(x, axis=[0, 1])
  total_sq = tf.reduce_sum(tf.square(x), axis=[0, 1])
  context = tf.distribute.get_replica_context()
  if context is not None and context.num_replicas_in_sync > 1:
    count, total, total_sq = context.all_reduce(
        tf.distribute.ReduceOp.SUM, [count, total, total_sq])
  safe = tf.maximum(count, 1.0)
  offset = total / safe
  variance = tf.maximum(total_sq / safe - tf.square(offset), 0.0)
  mean = tf.where(count > 0.0, shift + offset, 0.0)
  return mean, tf.where(count > 0.0, variance, 0.0), count


@keras.saving.register_keras_serializable(package="maskmodels")
class MaskedBatchNormalization(ExplicitMask, keras.layers.Layer):
  """Batch normalization over ``[batch, time]`` that ignores pad steps.

  In training the mean and variance come from the real steps of the global
  batch (synchronized across replicas); in inference the moving averages are
  used, so outputs do not depend on the rest of the batch.

  Call args:
    inputs: float ``[batch, time, channels]``.
    mask: bool ``[batch, time]``, True = real step; None = all real.

  Returns:
    float ``[batch, time, channels]`` with pad steps zeroed.
  """

  def __init__(self, momentum=0.99, epsilon=1e-3, center=True, scale=True,
               **kwargs):
    super().__init__(**kwargs)
    if not 0.0 <= momentum < 1.0:
      raise ValueError(f"momentum must be in [0, 1), got {momentum!r}.")
    self.momentum = momentum
    self.epsilon = epsilon
    self.center = center
    self.scale = scale

  def build(self, input_shape):
    channels = input_shape[-1]
    self.gamma = self.add_weight(shape=(channels,), initializer="ones",
                                 name="gamma", trainable=self.scale)
    self.beta = self.add_weight(shape=(channels,), initializer="zeros",
                                name="beta", trainable=self.center)
    # Every replica computes the same (all-reduced) statistics, so each
    # keeps its own copy, updated without a collective; a checkpoint reads
    # the first replica's.
    stat = dict(shape=(channels,), dtype="float32", trainable=False,
                autocast=False, aggregation="only_first_replica",
                synchronization="on_read")
    self.moving_mean = keras.Variable("zeros", name="moving_mean", **stat)
    self.moving_variance = keras.Variable("ones", name="moving_variance",
                                          **stat)

  def call(self, inputs, mask=None, training=None):
    return masking.apply_mask(self.normalize(inputs, mask, training), mask)

  def normalize(self, inputs, mask=None, training=None):
    """:meth:`call` without zeroing the pad steps (finite for finite
    inputs), for a caller that zeroes them later."""
    self.build_for(inputs)
    if training:
      mean, variance, count = masked_moments(inputs, mask,
                                             shift=self.moving_mean)
      keep = tf.cast(count == 0.0, tf.float32) + self.momentum * tf.cast(
          count > 0.0, tf.float32)
      self.moving_mean.assign(keep * self.moving_mean + (1 - keep) * mean)
      self.moving_variance.assign(
          keep * self.moving_variance + (1 - keep) * variance)
    else:
      mean, variance = self.moving_mean, self.moving_variance
    inv = tf.math.rsqrt(tf.cast(variance, tf.float32) + self.epsilon)
    scale = tf.cast(self.gamma, tf.float32) * inv
    shift = tf.cast(self.beta, tf.float32) - tf.cast(mean, tf.float32) * scale
    return inputs * tf.cast(scale, inputs.dtype) + tf.cast(shift,
                                                           inputs.dtype)

  def get_config(self):
    config = super().get_config()
    config.update(momentum=self.momentum, epsilon=self.epsilon,
                  center=self.center, scale=self.scale)
    return config


@keras.saving.register_keras_serializable(package="maskmodels")
class MaskedLayerNormalization(ExplicitMask,
                               keras.layers.LayerNormalization):
  """Layer normalization per step, with pad steps zeroed on output.

  Each step is normalized over its own channels, so pad steps never enter
  another step's statistics. Shapes as for ``MaskedBatchNormalization``.
  """

  def call(self, inputs, mask=None, training=None):
    return masking.apply_mask(super().call(inputs), mask)

  def normalize(self, inputs, mask=None, training=None):
    """:meth:`call` without zeroing the pad steps (finite for finite
    inputs), for a caller that zeroes them later."""
    del mask, training  # each step is normalized on its own
    self.build_for(inputs)
    return super().call(inputs)
