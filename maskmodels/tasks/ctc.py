"""CTC: a target sequence from the logits of every encoder step."""

import keras
import tensorflow as tf

from maskmodels import ctc
from maskmodels.registry import register_task
from maskmodels.tasks.targets import (CMUDICT_SAMPLE, Decoding,
                                      TargetSequenceTask, first_target)


@register_task("ctc")
class CTCTask(TargetSequenceTask):
  """Connectionist temporal classification over the masked encoder.

  The ``ctc`` head gives logits per encoder step with the encoder's output
  mask, so the logit lengths are exact after strides and pools (never a
  proportion of the input length). Id 0 is the blank. The loss is
  ``tf.nn.ctc_loss`` per example, averaged over the global batch; an
  example whose target cannot fit in its logit length (:func:`maskmodels.
  ctc.required_steps`) has a loss of 0 and counts in the metric ``unfit``
  instead of a NaN or an infinite loss: give the encoder more steps
  (``--upsample``, less pooling). Decoding: best path (``--beam_width=1``)
  or TensorFlow's CTC beam search.
  """

  Config = Decoding

  reserved = ("<blank>",)
  default_head = "ctc"
  default_data = CMUDICT_SAMPLE
  # Characters in, one id each; the encoder keeps one step per character.
  run_defaults = {"tokenizer": "char", "pool_size": [1], "upsample": 2}
  metric_units = dict(TargetSequenceTask.metric_units,
                      loss="CTC negative log likelihood per target",
                      unfit="targets longer than their logits")

  def build_metrics(self, training):
    return dict(super().build_metrics(training),
                unfit=keras.metrics.Sum(name="unfit"))

  def compute_loss(self, labels, outputs, training):
    del training
    targets, lengths = first_target(labels)
    loss, _ = ctc.ctc_loss(targets, lengths, outputs["logits"],
                           outputs["mask"])
    return loss

  def update_metrics(self, metrics, labels, outputs, losses, loss_weights):
    super().update_metrics(metrics, labels, outputs, losses, loss_weights)
    fits = ctc.fits(*first_target(labels), outputs["mask"])
    metrics["unfit"].update_state(
        (1.0 - tf.cast(fits, tf.float32)) * loss_weights)

  def validation_step(self, model, batch, metrics):
    features, labels, weights = batch
    outputs = model(features, training=False)
    self.update_metrics(metrics, labels, outputs,
                        self.compute_loss(labels, outputs, False), weights)
    self.update_error_rates(metrics, labels, weights,
                            *self.decoded(outputs))

  def decoded(self, outputs):
    """``(ids, lengths)`` of the head's outputs, by best path or beam
    search."""
    if self.config.beam_width == 1:
      return ctc.greedy_decode(outputs["logits"], outputs["mask"])
    ids, lengths, _ = ctc.beam_decode(outputs["logits"], outputs["mask"],
                                      self.config.beam_width)
    return ids, lengths

  def decode(self, model, features):
    return self.decoded(model(features, training=False))
