"""Tasks: what a batch means to training (the loss, the metrics, the step).

A task is chosen by name (``--task``); research code subclasses one,
registers it with :func:`maskmodels.register_task`, and declares its own
settings as a nested ``Config`` dataclass of
:func:`~maskmodels.settings.setting` fields. Those become flags, are saved in
the model directory's ``config.json``, and (with ``resume=True``) must match
when the run resumes.
"""

import dataclasses

import keras
import tensorflow as tf

from maskmodels.registry import register_task
from maskmodels.settings import Settings


@dataclasses.dataclass
class NoSettings(Settings):
  """The settings of a task that has none of its own."""


class Task:
  """Base class of tasks: the loss, the metrics and the forward pass.

  Batches are ``(ids, labels, weights)``: ids int ``[batch, time]``, labels
  int ``[batch]``, weights float ``[batch]`` (0 for filler rows).

  Args:
    config: the task's settings (an instance of its ``Config`` class).
    class_names: the classes, in label order.
  """

  Config = NoSettings
  # The evaluation metric that picks the best checkpoint (higher is better).
  best_metric = "accuracy"

  def __init__(self, config=None, class_names=()):
    self.config = config
    self.class_names = list(class_names)

  def forward(self, model, ids, training):
    """Model outputs (logits ``[batch, classes]``) for a batch of ids.

    In training, a model with ``member_logits`` and ``combine`` (an
    ensemble) gives a list of logits: each member is trained on its own
    loss, their losses add up, and the metrics read ``model.combine`` of
    them, which is what the model outputs outside training.
    """
    if training and hasattr(model, "member_logits"):
      return model.member_logits(ids, training=True)
    return model(ids, training=training)

  def compute_loss(self, labels, logits, training):
    """Per-example loss ``[batch]``; ``training`` tells training steps from
    evaluation steps."""
    raise NotImplementedError

  def build_metrics(self, training):
    """``{name: keras.metrics.Metric}`` (built under the strategy's scope).
    Must hold ``"loss"``; evaluation metrics must hold ``best_metric``."""
    return {"loss": keras.metrics.Mean(name="loss")}

  def update_metrics(self, metrics, labels, logits, per_example_loss,
                     weights):
    """Updates the metrics of :meth:`build_metrics` with one batch."""
    metrics["loss"].update_state(per_example_loss, sample_weight=weights)


@register_task("classification")
class ClassificationTask(Task):
  """Softmax cross-entropy over classes; loss and accuracy."""

  def compute_loss(self, labels, logits, training):
    return keras.losses.sparse_categorical_crossentropy(
        labels, tf.cast(logits, tf.float32), from_logits=True)

  def build_metrics(self, training):
    return dict(super().build_metrics(training),
                accuracy=keras.metrics.SparseCategoricalAccuracy(
                    name="accuracy"))

  def update_metrics(self, metrics, labels, logits, per_example_loss,
                     weights):
    super().update_metrics(metrics, labels, logits, per_example_loss, weights)
    metrics["accuracy"].update_state(labels, logits, sample_weight=weights)


def build_task(name, settings, class_names):
  """The registered task ``name`` with its settings dict."""
  from maskmodels.registry import TASKS  # pylint: disable=import-outside-toplevel
  task_class = TASKS.get(name)
  return task_class(task_class.Config(**settings), class_names)
