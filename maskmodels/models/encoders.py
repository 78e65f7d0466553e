"""Sequence encoders: ``(inputs, mask) -> (outputs, mask)``."""

import dataclasses

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.layers.base import ExplicitMask
from maskmodels.layers.conv_block import NORMALIZATIONS, MaskedConvBlock
from maskmodels.layers.recurrent import MaskedGRU
from maskmodels.registry import register_encoder
from maskmodels.settings import Settings, setting


class Encoder(ExplicitMask, keras.Model):
  """Base class of encoders: subclass it, override ``call``, register a name.

  Contract: ``call(inputs, mask=None, training=None)`` takes float
  ``[batch, time, dim]`` and bool ``[batch, time]`` (True = real step) and
  returns ``(outputs, mask)``: ``[batch, time', dim']`` and bool
  ``[batch, time']``, where real outputs depend on real inputs only.
  """


def _per_block(value, count, name):
  """Expands an int to ``count`` copies, or checks a list has ``count`` items."""
  if isinstance(value, int):
    return [value] * count
  value = list(value)
  if len(value) != count:
    raise ValueError(f"{name} must be an int or a list of {count} ints (one "
                     f"per conv block), got {value!r}.")
  return value


@register_encoder("conv_gru")
class ConvGRUEncoder(Encoder):
  """N masked conv blocks, then M masked GRU layers, the mask threaded through.

  Args:
    conv_filters: filters of each conv block; ``[]`` for no conv block.
    kernel_size, strides, dilation_rate, pool_size: an int for every block or
      a list with one value per block.
    padding: conv padding mode, ``"same"``, ``"valid"`` or ``"causal"``.
    normalization: ``"batch"``, ``"layer"`` or ``"none"``, in each conv block.
    activation: conv block activation.
    gru_units: units of each GRU layer; ``[]`` for none.
    bidirectional: whether the GRU layers read both directions.
    dropout: dropout in conv blocks and on GRU inputs.
    concat_conv: output the last conv block's features concatenated with the
      last GRU's (both on the GRU's time axis), so the pooling reads n-gram
      features as well as the recurrent ones.

  Call args:
    inputs: float ``[batch, time, dim]``; mask: bool ``[batch, time]``.

  Returns:
    ``(outputs, mask)``: ``[batch, time', channels]`` and bool
    ``[batch, time']``, time' shrunk by conv strides and pooling.
  """

  @dataclasses.dataclass
  class Config(Settings):
    """The encoder's settings as a training run sees them (flags, config)."""
    conv_filters: list[int] = setting(
        [64], "conv_gru: filters of each conv block (empty: none).",
        resume=True)
    kernel_size: int = setting(5, "conv_gru: conv kernel size.", lower=1,
                               resume=True)
    strides: int = setting(1, "conv_gru: conv stride.", lower=1, resume=True)
    dilation_rate: int = setting(1, "conv_gru: conv dilation.", lower=1,
                                 resume=True)
    pool_size: int = setting(
        2, "conv_gru: max-pool size after each conv block (1: none).",
        lower=1, resume=True)
    padding: str = setting("same", "conv_gru: conv padding.",
                           choices=masking.PADDING_MODES, resume=True)
    normalization: str = setting("batch", "conv_gru: conv block "
                                 "normalization.", choices=NORMALIZATIONS,
                                 resume=True)
    gru_units: list[int] = setting(
        [64], "conv_gru: units of each GRU layer (empty: none).", resume=True)
    bidirectional: bool = setting(True, "conv_gru: bidirectional GRUs.",
                                  resume=True)
    dropout: float = setting(
        0.1, "conv_gru: dropout in conv blocks and on GRU inputs.",
        lower=0.0, upper=0.99, resume=True)
    concat_conv: bool = setting(
        False, "conv_gru: output the last conv block's features beside the "
        "GRU's (the pooling sees both).", resume=True)

  def __init__(self, conv_filters=(128,), kernel_size=5, strides=1,
               dilation_rate=1, pool_size=1, padding="same",
               normalization="batch", activation="relu", gru_units=(128,),
               bidirectional=True, dropout=0.0, concat_conv=False, **kwargs):
    super().__init__(**kwargs)
    self.conv_filters = list(conv_filters)
    self.kernel_size = kernel_size
    self.strides = strides
    self.dilation_rate = dilation_rate
    self.pool_size = pool_size
    self.padding = padding
    self.normalization = normalization
    self.activation = activation
    self.gru_units = list(gru_units)
    self.bidirectional = bidirectional
    self.dropout = dropout
    self.concat_conv = concat_conv
    count = len(self.conv_filters)
    geometry = zip(self.conv_filters,
                   _per_block(kernel_size, count, "kernel_size"),
                   _per_block(strides, count, "strides"),
                   _per_block(dilation_rate, count, "dilation_rate"),
                   _per_block(pool_size, count, "pool_size"))
    policy = self.dtype_policy
    self.blocks = [
        MaskedConvBlock(f, k, strides=s, dilation_rate=d, padding=padding,
                        normalization=normalization, activation=activation,
                        dropout=dropout, pool_size=p, dtype=policy,
                        name=f"conv_block_{i}")
        for i, (f, k, s, d, p) in enumerate(geometry)]
    self.grus = [
        MaskedGRU(units, bidirectional=bidirectional, return_sequences=True,
                  dropout=dropout, dtype=policy, name=f"gru_{i}")
        for i, units in enumerate(self.gru_units)]

  def build(self, input_shape):
    channels = input_shape[-1]
    for block in self.blocks:
      block.build((None, None, channels))
      channels = block.filters
    for gru in self.grus:
      gru.build((None, None, channels))
      channels = gru.output_dim

  def call(self, inputs, mask=None, training=None):
    x = inputs
    for block in self.blocks:
      x, mask = block(x, mask=mask, training=training)
    conv_features = x
    for gru in self.grus:
      x, mask = gru(x, mask=mask, training=training)
    if self.concat_conv and self.grus:
      x = tf.concat([conv_features, x], axis=-1)
    return x, mask

  def get_config(self):
    return {
        "name": self.name, "conv_filters": self.conv_filters,
        "kernel_size": self.kernel_size, "strides": self.strides,
        "dilation_rate": self.dilation_rate, "pool_size": self.pool_size,
        "padding": self.padding, "normalization": self.normalization,
        "activation": self.activation, "gru_units": self.gru_units,
        "bidirectional": self.bidirectional, "dropout": self.dropout,
        "concat_conv": self.concat_conv}
