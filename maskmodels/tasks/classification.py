"""One text in, one class out."""

import keras
import numpy as np
import tensorflow as tf

from maskmodels.data.readers import where
from maskmodels.errors import InputError
from maskmodels.registry import register_task
from maskmodels.tasks.base import DefaultData, LabelSpec, Task


def class_indices(raw_labels, names, source):
  """Raw labels -> int32 indices into ``names``; an unknown label is an
  :class:`InputError` naming ``source``, the example (its line) and the
  classes."""
  index = {name: i for i, name in enumerate(names)}
  labels = np.empty(len(raw_labels), np.int32)
  for i, label in enumerate(raw_labels):
    label = str(label)
    if label not in index:
      raise InputError(f"Unknown label {label!r} in {where(source, i)}; "
                       f"expected one of {list(names)}.")
    labels[i] = index[label]
  return labels


@register_task("classification")
class ClassificationTask(Task):
  """Softmax cross-entropy over classes; loss and accuracy.

  Labels are class names (any strings; numbers are read as their text),
  indexed in sorted order of the training split's names. Outputs are
  logits ``[batch, classes]``; serving returns probabilities, the index
  and the name of the likeliest class.
  """

  labels = LabelSpec("int32", pad=0)
  best_metric = "accuracy"
  best_mode = "max"
  default_head = "pooled"
  default_data = DefaultData(
      "jsonl", {"train": "default_train.jsonl.gz",
                "test": "default_test.jsonl.gz"},
      "synthetic movie reviews (neg/pos)")
  metric_units = {"loss": "cross-entropy (nats)",
                  "accuracy": "fraction correct"}
  display = {"output": "labels", "score": "probabilities"}

  def fit_labels(self, raw_labels, source):
    names = sorted({str(label) for label in raw_labels})
    if len(names) < 2:
      raise InputError(f"{source} has a single class {names}; a classifier "
                       f"needs at least 2.")
    return names

  def encode_labels(self, raw_labels, source):
    return class_indices(raw_labels, self.label_names, source)

  @property
  def output_size(self):
    return len(self.label_names)

  def compute_loss(self, labels, outputs, training):
    del training
    return keras.losses.sparse_categorical_crossentropy(
        labels, tf.cast(outputs.outputs, tf.float32), from_logits=True)

  def build_metrics(self, training):
    return dict(super().build_metrics(training),
                accuracy=keras.metrics.SparseCategoricalAccuracy(
                    name="accuracy"))

  def update_metrics(self, metrics, labels, outputs, losses, loss_weights):
    super().update_metrics(metrics, labels, outputs, losses, loss_weights)
    metrics["accuracy"].update_state(labels, outputs.outputs,
                                     sample_weight=loss_weights)

  def served_outputs(self, outputs):
    probabilities = tf.nn.softmax(tf.cast(outputs.outputs, tf.float32),
                                  axis=-1)
    label_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    return {"probabilities": probabilities, "label_ids": label_ids,
            "labels": tf.gather(tf.constant(self.label_names), label_ids)}
