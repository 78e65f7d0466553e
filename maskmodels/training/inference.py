"""Using a trained model directory: load it, serve it, evaluate it."""

import dataclasses

import tensorflow as tf

from maskmodels import progress, serving
from maskmodels.data import pipeline
from maskmodels.errors import InputError
from maskmodels.training import checkpoints, optimization
from maskmodels.training.builders import (inference_length, load_inputs,
                                          model_in_scope, task_of)
from maskmodels.training.model_dir import ModelDirectory
from maskmodels.training.trainer import Trainer


@dataclasses.dataclass
class TrainedRun:
  """A trained model directory's parts, ready to serve.

  Attributes:
    config: its ExperimentConfig.
    task: its task (label names included).
    kind: its input kind (``maskmodels.data.kinds``).
    assets: what its run learned of the inputs (for text, the tokenizer).
    featurizer: raw inputs -> features.
    model: the model with the serving weights restored.
  """
  config: object
  task: object
  kind: object
  assets: object
  featurizer: object
  model: object

  @property
  def tokenizer(self):
    """The tokenizer of a text run (its assets)."""
    return self.assets

  @property
  def requires(self):
    """The modules a process that loads the exported model imports."""
    return self.kind.requires

  def server(self, loader=""):
    """The run's :class:`maskmodels.serving.Server` (``loader``: the lines
    that load its export, for its metadata)."""
    train = self.config.train
    return serving.Server(
        self.task, self.featurizer, self.model,
        inference_length(self.config, self.task, self.kind),
        self.config.data.truncation, metadata=dict(
            task=train.task, task_config=train.task_config,
            label_names=self.task.label_names, display=self.task.display,
            input_kind=self.kind.name, requires=list(self.requires),
            modules=self.config.modules(), load=loader))


def load_trained(model_dir):
  """The :class:`TrainedRun` of a trained model directory.

  Restores the checkpoint the config's ``evaluate_checkpoint`` names: the
  best by validation metric (else the latest), or the final one.
  """
  directory = ModelDirectory(model_dir)
  config = directory.load_config()
  optimization.set_precision(config.train.precision)
  task = task_of(config)
  kind, assets = load_inputs(config, directory)
  model = model_in_scope(config, task, kind.model_inputs(assets))
  checkpoints.restore_weights(model, directory.serving_checkpoint(
      config.checkpoint.evaluate_checkpoint))
  return TrainedRun(config, task, kind, assets,
                    kind.featurizer(config, assets), model)


def evaluation_pipeline(config, task, kind, batch_size=None):
  """The pipeline settings of evaluation: the run's inference length, no
  shuffling or bucketing, the task's labels."""
  return pipeline.PipelineConfig(
      max_len=inference_length(config, task, kind) or 10**9,
      batch_size=batch_size or config.data.batch_size,
      truncation=config.data.truncation, bucket_boundaries=None,
      shuffle=False, labels=task.labels)


def evaluate(model_dir, examples, verbose=1):
  """Metrics of a trained model on raw ``examples`` (with progress).

  Returns:
    The task's evaluation metrics and ``examples``, the number of examples
    counted (each exactly once).
  """
  run = load_trained(model_dir)
  kind = examples.kind
  if kind is not run.kind:
    raise InputError(f"{examples.source} holds {kind.describes}; the model "
                     f"in {model_dir} reads {run.kind.describes}.")
  run.kind.check(run.assets, examples)
  encoded = examples.with_labels(run.task.encode_labels(
      examples.labels, examples.labelled_source()))
  run.task.labels.check(encoded, lambda: run.featurizer.example_lengths(
      encoded))
  trainer = Trainer(run.task, run.model, None, tf.distribute.get_strategy())
  settings = evaluation_pipeline(run.config, run.task, run.kind)
  bar = progress.bar(len(examples), "examples", verbose=verbose)
  try:
    return trainer.evaluate(
        lambda context: pipeline.make_dataset(encoded, run.featurizer,
                                              settings, False, context),
        progress=bar)
  finally:
    trainer.close()
