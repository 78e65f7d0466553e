"""Building a run's parts from its ExperimentConfig: task, inputs, model,
featurizer.

Shared by training, evaluation, prediction and export, so each builds the
same task, model and features from the same settings.
"""

import tensorflow as tf

from maskmodels.registry import INPUT_KINDS
from maskmodels.tasks import build_task


def task_of(config):
  """The run's task, with its label vocabulary."""
  train = config.train
  return build_task(train.task, train.task_config, config.data.label_names)


def input_kind_of(config):
  """The run's registered input kind (``config.data.inputs``)."""
  return INPUT_KINDS.get(config.data.inputs or "text")


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


def featurizer_of(kind, config, assets, model):
  """Raw inputs -> ``model``'s features, for the run's input kind."""
  return kind.featurizer(config.data, assets, model)


def inference_length(config, task):
  """Steps kept per example in evaluation, prediction and export: every
  step of a per-step task (each must get its label), else
  ``--eval_max_len`` or the training length."""
  return None if task.labels.per_token else config.data.inference_max_len
