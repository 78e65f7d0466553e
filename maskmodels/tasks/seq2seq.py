"""Sequence to sequence: an attention decoder over the masked encoder."""

import dataclasses

import keras
import tensorflow as tf
from absl import logging

from maskmodels.outputs import model_outputs
from maskmodels.registry import DECODERS, register_task
from maskmodels.settings import MAX_WIDTH, setting
from maskmodels.specs import StepLabels
from maskmodels.tasks.targets import (CMUDICT_SAMPLE, Decoding,
                                      TargetSequenceTask, first_target)

# Ids the decoder reserves: the pad, the start it reads first, the end it
# writes last.
PAD, START, END = 0, 1, 2


def decoder_io(labels):
  """Training targets of the first reference: ``(targets_in, targets_out,
  real)``, int32 ``[batch, time + 1]`` each (``START`` then the target;
  the target then ``END``; True at the target's steps and its end)."""
  targets, lengths = first_target(labels)
  batch = tf.shape(targets)[0]
  targets_in = tf.concat([tf.fill([batch, 1], START), targets], 1)
  width = tf.shape(targets_in)[1]
  targets_in = tf.where(tf.sequence_mask(lengths + 1, width), targets_in, 0)
  end = tf.one_hot(lengths, width, on_value=END, off_value=0,
                   dtype=tf.int32)
  targets_out = tf.concat([targets, tf.zeros([batch, 1], tf.int32)], 1)
  targets_out = tf.where(tf.sequence_mask(lengths, width), targets_out, 0)
  return targets_in, targets_out + end, tf.sequence_mask(lengths + 1, width)


@register_task("seq2seq")
class Seq2SeqTask(TargetSequenceTask):
  """A target sequence written token by token by a registered decoder
  (``attention_gru``: a GRU with multiplicative attention over the real
  encoder steps only).

  Training: teacher forcing, cross-entropy per target token and its end,
  averaged over the real target tokens of the global batch (target
  padding never counts). Evaluation, prediction and export: beam search
  in the graph (``--beam_width``, 1 = greedy) of at most
  ``--max_output_len`` tokens (the model's one decode path); the error
  rates against the closest reference. A validation batch is encoded
  once, for its loss and its decoding.
  """

  @dataclasses.dataclass
  class Config(Decoding):
    """The decoder and its decoding."""
    decoder: str = setting("attention_gru", "seq2seq: registered decoder.",
                           choices=DECODERS, resume=True)
    decoder_config: dict = setting(
        {}, "seq2seq: JSON settings of --decoder (attention_gru: "
        "embedding_dim, units).", resume=True)
    max_output_len: int = setting(
        32, "seq2seq: the most tokens written per output (a longer "
        "reference is counted and announced).", lower=1, upper=MAX_WIDTH)

  reserved = ("<pad>", "<s>", "</s>")
  default_data = CMUDICT_SAMPLE
  metric_units = dict(TargetSequenceTask.metric_units,
                      loss="cross-entropy per target token (nats)")

  def encode_labels(self, raw_labels, source):
    encoded = super().encode_labels(raw_labels, source)
    longest = self.config.max_output_len
    over = sum(int(((ids > 0).sum(axis=1) > longest).any())
               for ids in encoded)
    if over:
      logging.warning("%d of the %d examples of %s have a target longer "
                      "than --max_output_len=%d tokens: decoding cannot "
                      "write it (they are trained on whole).", over,
                      len(encoded), source, longest)
    return encoded

  def build_model(self, settings, inputs):
    # pylint: disable=import-outside-toplevel
    from maskmodels.models.assembly import build_backbone
    from maskmodels.models.seq2seq import Seq2SeqModel
    return Seq2SeqModel.from_settings(
        build_backbone(settings, inputs), self.config.decoder,
        self.config.decoder_config, len(self.label_names),
        self.config.max_output_len, self.config.beam_width)

  # ---- steps ----------------------------------------------------------------

  def loss_weights(self, labels, weights):
    _, _, real = decoder_io(labels)
    return weights[:, tf.newaxis] * tf.cast(real, weights.dtype)

  def compute_loss(self, labels, outputs, training):
    del training
    _, targets_out, _ = decoder_io(labels)
    return token_losses(targets_out, outputs)

  def update_metrics(self, metrics, labels, outputs, losses, loss_weights):
    del labels, outputs
    metrics["loss"].update_state(*StepLabels().per_item(losses,
                                                        loss_weights))

  def train_step(self, model, batch, loss_weights, total_weight):
    features, labels, _ = batch
    targets_in, targets_out, _ = decoder_io(labels)
    logits = model.teacher_forced(features, targets_in, training=True)
    losses = token_losses(targets_out, logits)
    objective = tf.reduce_sum(losses * loss_weights) / total_weight
    return objective, {"output": logits, "losses": {"loss": losses}}

  def validation_step(self, model, batch, metrics):
    features, labels, weights = batch
    targets_in, targets_out, _ = decoder_io(labels)
    encoded = model.encode(features, training=False)
    logits = model.teacher_forced(features, targets_in, training=False,
                                  encoded=encoded)
    self.update_metrics(metrics, labels, logits,
                        token_losses(targets_out, logits),
                        self.loss_weights(labels, weights))
    decoded = model.decode(features, encoded=encoded)
    self.update_error_rates(metrics, labels, weights, decoded.outputs,
                            decoded.lengths)

  def served_outputs(self, outputs):
    outputs = model_outputs(outputs)
    return self.strings(outputs.outputs, outputs.lengths)


def token_losses(targets_out, outputs):
  """Cross-entropy of each next token ``[batch, time + 1]`` of the
  teacher-forced :class:`ModelOutputs`."""
  return keras.losses.sparse_categorical_crossentropy(
      targets_out, tf.cast(model_outputs(outputs).outputs, tf.float32),
      from_logits=True)
