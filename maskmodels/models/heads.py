"""Heads: a backbone's steps and mask -> a task's outputs.

``pooled`` reads one vector per sequence (a registered pooling over the real
steps) for sequence-level labels; ``per_step`` gives every input token its
own output, in the input's own layout, for per-token labels; ``ctc`` gives
logits per encoder step. Each takes the backbone's output dict
(``maskmodels.models.backbone``) and returns ``ModelOutputs``
(``maskmodels.outputs``): float32 ``[batch, output_size]``, or ``[batch,
time, output_size]`` with their mask.
"""

import dataclasses

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.errors import InputError
from maskmodels.layers.base import ExplicitMask
from maskmodels.layers.dropout import Dropout
# Imported for its side effect: it registers the built-in poolings by name.
from maskmodels.layers import pooling as _builtin_poolings  # noqa: F401
from maskmodels.models.backbone import component
from maskmodels.outputs import ModelOutputs
from maskmodels.registry import POOLINGS, register_head
from maskmodels.settings import MAX_WIDTH, Configurable, Settings, setting


class Head(Configurable, ExplicitMask, keras.layers.Layer):
  """Base class of heads: subclass it, override ``call``, register a name.

  Args:
    output_size: outputs per example (or per token): the task's.
    head_units, head_dropout: hidden ReLU layers before the outputs, and
      the dropout before each (the settings of :class:`HeadConfig`).

  ``call(outputs, training=None)`` takes the backbone's output dict and
  returns ``ModelOutputs`` (a bare tensor is read as its ``outputs``).
  """

  per_token = False

  @dataclasses.dataclass
  class Config(Settings):
    """Hidden layers of a head."""
    head_units: list[int] = setting([], "Hidden layers of the head.",
                                    lower=1, upper=MAX_WIDTH, resume=True)
    head_dropout: float = setting(0.1, "Dropout before each head layer.",
                                  lower=0.0, upper=0.99, resume=True)

  def __init__(self, output_size, **kwargs):
    super().__init__(**kwargs)
    if not isinstance(output_size, int) or output_size < 1:
      raise ValueError(f"output_size must be a positive int, got "
                       f"{output_size!r}.")
    self.output_size = output_size
    policy = self.dtype_policy
    self.hidden = [keras.layers.Dense(units, activation="relu", dtype=policy,
                                      name=f"hidden_{i}")
                   for i, units in enumerate(self.settings.head_units)]
    self.dropout = Dropout(self.settings.head_dropout, dtype=policy,
                           name="dropout")
    self.logits = keras.layers.Dense(output_size, dtype="float32",
                                     name="logits")

  def build(self, input_shape=None):
    """The sublayers build on the first call (their widths come from the
    backbone)."""
    del input_shape
    self.built = True

  def check_backbone(self, backbone):
    """Raises an :class:`InputError` if this head cannot read ``backbone``."""
    del backbone

  def project(self, x, training):
    """Hidden layers, then the float32 outputs, over the last axis."""
    for layer in self.hidden:
      x = layer(self.dropout(x, training=training))
    return self.logits(self.dropout(x, training=training))

  def get_config(self):
    return dict(super().get_config(), output_size=self.output_size)


@register_head("pooled")
class PooledHead(Head):
  """A registered pooling over the real steps, then dense layers:
  ``[batch, output_size]``."""

  @dataclasses.dataclass
  class Config(Head.Config):
    """The pooling and the hidden layers."""
    pooling: str = setting("max", "Registered pooling of the pooled head.",
                           choices=POOLINGS, resume=True)
    pooling_config: dict = setting({}, "JSON settings of --pooling.",
                                   resume=True)

  # What maskmodels-tune searches of it by default.
  search_space = {"pooling": {"choices": ["max", "mean", "attention"]},
                  "head_dropout": {"low": 0.0, "high": 0.5}}

  def __init__(self, output_size, **kwargs):
    super().__init__(output_size, **kwargs)
    self.pooling = component(self.settings.pooling,
                             self.settings.pooling_config, POOLINGS,
                             self.dtype_policy)

  def call(self, outputs, training=None):
    pooled = self.pooling(outputs["steps"], mask=outputs["mask"],
                          training=training)
    return ModelOutputs(self.project(pooled, training))


@register_head("per_step")
class PerStepHead(Head):
  """Dense layers on every step: ``[batch, time, output_size]`` in the
  input's own layout (an input token's outputs where the token was; zeros
  at pad tokens), with the input's mask. The encoder must keep the time
  axis: one output step per input token."""

  per_token = True

  def check_backbone(self, backbone):
    encoder = getattr(backbone, "encoder", None)
    changes = getattr(encoder, "time_changes", lambda: [])()
    if changes:
      raise InputError(
          f"The per-step head needs an encoder that keeps the time axis (one "
          f"output per token); encoder {encoder.name!r} changes it with "
          f"{', '.join(changes)}. Use stride 1, pool size 1 and 'same' or "
          f"'causal' padding for a per-token task.")

  def call(self, outputs, training=None):
    steps, mask = outputs["steps"], outputs["token_mask"]
    if steps.shape[1] is not None and mask.shape[1] is not None and (
        steps.shape[1] != mask.shape[1]):
      raise InputError(f"The per-step head got {steps.shape[1]} encoder "
                       f"steps for {mask.shape[1]} tokens; its encoder must "
                       f"keep the time axis.")
    logits = masking.apply_mask(self.project(steps, training), mask)
    return ModelOutputs(masking.restore_order(logits, outputs["order"]),
                        masking.restore_order(mask, outputs["order"]))


@register_head("ctc")
class CTCHead(Head):
  """Logits for CTC on every encoder step, with the encoder's output mask:
  ``ModelOutputs(logits [batch, steps * upsample, output_size], mask bool
  [batch, steps * upsample])`` (True = real step).

  The logit lengths are the encoder's real steps after its strides and
  pools, times ``upsample``: each encoder step writes ``upsample`` logit
  steps (a dense layer of ``upsample * output_size`` reshaped), which makes
  room for targets longer than the encoder's output (a word with more
  phones than letters).
  """

  @dataclasses.dataclass
  class Config(Head.Config):
    """The hidden layers and the logit steps per encoder step."""
    upsample: int = setting(
        2, "ctc head: logit steps per encoder step (room for targets "
        "longer than the encoder's output).", lower=1, upper=16,
        resume=True)

  def __init__(self, output_size, **kwargs):
    super().__init__(output_size, **kwargs)
    self.logits = keras.layers.Dense(output_size * self.settings.upsample,
                                     dtype="float32", name="logits")

  def call(self, outputs, training=None):
    steps, mask = outputs["steps"], outputs["mask"]
    k = self.settings.upsample
    logits = self.project(steps, training)
    shape = tf.shape(logits)
    logits = tf.reshape(logits, [shape[0], shape[1] * k, self.output_size])
    mask = tf.repeat(tf.cast(mask, tf.bool), k, axis=1)
    return ModelOutputs(masking.apply_mask(logits, mask), mask)
