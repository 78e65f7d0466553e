"""Sequence encoders: ``(inputs, mask) -> (outputs, mask)``."""

import dataclasses

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.errors import InputError
from maskmodels.layers.base import ExplicitMask
from maskmodels.layers.conv_block import NORMALIZATIONS, MaskedConvBlock
from maskmodels.layers.recurrent import MaskedGRU
from maskmodels.registry import register_encoder
from maskmodels.settings import (MAX_WINDOW, MAX_WIDTH, Configurable,
                                 Settings, setting)


# The conv blocks' activations (Keras's names).
ACTIVATIONS = ("relu", "gelu", "silu", "swish", "elu", "selu", "tanh",
               "sigmoid", "leaky_relu", "mish", "linear")


class Encoder(ExplicitMask, keras.Model):
  """Base class of encoders: subclass it, override ``call``, register a name.

  Contract: ``call(inputs, mask=None, training=None)`` takes float
  ``[batch, time, dim]`` and bool ``[batch, time]`` (True = real step) and
  returns ``(outputs, mask)``: ``[batch, time', dim']`` and bool
  ``[batch, time']``, where real outputs depend on real inputs only.
  """

  @classmethod
  def defaults_for(cls, keeps_steps=False):
    """Settings this encoder takes by default for a task (what the user
    does not set): ``keeps_steps``, the task needs one output step per
    input step (a label or a logit per step). Here none: an encoder that
    changes the time axis by default overrides it."""
    del keeps_steps
    return {}


def _per_block(value, count, name):
  """One value per block: a single value repeated, or a list of ``count``."""
  value = list(value)
  if len(value) == 1:
    return value * count
  if len(value) != count:
    raise InputError(f"{name}={value!r}: give one value for every conv "
                     f"block or one per block ({count}).")
  return value


@register_encoder("conv_gru")
class ConvGRUEncoder(Configurable, Encoder):
  """N masked conv blocks, then M masked GRU layers, the mask threaded through.

  Settings (its ``Config``; ``ConvGRUEncoder()`` is the encoder the command
  line builds by default):
    conv_filters: filters of each conv block; ``[]`` for no conv block.
    kernel_size, strides, dilation_rate, pool_size: one value for every
      block, or one per block.
    padding: conv padding mode, ``"same"``, ``"valid"`` or ``"causal"``.
    normalization: ``"batch"``, ``"layer"`` or ``"none"``, in each block.
    activation: the conv blocks' activation.
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
    ``[batch, time']``, time' shrunk by conv strides and pooling (see
    :meth:`time_changes`).
  """

  @dataclasses.dataclass
  class Config(Settings):
    """The encoder's settings: its defaults, flags and saved config."""
    conv_filters: list[int] = setting(
        [64], "conv_gru: filters of each conv block (empty: none).",
        lower=1, upper=MAX_WIDTH, resume=True)
    kernel_size: list[int] = setting(
        [5], "conv_gru: conv kernel size (one for every block, or one per "
        "block).", lower=1, upper=MAX_WINDOW, resume=True)
    strides: list[int] = setting([1], "conv_gru: conv stride.", lower=1,
                                 upper=MAX_WINDOW, resume=True)
    dilation_rate: list[int] = setting([1], "conv_gru: conv dilation.",
                                       lower=1, upper=MAX_WINDOW,
                                       resume=True)
    pool_size: list[int] = setting(
        [2], "conv_gru: max-pool size after each conv block (1: none).",
        lower=1, upper=MAX_WINDOW, resume=True)
    padding: str = setting("same", "conv_gru: conv padding.",
                           choices=masking.PADDING_MODES, resume=True)
    normalization: str = setting("batch", "conv_gru: conv block "
                                 "normalization.", choices=NORMALIZATIONS,
                                 resume=True)
    activation: str = setting("relu", "conv_gru: conv block activation.",
                              choices=ACTIVATIONS, resume=True)
    gru_units: list[int] = setting(
        [64], "conv_gru: units of each GRU layer (empty: none).", lower=1,
        upper=MAX_WIDTH, resume=True)
    bidirectional: bool = setting(True, "conv_gru: bidirectional GRUs.",
                                  resume=True)
    dropout: float = setting(
        0.1, "conv_gru: dropout in conv blocks and on GRU inputs.",
        lower=0.0, upper=0.99, resume=True)
    concat_conv: bool = setting(
        False, "conv_gru: output the last conv block's features beside the "
        "GRU's (the pooling sees both).", resume=True)

  @classmethod
  def defaults_for(cls, keeps_steps=False):
    """No pooling for a task that needs every step (a tag per word)."""
    return {"pool_size": [1]} if keeps_steps else {}

  @classmethod
  def search_space(cls, keeps_steps=False):
    """What ``maskmodels-tune`` searches of it by default (pooling only
    where the task does not need every step)."""
    space = {"conv_filters": {"choices": ["64", "128", "64,64"]},
             "kernel_size": {"choices": [3, 5, 7]},
             "gru_units": {"choices": ["32", "64", "128"]},
             "dropout": {"low": 0.0, "high": 0.4}}
    if not keeps_steps:
      space["pool_size"] = {"choices": [1, 2]}
    return space

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    config = self.settings
    count = len(config.conv_filters)
    geometry = zip(config.conv_filters,
                   _per_block(config.kernel_size, count, "kernel_size"),
                   _per_block(config.strides, count, "strides"),
                   _per_block(config.dilation_rate, count, "dilation_rate"),
                   _per_block(config.pool_size, count, "pool_size"))
    policy = self.dtype_policy
    self.blocks = [
        MaskedConvBlock(f, k, strides=s, dilation_rate=d,
                        padding=config.padding,
                        normalization=config.normalization,
                        activation=config.activation,
                        dropout=config.dropout, pool_size=p, dtype=policy,
                        name=f"conv_block_{i}")
        for i, (f, k, s, d, p) in enumerate(geometry)]
    self.grus = [
        MaskedGRU(units, bidirectional=config.bidirectional,
                  return_sequences=True, dropout=config.dropout,
                  dtype=policy, name=f"gru_{i}")
        for i, units in enumerate(config.gru_units)]

  def time_changes(self):
    """The settings that make the output time axis differ from the input's
    (``["pool_size=2", ...]``); empty when every input step has its own
    output step."""
    config, changes = self.settings, []
    if not config.conv_filters:
      return changes
    for name in ("strides", "pool_size"):
      if any(v != 1 for v in getattr(config, name)):
        changes.append(f"{name}={','.join(map(str, getattr(config, name)))}")
    if config.padding == "valid" and any(k > 1 for k in config.kernel_size):
      changes.append("padding=valid")
    return changes

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
    if self.settings.concat_conv and self.grus:
      x = tf.concat([conv_features, x], axis=-1)
    return x, mask
