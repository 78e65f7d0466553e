"""A convolution block: conv -> masked norm -> activation -> dropout -> pool."""

import keras

from maskmodels import masking
from maskmodels.layers.base import ExplicitMask
from maskmodels.layers.conv import MaskedConv1D, MaskedMaxPool1D
from maskmodels.layers.dropout import Dropout
from maskmodels.layers.normalization import (MaskedBatchNormalization,
                                             MaskedLayerNormalization)

from maskmodels.registry import Registry

# Normalizations by name; "none" (or None) for no normalization.
NORMALIZATIONS = Registry("normalization")
NORMALIZATIONS.add("batch", MaskedBatchNormalization)
NORMALIZATIONS.add("layer", MaskedLayerNormalization)
NORMALIZATIONS.add("none", None)


@keras.saving.register_keras_serializable(package="maskmodels")
class MaskedConvBlock(ExplicitMask, keras.layers.Layer):
  """MaskedConv1D -> masked normalization -> activation -> dropout -> max-pool.

  Args:
    filters, kernel_size, strides, dilation_rate, padding: as MaskedConv1D.
    normalization: ``"batch"``, ``"layer"``, or ``"none"`` / None.
    activation: a Keras activation name.
    dropout: dropout rate after the activation.
    pool_size: if > 1, a MaskedMaxPool1D with this size follows.
    pool_strides: its stride (default ``pool_size``).

  Call args:
    inputs: float ``[batch, time, channels]``.
    mask: bool ``[batch, time]``, True = real step; None = all real.

  Returns:
    ``(outputs, mask)``: ``[batch, out_time, filters]`` (pad steps zeroed) and
    bool ``[batch, out_time]``.
  """

  def __init__(self, filters, kernel_size=3, strides=1, dilation_rate=1,
               padding="same", normalization="batch", activation="relu",
               dropout=0.0, pool_size=1, pool_strides=None, **kwargs):
    super().__init__(**kwargs)
    normalization = "none" if normalization is None else normalization
    norm = NORMALIZATIONS.get(normalization)
    if not 0.0 <= dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    self.filters = filters
    self.kernel_size = kernel_size
    self.strides = strides
    self.dilation_rate = dilation_rate
    self.padding = padding
    self.normalization = normalization
    self.activation = activation
    self.dropout = dropout
    self.pool_size = pool_size
    self.pool_strides = pool_strides
    policy = self.dtype_policy
    self.conv = MaskedConv1D(filters, kernel_size, strides=strides,
                             dilation_rate=dilation_rate, padding=padding,
                             use_bias=norm is None, dtype=policy,
                             name="conv")
    self.norm = norm(dtype=policy, name="norm") if norm else None
    self.act = keras.layers.Activation(activation, dtype=policy, name="act")
    self.drop = Dropout(dropout, dtype=policy, name="dropout")
    self.pool = (MaskedMaxPool1D(pool_size, pool_strides, dtype=policy,
                                 name="pool") if pool_size > 1 else None)

  def build(self, input_shape):
    self.conv.build(input_shape)
    if self.norm is not None:
      self.norm.build((None, None, self.filters))

  def call(self, inputs, mask=None, training=None):
    # Pad steps are zeroed once, at the end (the pooling reads real steps
    # only and zeroes its pad outputs): the parts leave them finite.
    x, mask = self.conv.convolve(inputs, mask=mask)
    if self.norm is not None:
      x = self.norm.normalize(x, mask=mask, training=training)
    x = self.drop(self.act(x), training=training)
    if self.pool is not None:
      return self.pool(x, mask=mask)
    return masking.apply_mask(x, mask), mask

  def get_config(self):
    config = super().get_config()
    config.update(
        filters=self.filters, kernel_size=self.kernel_size,
        strides=self.strides, dilation_rate=self.dilation_rate,
        padding=self.padding, normalization=self.normalization,
        activation=self.activation, dropout=self.dropout,
        pool_size=self.pool_size, pool_strides=self.pool_strides)
    return config
