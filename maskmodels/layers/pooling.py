"""Masked pooling over time: sequence ``[batch, time, dim]`` -> ``[batch, dim]``."""

import functools

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.layers.base import ExplicitMask
from maskmodels.registry import POOLINGS, Registry

# Masked reductions over time by name.
REDUCTIONS = Registry("reduction")
REDUCTIONS.add("mean", masking.masked_mean)
REDUCTIONS.add("max", masking.masked_max)
REDUCTIONS.add("last", masking.masked_last)


class Pooling(ExplicitMask, keras.layers.Layer):
  """Base class of poolings: subclass it and override ``call``.

  Contract: ``call(inputs, mask=None, training=None)`` takes float
  ``[batch, time, dim]`` and bool ``[batch, time]`` (True = real step) and
  returns ``[batch, dim']`` that depends on real steps only and is finite
  (zeros) for a sequence with no real step.
  """


@keras.saving.register_keras_serializable(package="maskmodels")
class MaskedPooling(Pooling):
  """Mean, max, last-valid-step or attention pooling over real steps.

  Args:
    mode: one of ``MaskedPooling.MODES``.
    attention_units: for ``"attention"``, the width of the tanh scoring layer
      (0 scores with a single linear unit).

  Call args:
    inputs: float ``[batch, time, dim]``.
    mask: bool ``[batch, time]``, True = real step; None = all real.

  Returns:
    ``[batch, dim]``; zeros for a sequence with no real step.
  """

  MODES = ("mean", "max", "last", "attention")

  def __init__(self, mode="max", attention_units=0, **kwargs):
    super().__init__(**kwargs)
    if mode not in self.MODES:
      raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}.")
    self.mode = mode
    self.attention_units = attention_units
    self.hidden = self.score = None
    if mode == "attention":
      if attention_units:
        self.hidden = keras.layers.Dense(attention_units, activation="tanh",
                                         dtype=self.dtype_policy,
                                         name="hidden")
      self.score = keras.layers.Dense(1, dtype=self.dtype_policy,
                                      name="score")

  def build(self, input_shape):
    if self.mode == "attention":
      width = input_shape[-1]
      if self.hidden is not None:
        self.hidden.build((None, None, width))
        width = self.attention_units
      self.score.build((None, None, width))

  def call(self, inputs, mask=None, training=None):
    if self.mode != "attention":
      return REDUCTIONS.get(self.mode)(inputs, mask)
    inputs = masking.apply_mask(inputs, mask)
    hidden = self.hidden(inputs) if self.hidden is not None else inputs
    scores = tf.squeeze(self.score(hidden), axis=-1)
    weights = masking.masked_softmax(scores, mask)
    return tf.einsum("bt,btd->bd", weights, inputs)

  def get_config(self):
    config = super().get_config()
    config.update(mode=self.mode, attention_units=self.attention_units)
    return config


for _mode in MaskedPooling.MODES:
  POOLINGS.add(_mode, functools.partial(MaskedPooling, mode=_mode))
