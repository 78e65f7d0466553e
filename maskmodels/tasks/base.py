"""The task: what the labels are, the model, the loss, the metrics, serving.

A task owns the problem and its step, as in Model Garden: it declares its
labels (a label spec, ``maskmodels.specs``: one per example, one per step,
a sequence of its own length, or research code's own shape), reads and
encodes raw labels, builds its model from the run's model settings, runs
the train, validation and inference steps, computes the loss and metrics,
names its best metric and its direction, and derives what prediction and
export return from the model's :class:`~maskmodels.outputs.ModelOutputs`.
Research code subclasses a task, registers it with
:func:`maskmodels.register_task` and picks it with ``--task``; its own
settings are a nested ``Config`` dataclass of
:func:`~maskmodels.settings.setting` fields (flags, saved in
``config.json``, checked on resume when ``resume=True``).

Shapes: a batch is ``(features, labels, weights)``. ``features`` are the
input kind's (token ids ``[batch, time]``; frames ``[batch, time,
channels]``; both with ``lengths`` ``[batch]``); labels are as the spec
batches them (``[batch]``, ``[batch, time]``, ``[batch, references,
length]``...); weights are float32 ``[batch]``, 0 for the filler rows
that complete a batch. Every model returns ``ModelOutputs(outputs, mask,
extras)``; the loss, the metrics and the served outputs read it.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from maskmodels.outputs import ModelOutputs, model_outputs  # noqa: F401  (re-exported)
from maskmodels.settings import Settings
from maskmodels.specs import (DefaultData, LabelSpec, SequenceLabels,  # noqa: F401  (re-exported)
                              StepLabels)


@dataclasses.dataclass
class NoSettings(Settings):
  """The settings of a task that has none of its own."""


def per_item(values, weights, per_token):
  """``(values, weights)`` with one row per loss item, for Keras metrics
  (per token: ``StepLabels.per_item``; per example, as they are)."""
  if not per_token:
    return values, weights
  return StepLabels().per_item(values, weights)


def blank_past_lengths(outputs, mask):
  """Per-step served outputs with every step past its input's real steps
  blank: "" for strings, -1 for integers (an id no label has), 0 for
  numbers.

  Args:
    outputs: ``{name: tensor}``; those of rank 2 or more are per step,
      ``[batch, time, ...]``.
    mask: bool ``[batch, time]``, True at real steps.
  """
  blanked = {}
  for name, value in outputs.items():
    if value.shape.rank is None or value.shape.rank < 2:
      blanked[name] = value
      continue
    real = tf.cast(mask, tf.bool)
    while real.shape.rank < value.shape.rank:
      real = real[..., tf.newaxis]
    blank = ("" if value.dtype == tf.string else
             -1 if value.dtype.is_integer else 0)
    blanked[name] = tf.where(real, value, tf.constant(blank, value.dtype))
  return blanked


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
  # The input kinds it reads (their ``like``: "text" raw strings, "words"
  # word lists, one token each, so labels align with them, "frames" float
  # series with lengths).
  inputs = ("text", "frames")
  # What --data_format=default reads (None: the task has no embedded data).
  default_data = None
  # Whether its model needs one encoder step per input step (a label or a
  # logit per step): an encoder that pools by default keeps every step
  # for it (its ``defaults_for``), unless the user says otherwise.
  keeps_steps = False
  # Core settings (ExperimentConfig's, by name) this task's runs take
  # unless the user sets them (the character tokenizer of spelled inputs);
  # a component's settings are the component's to choose.
  run_defaults = {}
  # Axis labels of the curves' panels, by metric name.
  metric_units = {"loss": "loss"}
  # How a prediction line shows a served row (``maskmodels.serving.
  # describe_row``): the output to show, and a score whose largest value
  # goes beside it. A SavedModel keeps it, so a predict that never imports
  # the task writes the same lines.
  display = {"output": "outputs"}

  def __init__(self, config=None, label_names=()):
    self.config = config if config is not None else self.Config()
    self.label_names = list(label_names)

  def with_label_names(self, label_names):
    """This task (its settings) with the run's label vocabulary: a new
    task, this one unchanged."""
    return type(self)(self.config, label_names)

  def reads(self, kind):
    """Whether this task reads inputs of ``kind`` (a registered input
    kind, by the built-in kind it reads like)."""
    return kind.like in self.inputs

  # ---- labels ---------------------------------------------------------------

  def fit_labels(self, raw_labels, source):
    """The label vocabulary from the training split's raw labels (class
    names in index order), or ``[]`` for numeric labels."""
    del raw_labels, source
    return []

  def encode_labels(self, raw_labels, source):
    """Raw labels -> per-example labels as :attr:`labels` batches them (a
    NumPy array ``[n]``, or a list of arrays). A label that cannot be
    encoded is an :class:`InputError` naming the example:
    ``maskmodels.data.readers.where(source, index)`` gives its file and
    line."""
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
                             per_token=self.labels.per_step)

  # ---- loss and metrics ----------------------------------------------------

  def loss_weights(self, labels, weights):
    """The weight of every loss item (the label spec's ``item_weights``:
    ``weights`` ``[batch]`` per example; per step ``[batch, time]``, 0 at
    pad steps). Their sum over the global batch divides the summed
    loss."""
    return self.labels.item_weights(labels, weights)

  def compute_loss(self, labels, outputs, training):
    """Loss per item (``[batch]`` or ``[batch, time]``) of a model's
    :class:`ModelOutputs`; pad items may hold anything (their weight is
    0)."""
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
      outputs: the model's :class:`ModelOutputs` (an ensemble's combined
        output).
      losses: :meth:`compute_loss` of ``outputs``.
      loss_weights: :meth:`loss_weights` of the batch (0 for filler rows
        and pad steps).
    """
    del labels, outputs
    metrics["loss"].update_state(*self.labels.per_item(losses,
                                                       loss_weights))

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
      reads (here ``output``, the model's :class:`ModelOutputs`, and
      ``losses``: the combined output's per-item loss ``"loss"``, and an
      ensemble member's ``"loss/<name>"``, from which the member learns
      alone).
    """
    features, labels, _ = batch
    outputs = model_outputs(model(features, training=True))
    losses = {"loss": self.compute_loss(labels, outputs, True)}
    for name, member in (outputs.members or {}).items():
      losses[f"loss/{name}"] = self.compute_loss(labels, member, True)
    learned = [losses[k] for k in losses if k != "loss"] or [losses["loss"]]
    objective = tf.add_n([tf.reduce_sum(tf.cast(loss, tf.float32) *
                                        loss_weights) / total_weight
                          for loss in learned])
    return objective, {"output": outputs, "losses": losses}

  def update_train_metrics(self, metrics, batch, loss_weights, state):
    """Updates the training metrics with one step's :meth:`train_step`
    ``state``."""
    _, labels, _ = batch
    self.update_metrics(metrics, labels, state["output"],
                        state["losses"]["loss"], loss_weights)
    for key, losses in state["losses"].items():
      if key != "loss":
        metrics[key].update_state(*self.labels.per_item(losses,
                                                        loss_weights))

  def validation_step(self, model, batch, metrics):
    """Updates the evaluation metrics with one replica's batch (validation,
    the test pass and ``maskmodels-evaluate`` all run this)."""
    features, labels, weights = batch
    outputs = model_outputs(model(features, training=False))
    loss_weights = self.loss_weights(labels, weights)
    self.update_metrics(metrics, labels, outputs,
                        self.compute_loss(labels, outputs, False),
                        loss_weights)

  def inference_step(self, model, features):
    """Features -> :meth:`served_outputs` (prediction and export: the one
    serving path)."""
    return self.served_outputs(model_outputs(model(features,
                                                   training=False)))

  # ---- serving --------------------------------------------------------------

  def served_outputs(self, outputs):
    """A model's :class:`ModelOutputs` -> ``{name: tensor}``, what
    prediction and export return (each ``[batch, ...]``; a per-step
    output blank past each input's steps, with ``lengths``)."""
    served = {"outputs": tf.cast(outputs.outputs, tf.float32)}
    if outputs.mask is not None:
      served = dict(blank_past_lengths(served, outputs.mask),
                    lengths=outputs.lengths)
    return served

  def describe(self, inputs, prediction):
    """One line of ``maskmodels-predict`` output for one example.

    Args:
      inputs: the example as given (a string, or a list of words).
      prediction: the example's row of :meth:`served_outputs`' tensors, as
        NumPy values.
    """
    from maskmodels.serving import describe_row  # pylint: disable=import-outside-toplevel
    return describe_row(inputs, prediction, self.display)

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
  if hasattr(inputs, "shape") and np.ndim(inputs) == 2:
    return f"a series of {len(inputs)} frames"
  if isinstance(inputs, dict):
    return " | ".join(shown(v) for v in inputs.values())
  return " ".join(map(str, inputs))


def build_task(name, settings, label_names=()):
  """The registered task ``name`` with its settings dict."""
  from maskmodels.registry import TASKS  # pylint: disable=import-outside-toplevel
  task_class = TASKS.get(name)
  if task_class.best_mode not in ("max", "min"):
    raise ValueError(f"{task_class.__name__}.best_mode must be 'max' or "
                     f"'min', got {task_class.best_mode!r}.")
  return task_class(task_class.Config(**settings), label_names)

