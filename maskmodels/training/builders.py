"""Building a run's parts from its ExperimentConfig: task, input kind,
model, lengths.

Shared by training, evaluation, prediction and export, so each builds the
same task, model and features from the same settings.
"""

import tensorflow as tf

from maskmodels.errors import InputError
from maskmodels.registry import INPUT_KINDS
from maskmodels.tasks import build_task


def task_of(config):
  """The run's task, with its label vocabulary."""
  train = config.train
  return build_task(train.task, train.task_config, config.data.label_names)


def input_kind_of(config):
  """The run's registered input kind (``config.data.inputs``, which a run
  records once it has read its data)."""
  if config.data.inputs is None:
    raise InputError("This config names no input kind: a run records it "
                     "when it reads its data.")
  return INPUT_KINDS.get(config.data.inputs)


def load_inputs(config, directory):
  """``(kind, assets)`` of a model directory: its input kind and what its
  run learned of the inputs (a vocabulary, statistics), each file checked
  against its checksum."""
  kind = input_kind_of(config)
  return kind, kind.load(config.data, directory.read_asset)


def model_in_scope(config, task, inputs, strategy=None):
  """``task.build_model``'s model with its weights created under
  ``strategy``'s scope.

  Args:
    config: the run's ExperimentConfig.
    task: its task.
    inputs: what the backbone reads (``kind.model_inputs(assets)``), or a
      vocabulary size.
    strategy: a ``tf.distribute`` strategy (default: the current one).
  """
  strategy = strategy or tf.distribute.get_strategy()
  if isinstance(inputs, int):
    inputs = {"vocab_size": inputs}
  with strategy.scope():
    model = task.build_model(config.model, inputs)
    model.build()
  return model


def training_length(config, kind):
  """Steps a training example keeps: ``--max_len``, else the input kind's
  default (None: every step)."""
  return kind.max_len(config.data)


def inference_length(config, task, kind):
  """Steps kept per example in evaluation, prediction and export:
  ``--eval_max_len`` or the training length, unless the task's labels need
  every step (a label per step; None: every step)."""
  return task.labels.evaluation_length(
      config.data.eval_max_len or training_length(config, kind))
