"""One tag per word: part-of-speech tagging and other per-token tasks."""

import keras
import numpy as np
import tensorflow as tf

from maskmodels.data.readers import where
from maskmodels.errors import InputError
from maskmodels.registry import register_task
from maskmodels.tasks.base import (DefaultData, StepLabels, Task,
                                   blank_past_lengths)

PAD_TAG = -1


def check_tag_lists(raw_labels, source):
  """Raises an InputError naming the example unless every raw label is a
  list of tags (a string is one label, not one per step)."""
  for i, tags in enumerate(raw_labels):
    if not isinstance(tags, (list, tuple)) and not (
        hasattr(tags, "ndim") and tags.ndim == 1):
      raise InputError(f"{where(source, i)}: the label {tags!r} is not a "
                       f"list; expected a list of tags, one per step.")


@register_task("tagging")
class TaggingTask(Task):
  """Softmax cross-entropy per word over tags, counted on real words only.

  Examples are lists of words (each one token: the tokenizer maps a word to
  one id, so tags stay aligned) with one tag each; tags are indexed in
  sorted order of the training split's tags. Labels are ``[time]``,
  :data:`PAD_TAG` at pad tokens. The loss is averaged over the real words
  of the global batch, so neither it nor its gradients depend on the
  replica count or on how words fall into batches. Metrics: token
  accuracy, sentence accuracy (the fraction of sentences with every tag
  right; sentences without words do not count) and the number of words
  counted. Serving returns one tag per word.
  """

  labels = StepLabels("int32", pad=PAD_TAG)
  best_metric = "token_accuracy"
  best_mode = "max"
  default_head = "per_step"
  keeps_steps = True  # a tag per word
  inputs = ("words", "frames")
  default_data = DefaultData(
      "conllu", {"train": "ewt_sample_train.conllu.gz",
                 "test": "ewt_sample_test.conllu.gz"},
      "a sample of Universal Dependencies English-EWT (CC BY-SA 4.0), UPOS")
  metric_units = {"loss": "cross-entropy per word (nats)",
                  "token_accuracy": "fraction of words tagged right",
                  "sentence_accuracy": "fraction of sentences all right",
                  "tokens": "words"}
  display = {"output": "tags"}

  def fit_labels(self, raw_labels, source):
    check_tag_lists(raw_labels, source)
    names = sorted({str(tag) for tags in raw_labels for tag in tags})
    if len(names) < 2:
      raise InputError(f"{source} has {len(names)} tag(s) {names}; a tagger "
                       f"needs at least 2.")
    return names

  def encode_labels(self, raw_labels, source):
    check_tag_lists(raw_labels, source)
    index = {name: i for i, name in enumerate(self.label_names)}
    encoded = []
    for i, tags in enumerate(raw_labels):
      try:
        encoded.append(np.array([index[str(t)] for t in tags], np.int32))
      except KeyError as error:
        raise InputError(f"Unknown tag {error.args[0]!r} in "
                         f"{where(source, i)}; expected one of "
                         f"{self.label_names}.") from None
    return encoded

  @property
  def output_size(self):
    return len(self.label_names)

  def compute_loss(self, labels, outputs, training):
    del training
    return keras.losses.sparse_categorical_crossentropy(
        tf.maximum(labels, 0), tf.cast(outputs.outputs, tf.float32),
        from_logits=True)

  def build_metrics(self, training):
    return dict(
        super().build_metrics(training),
        token_accuracy=keras.metrics.SparseCategoricalAccuracy(
            name="token_accuracy"),
        sentence_accuracy=keras.metrics.Mean(name="sentence_accuracy"),
        tokens=keras.metrics.Sum(name="tokens"))

  def update_metrics(self, metrics, labels, outputs, losses, loss_weights):
    super().update_metrics(metrics, labels, outputs, losses, loss_weights)
    logits = outputs.outputs
    real = loss_weights > 0
    predicted = tf.argmax(logits, axis=-1, output_type=labels.dtype)
    tags, weights = self.labels.per_item(tf.maximum(labels, 0),
                                         loss_weights)
    metrics["token_accuracy"].update_state(
        tags, self.labels.per_item(logits, loss_weights)[0],
        sample_weight=weights)
    wrong = tf.reduce_any(real & tf.not_equal(predicted, labels), axis=1)
    sentences = tf.cast(tf.reduce_any(real, axis=1), tf.float32)
    metrics["sentence_accuracy"].update_state(
        1.0 - tf.cast(wrong, tf.float32), sample_weight=sentences)
    metrics["tokens"].update_state(tf.reduce_sum(loss_weights))

  def served_outputs(self, outputs):
    probabilities = tf.nn.softmax(tf.cast(outputs.outputs, tf.float32),
                                  axis=-1)
    tag_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    served = {"probabilities": probabilities, "tag_ids": tag_ids,
              "tags": tf.gather(tf.constant(self.label_names), tag_ids)}
    return dict(blank_past_lengths(served, outputs.mask),
                lengths=outputs.lengths)
