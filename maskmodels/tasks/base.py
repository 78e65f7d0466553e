"""The task: what the labels are, the model, the loss, the metrics, serving.

A task owns the problem and its step, as in Model Garden: it declares its
labels (:class:`LabelSpec`: dtype, one per example, per token or a
sequence of their own length, the pad value that never counts), reads and
encodes raw labels, builds its model from the run's model settings, runs
the train, validation and inference steps, computes the loss and metrics,
names its best metric and its direction, and turns model outputs into what
prediction and export return. Research code subclasses a task, registers it with
:func:`maskmodels.register_task` and picks it with ``--task``; its own
settings are a nested ``Config`` dataclass of
:func:`~maskmodels.settings.setting` fields (flags, saved in
``config.json``, checked on resume when ``resume=True``).

Shapes: a batch is ``(features, labels, weights)``. ``features`` are the
input kind's (token ids ``[batch, time]``; frames ``[batch, time,
channels]`` with lengths); labels are ``[batch]`` (per example),
``[batch, time]`` (per step, ``LabelSpec.pad`` at pad steps) or ``[batch,
references, length]`` (target sequences of their own length); weights
are float32 ``[batch]``, 0 for the filler rows that complete a batch.
"""

import dataclasses

import keras
import tensorflow as tf

from maskmodels.settings import Settings
from maskmodels.specs import DefaultData, LabelSpec  # noqa: F401  (re-exported)


@dataclasses.dataclass
class NoSettings(Settings):
  """The settings of a task that has none of its own."""


def per_item(values, weights, per_token):
  """``(values, weights)`` with one row per loss item, for Keras metrics.

  Per token, ``[batch, time, ...]`` becomes ``[batch * time, ...]``: a Keras
  metric reduces a ``[batch, time]`` update to one value per row, divided
  by the row's width, before it weighs rows, so batches of different widths
  (length buckets, padding) would weigh their tokens differently. Flat,
  every real token counts once and alike. Per example, nothing changes.
  """
  if not per_token:
    return values, weights
  values = tf.reshape(values, tf.concat([[-1], tf.shape(values)[2:]], 0))
  return values, tf.reshape(weights, [-1])


def model_outputs(outputs):
  """``(output, members)`` of a model's outputs: an ensemble returns
  ``{"output": ..., "members": {name: ...}}``, other models their output
  (a tensor, or a head's dict such as CTC's logits and mask; members is
  then None)."""
  if isinstance(outputs, dict) and "members" in outputs:
    return outputs["output"], outputs["members"]
  return outputs, None


class Task:
  """Base class of tasks.

  Args:
    config: the task's settings (an instance of its ``Config``).
    label_names: the label vocabulary of the run (class or tag names in
      index order), from :meth:`fit_labels` on the training split; empty
      for tasks whose labels are numbers.
  """

  Config = NoSettings
  labels = LabelSpec()
  # The validation metric that picks the best checkpoint, and whether
  # higher ("max") or lower ("min") is better.
  best_metric = "loss"
  best_mode = "min"
  # The head the model gets unless --head names another.
  default_head = "pooled"
  # The input kinds it reads (maskmodels.data.kinds): "text" (raw strings),
  # "words" (word lists, one token each, so labels align with them),
  # "frames" (float series with lengths).
  inputs = ("text", "frames")
  # What --data_format=default reads (None: the task has no embedded data).
  default_data = None
  # Settings (by name) this task's runs take unless the user sets them,
  # over the components' own defaults: what the task needs of its model
  # (a per-token task, an encoder that keeps the time axis).
  run_defaults = {}
  # Axis labels of the curves' panels, by metric name.
  metric_units = {"loss": "loss"}

  def __init__(self, config=None, label_names=()):
    self.config = config if config is not None else self.Config()
    self.label_names = list(label_names)

  # ---- labels ---------------------------------------------------------------

  def fit_labels(self, raw_labels, source):
    """The label vocabulary from the training split's raw labels (class
    names in index order), or ``[]`` for numeric labels."""
    del raw_labels, source
    return []

  def encode_labels(self, raw_labels, source):
    """Raw labels -> per-example labels of :attr:`labels`'s dtype: a NumPy
    array ``[n]``, or per token a list of arrays ``[length_i]``. A label
    that cannot be encoded is an :class:`InputError` naming ``source`` and
    the example."""
    raise NotImplementedError

  @property
  def output_size(self):
    """Outputs per example (or per token) the model's head gives."""
    raise NotImplementedError

  def validate(self, config):
    """Raises an :class:`InputError` naming a setting of the run's
    ``ExperimentConfig`` that this task cannot work with."""
    del config

  def training_examples(self, examples):
    """The training split as the steps read it (encoded labels): here as
    it is; a task whose examples hold several acceptable targets trains on
    one example per target."""
    return examples

  # ---- model ------------------------------------------------------------

  def build_model(self, settings, inputs):
    """The model for the run's ``ModelConfig`` (backbone, head, members);
    ``inputs`` are what the backbone reads (the input kind's
    ``model_inputs``: a vocabulary size, channels and statistics). The one
    place a run's model is made: training, evaluation, prediction and
    export call it (through ``training.builders.model_in_scope``)."""
    from maskmodels.models import assembly  # pylint: disable=import-outside-toplevel
    return assembly.assemble(settings, inputs, self.output_size,
                             per_token=self.labels.per_token)

  # ---- loss and metrics ----------------------------------------------------

  def loss_weights(self, labels, weights):
    """The weight of every loss item: ``weights`` ``[batch]`` per example;
    per token ``[batch, time]``, 0 at pad tokens. Their sum over the global
    batch divides the summed loss."""
    if not self.labels.per_token:
      return weights
    real = tf.not_equal(labels, tf.cast(self.labels.pad, labels.dtype))
    return weights[:, tf.newaxis] * tf.cast(real, weights.dtype)

  def compute_loss(self, labels, outputs, training):
    """Loss per item (``[batch]`` or ``[batch, time]``) of one output
    tensor; pad items may hold anything (their weight is 0)."""
    raise NotImplementedError

  def build_metrics(self, training):
    """``{name: keras.metrics.Metric}``, built under the strategy's scope.
    Must hold ``"loss"``; evaluation metrics must hold :attr:`best_metric`.
    Every name reaches the progress display, history.json and curves.png.
    """
    del training
    return {"loss": keras.metrics.Mean(name="loss")}

  def update_metrics(self, metrics, labels, outputs, losses, loss_weights):
    """Updates :meth:`build_metrics`'s metrics with one batch.

    Args:
      metrics: the dict :meth:`build_metrics` returned.
      labels: the batch's labels.
      outputs: the model's output (an ensemble's combined output).
      losses: :meth:`compute_loss` of ``outputs``.
      loss_weights: :meth:`loss_weights` of the batch (0 for filler rows
        and pad tokens).
    """
    del labels, outputs
    losses, weights = per_item(losses, loss_weights, self.labels.per_token)
    metrics["loss"].update_state(losses, sample_weight=weights)

  # ---- steps (called by the trainer, in a replica's context) -----------------

  def step_metrics(self, model, training):
    """The metrics the trainer keeps: :meth:`build_metrics`, and in
    training each ensemble member's own loss (``loss/<member>``)."""
    metrics = self.build_metrics(training)
    if training:
      for name in getattr(model, "member_names", ()):
        metrics[f"loss/{name}"] = keras.metrics.Mean(name=f"loss/{name}")
    return metrics

  def train_step(self, model, batch, loss_weights, total_weight):
    """The forward pass and the objective of one replica's batch, under the
    trainer's gradient tape.

    The trainer sums the gradients of the objective over replicas (one
    all-reduce), clips and applies them; a task that overrides this
    changes what a step computes, not how it is distributed.

    Args:
      model: the run's model.
      batch: ``(features, labels, weights)``, this replica's rows.
      loss_weights: :meth:`loss_weights` of the batch.
      total_weight: the sum of ``loss_weights`` over every replica.

    Returns:
      ``(objective, state)``: this replica's share of the global-batch
      loss (a float32 scalar), and the tensors :meth:`update_train_metrics`
      reads (here ``output`` and ``losses``: the combined output's per-item
      loss ``"loss"``, and an ensemble member's ``"loss/<name>"``, from
      which the member learns alone).
    """
    features, labels, _ = batch
    output, members = model_outputs(model(features, training=True))
    losses = {"loss": self.compute_loss(labels, output, True)}
    for name in (members or {}):
      losses[f"loss/{name}"] = self.compute_loss(labels, members[name], True)
    learned = [losses[k] for k in losses if k != "loss"] or [losses["loss"]]
    objective = tf.add_n([tf.reduce_sum(tf.cast(loss, tf.float32) *
                                        loss_weights) / total_weight
                          for loss in learned])
    return objective, {"output": output, "losses": losses}

  def update_train_metrics(self, metrics, batch, loss_weights, state):
    """Updates the training metrics with one step's :meth:`train_step`
    ``state``."""
    _, labels, _ = batch
    self.update_metrics(metrics, labels, state["output"],
                        state["losses"]["loss"], loss_weights)
    for key, losses in state["losses"].items():
      if key != "loss":
        metrics[key].update_state(*per_item(losses, loss_weights,
                                            self.labels.per_token))

  def validation_step(self, model, batch, metrics):
    """Updates the evaluation metrics with one replica's batch (validation,
    the test pass and ``maskmodels-evaluate`` all run this)."""
    features, labels, weights = batch
    output, _ = model_outputs(model(features, training=False))
    loss_weights = self.loss_weights(labels, weights)
    self.update_metrics(metrics, labels, output,
                        self.compute_loss(labels, output, False),
                        loss_weights)

  def inference_step(self, model, features):
    """Features -> :meth:`postprocess`'s tensors (prediction and export)."""
    return self.postprocess(model(features, training=False))

  # ---- serving --------------------------------------------------------------

  def postprocess(self, outputs):
    """Model output -> ``{name: tensor}``, what prediction and export
    return (each ``[batch, ...]``)."""
    output, _ = model_outputs(outputs)
    return {"outputs": tf.cast(output, tf.float32)}

  def describe(self, inputs, prediction):
    """One line of ``maskmodels-predict`` output for one example.

    Args:
      inputs: the example as given (a string, or a list of words).
      prediction: the example's row of :meth:`postprocess`'s tensors, as
        NumPy values.
    """
    values = " ".join(f"{v:.4f}" for v in prediction["outputs"].ravel())
    return f"{values}\t{shown(inputs)}"

  def better(self, value, best):
    """Whether metric ``value`` beats ``best`` in :attr:`best_mode`."""
    return value < best if self.best_mode == "min" else value > best

  @property
  def worst_value(self):
    """The best-metric value every real value beats."""
    return float("inf") if self.best_mode == "min" else float("-inf")


def shown(inputs):
  """One raw input as a prediction line shows it: a text, a word list's
  words, or a series' length."""
  if isinstance(inputs, str):
    return inputs
  if hasattr(inputs, "shape"):
    return f"a series of {len(inputs)} frames"
  return " ".join(inputs)


def build_task(name, settings, label_names=()):
  """The registered task ``name`` with its settings dict."""
  from maskmodels.registry import TASKS  # pylint: disable=import-outside-toplevel
  task_class = TASKS.get(name)
  if task_class.best_mode not in ("max", "min"):
    raise ValueError(f"{task_class.__name__}.best_mode must be 'max' or "
                     f"'min', got {task_class.best_mode!r}.")
  return task_class(task_class.Config(**settings), label_names)
