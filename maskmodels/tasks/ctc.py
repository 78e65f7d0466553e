"""CTC: a target sequence from the logits of every encoder step."""

import keras
import tensorflow as tf

from maskmodels import ctc
from maskmodels.outputs import model_outputs
from maskmodels.registry import register_task
from maskmodels.tasks.targets import (CMUDICT_SAMPLE, Decoding,
                                      TargetSequenceTask, first_target)


@register_task("ctc")
class CTCTask(TargetSequenceTask):
  """Connectionist temporal classification over the masked encoder.

  The ``ctc`` head gives logits per encoder step with the encoder's output
  mask, so the logit lengths are exact after strides and pools (never a
  proportion of the input length). Id 0 is the blank. The loss is
  ``tf.nn.ctc_loss`` per example, averaged over the examples of the global
  batch whose target fits in its logit length (:func:`maskmodels.ctc.
  required_steps`): one that cannot fit has weight 0 (neither the loss,
  its mean nor the gradient sees it) and counts in the metric ``unfit``
  instead of a NaN or an infinite loss: give the encoder more steps
  (``--upsample``, less pooling). Decoding: best path (``--beam_width=1``)
  or TensorFlow's CTC beam search.
  """

  Config = Decoding

  reserved = ("<blank>",)
  default_head = "ctc"
  default_data = CMUDICT_SAMPLE
  metric_units = dict(TargetSequenceTask.metric_units,
                      loss="CTC negative log likelihood per target",
                      unfit="targets longer than their logits")

  def build_metrics(self, training):
    return dict(super().build_metrics(training),
                unfit=keras.metrics.Sum(name="unfit"))

  def compute_loss(self, labels, outputs, training):
    del training
    targets, lengths = first_target(labels)
    loss, _ = ctc.ctc_loss(targets, lengths, outputs.outputs, outputs.mask)
    return loss

  def fitted_weights(self, labels, outputs, loss_weights):
    """``loss_weights`` with 0 for every example whose target does not
    fit in its logit steps, and the ``[batch]`` float 1/0 of fitting."""
    fit = tf.cast(ctc.fits(*first_target(labels), outputs.mask),
                  loss_weights.dtype)
    return loss_weights * fit, fit

  def train_step(self, model, batch, loss_weights, total_weight):
    """The mean loss over the global batch's examples that fit: their
    count is summed over replicas here, as the trainer sums every
    example's weight."""
    del total_weight  # it counts the examples that do not fit too
    features, labels, _ = batch
    outputs = model_outputs(model(features, training=True))
    losses = self.compute_loss(labels, outputs, True)
    weights, _ = self.fitted_weights(labels, outputs, loss_weights)
    total = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, tf.stop_gradient(tf.reduce_sum(weights)))
    objective = tf.reduce_sum(losses * weights) / tf.maximum(total, 1.0)
    return objective, {"output": outputs, "losses": {"loss": losses}}

  def update_metrics(self, metrics, labels, outputs, losses, loss_weights):
    weights, fit = self.fitted_weights(labels, outputs, loss_weights)
    metrics["loss"].update_state(losses, sample_weight=weights)
    metrics["unfit"].update_state((1.0 - fit) * loss_weights)

  def validation_step(self, model, batch, metrics):
    features, labels, weights = batch
    outputs = model_outputs(model(features, training=False))
    self.update_metrics(metrics, labels, outputs,
                        self.compute_loss(labels, outputs, False), weights)
    self.update_error_rates(metrics, labels, weights,
                            *self.decoded(outputs))

  def decoded(self, outputs):
    """``(ids, lengths)`` of the head's :class:`ModelOutputs` (logits and
    their mask), by best path or beam search: the one decode path of
    validation, prediction and export."""
    if self.config.beam_width == 1:
      return ctc.greedy_decode(outputs.outputs, outputs.mask)
    ids, lengths, _ = ctc.beam_decode(outputs.outputs, outputs.mask,
                                      self.config.beam_width)
    return ids, lengths

  def served_outputs(self, outputs):
    return self.strings(*self.decoded(model_outputs(outputs)))
