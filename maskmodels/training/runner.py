"""A training run, assembled from small builders: data flows one way.

raw inputs -> examples (readers; their input kind) -> labels encoded (the
task) -> what the run learns of its inputs (a vocabulary, channel
statistics) -> batches (pipeline) -> model, optimizer -> trainer ->
checkpoint restored -> (the first write) -> controller with actions ->
what the model fits on held-out data (an ensemble's member weights) ->
test pass -> summary.
``train_and_evaluate`` is what ``maskmodels-train`` runs; research code may
subclass :class:`Runner` and override a builder.

Everything up to the restored checkpoint only reads: a setting, the data,
a resume of another model or a damaged model directory is refused before
the run writes anything, and the directory stays as it was.
"""

import dataclasses
import re
import signal
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from maskmodels import progress
from maskmodels.data import pipeline, readers
from maskmodels.errors import InputError, SettingError, WorkerLost
from maskmodels.training import actions, checkpoints, curves, optimization
from maskmodels.training.builders import (model_in_scope, featurizer_of,
                                          inference_length, task_of)
from maskmodels.training.controller import Controller
from maskmodels.training.model_dir import CURVES_FILE, ModelDirectory
from maskmodels.training.strategy import cluster_resolver
from maskmodels.training.trainer import Trainer


@dataclasses.dataclass
class Splits:
  """The examples of a run: train, validation and (maybe None) test."""
  train: readers.Examples
  validation: readers.Examples
  test: readers.Examples = None


@dataclasses.dataclass
class Batching:
  """How the run batches its data, and how many steps it takes."""
  train: pipeline.PipelineConfig
  evaluation: pipeline.PipelineConfig
  steps_per_epoch: int
  total_steps: int


def read_splits(data, seed=0, default_data=None):
  """Reads the run's train, validation and test examples, labels raw.

  Validation comes from ``data.validation_path`` (or a data folder's
  ``data.validation_split``) if given, else it is carved from the training
  data; the test split from ``data.test_path``, or for a data folder
  (aclImdb, CoNLL-U files, the embedded data) from ``data.test_split``.

  Args:
    data: the run's ``DataConfig``.
    seed: the validation split's seed.
    default_data: the task's ``DefaultData`` (for ``--data_format=default``).
  """
  def read(path, split, split_flag, prefix=""):
    """Reads one split; a column or split the data does not have is a
    SettingError naming the flag that chose it."""
    text_column = getattr(data, f"{prefix}text_column", None)
    label_column = getattr(data, f"{prefix}label_column", None)
    try:
      return readers.read_examples(
          data.data_format, path, split, *data.columns(text_column,
                                                       label_column),
          default_data=default_data)
    except readers.MissingColumn as missing:
      for flag in (f"{prefix}text_column", f"{prefix}label_column",
                   "text_column", "label_column"):
        if getattr(data, flag, None) == missing.column:
          raise SettingError(f"--{flag}={missing.column}: {missing}"
                             ) from None
      raise
    except readers.UnknownSplit as unknown:
      raise SettingError(f"--{split_flag}={split}: {unknown}") from None

  folder = readers.reads_folders(data.data_format, data.data_path)
  train = read(data.data_path, data.train_split, "train_split")
  test = None  # read before the split, so bad data anywhere fails first
  if data.test_path:
    test = read(data.test_path, "", "test_path", "test_")
  elif folder and data.test_split:
    test = read(data.data_path, data.test_split, "test_split")
  if data.validation_path:
    validation = read(data.validation_path, "", "validation_path",
                      "validation_")
  elif folder and data.validation_split:
    validation = read(data.data_path, data.validation_split,
                      "validation_split")
  else:
    train, validation = readers.split_validation(
        train, data.validation_fraction, seed)
  return Splits(train, validation, test)


def encode_splits(splits, task):
  """The splits with their labels encoded by ``task`` (each split's inputs
  checked to be of a kind the task reads, and of the training split's)."""
  kind = splits.train.kind

  def encode(examples):
    if examples is None:
      return None
    if examples.kind.name != kind.name or kind.like not in task.inputs:
      raise InputError(
          f"{examples.source} holds {examples.kind.describes}; "
          f"{'this task reads ' + ', '.join(task.inputs) if kind.like not in task.inputs else 'the training data holds ' + kind.describes}.")
    return examples.with_labels(task.encode_labels(examples.labels,
                                                   examples.source))
  return Splits(encode(splits.train), encode(splits.validation),
                encode(splits.test))


def label_shape(splits):
  """``(references, length)``: the most of any sequence label
  (``[references, length]``, encoded) of ``splits``, what static shapes
  pad every batch's labels to."""
  shapes = [np.shape(label) for split in (splits.train, splits.validation,
                                          splits.test) if split is not None
            for label in split.labels]
  return tuple(int(max([s[axis] for s in shapes] + [1])) for axis in (0, 1))


class Runner:
  """Trains (or resumes) one run in a model directory and evaluates it.

  Args:
    config: an ``ExperimentConfig``.
    model_dir: the model directory's path.
    strategy: the ``tf.distribute.Strategy`` to train under.
  """

  def __init__(self, config, model_dir, strategy):
    self.config = config
    self.strategy = strategy
    self.model_dir = ModelDirectory(model_dir, strategy)
    self.replicas = strategy.num_replicas_in_sync
    self.task = None  # set by read_data
    self.kind = None  # the input kind, set by read_data
    self.featurizer = None  # set by build_model

  def run(self):
    """Runs everything; returns the summary (also ``summary.json``)."""
    start = time.perf_counter()
    with self.model_dir.lock() as hold:
      self.prepare_process()
      splits = self.read_data()
      assets = self.build_inputs(splits)
      model = self.build_model(assets)
      batching = self.build_batching(splits)
      trainer = self.build_trainer(model, splits, batching)
      restored = self.build_checkpointer(trainer)
      self.check_serving_weights()
      hold.commit()
      self.commit(assets)
      try:
        controller, status = self.build_controller(trainer, splits, batching,
                                                   restored)
        self.train(controller, batching.total_steps)
        trainer.close()  # the training pipeline ends with training
        summary = self.evaluate(trainer, splits, batching, status)
      finally:
        trainer.close()
      summary["wall_seconds"] = time.perf_counter() - start
      self.model_dir.write_json("summary.json", summary)
    return summary

  # ---- builders, in the order data flows --------------------------------

  def prepare_process(self):
    """Seeds, determinism and the dtype policy, before anything is built."""
    train = self.config.train
    if train.deterministic and train.jit_compile:
      raise SettingError("--deterministic and --jit_compile cannot be "
                         "combined: XLA has no deterministic gradient for "
                         "max-pooling. Choose one.")
    keras.utils.set_random_seed(train.seed)
    if train.deterministic:
      tf.config.experimental.enable_op_determinism()
    optimization.set_precision(
        train.precision, on_gpu=bool(tf.config.list_logical_devices("GPU")))

  def read_data(self):
    """Reads the splits, fixes the label vocabulary (the task's, from the
    training split, or the directory's on resume), encodes the labels and
    checks a resume's settings."""
    task = task_of(self.config)
    task.validate(self.config)
    splits = read_splits(self.config.data, self.config.train.seed,
                         task.default_data)
    self.kind = splits.train.kind
    if self.kind.like not in task.inputs:
      raise InputError(f"{splits.train.source} holds "
                       f"{self.kind.describes}; task "
                       f"{self.config.train.task!r} reads "
                       f"{', '.join(task.inputs)}.")
    self.config = self.config.with_input_kind(self.kind)
    self.kind.validate(self.config)
    if self.config.data.crop_fraction < 1.0 and not self.kind.crops:
      raise SettingError(f"--crop_fraction={self.config.data.crop_fraction}"
                         f": {self.kind.describes} are not cropped; expected "
                         f"1.0 (series of frames crop).")
    logging.info("Read %d training, %d validation and %s test examples; "
                 "training under %s with %d replica(s).", len(splits.train),
                 len(splits.validation),
                 len(splits.test) if splits.test is not None else "no",
                 type(self.strategy).__name__, self.replicas)
    names = self.config.data.label_names
    if not names and self.model_dir.has_config():
      names = self.model_dir.load_config().data.label_names
    changes = dict(label_names=names or task.fit_labels(
        splits.train.labels, splits.train.source))
    if isinstance(self.strategy, tf.distribute.TPUStrategy):
      logging.info("TPU: padding every batch to its bucket's edge.")
      changes["static_shapes"] = True
    self.config = self.config.replace(**changes)
    task.label_names = list(self.config.data.label_names)
    self.task = task  # built once: its label names are now the run's
    self.check_resumable()
    splits = encode_splits(splits, self.task)
    return dataclasses.replace(
        splits, train=self.task.training_examples(splits.train))

  def check_resumable(self):
    """Refuses to resume a checkpoint trained with other settings."""
    if not (self.model_dir.has_config() and
            self.model_dir.latest_checkpoint()):
      return
    mismatches = self.config.resume_mismatches(self.model_dir.load_config())
    if mismatches:
      raise InputError(
          f"Cannot resume from {self.model_dir.path}: its checkpoint was "
          f"trained with other settings ({'; '.join(mismatches)}). Use a new "
          f"--model_dir, or the same settings.")

  def build_inputs(self, splits):
    """What the run learns of its inputs (the input kind's assets: a
    vocabulary, channel statistics): the directory's (a resume), else
    learned from the training split; nothing is written yet.

    A directory that lost its ``config.json`` but kept its assets must hold
    the assets these settings learn.
    """
    directory, kind, data = self.model_dir, self.kind, self.config.data
    if directory.has_config() and directory.load_config().data.inputs == (
        kind.name):
      assets = kind.load(data, directory.read_asset)
    else:
      assets = kind.fit(data, splits.train, verbose=int(directory.chief))
      for name, content in kind.files(assets).items():
        if directory.has_asset(name) and directory.read_bytes(name) != (
            content):
          raise InputError(
              f"Cannot resume {directory.path}: its {name} is not what "
              f"these settings learn from the training data, and it has no "
              f"config.json to check it against. Use a new --model_dir.")
    for split in (splits.train, splits.validation, splits.test):
      if split is not None:
        kind.check(assets, split)
    return assets

  def commit(self, assets):
    """The run's first write: the input kind's assets and ``config.json``."""
    self.model_dir.save_config(self.config, self.kind.files(assets))

  def build_batching(self, splits):
    """Length buckets from the training inputs, and the run's step counts.

    A batch never holds more rows than the training split (rounded up to
    the replicas): a larger ``--batch_size`` is cut to it, and the run
    says so, before any batch is built. Frames longer than ``--max_len``
    are cut only when it is given, and the run says how many.
    """
    data, train = self.config.data, self.config.train
    examples = len(splits.train)
    most = -(-examples // self.replicas) * self.replicas
    if data.batch_size > most:
      logging.warning("--batch_size=%d is larger than the %d training "
                      "examples: batches of %d instead.", data.batch_size,
                      examples, most)
      self.config = self.config.replace(batch_size=most)
      data = self.config.data
    limit = data.training_max_len
    lengths = self.featurizer.example_lengths(splits.train, limit,
                                              data.truncation)
    if self.kind.name == "frames" and limit is not None:
      for split in (splits.train, splits.validation, splits.test):
        if split is None:
          continue
        whole = self.featurizer.example_lengths(split)
        if (whole > limit).any():
          logging.warning("%d of the %d series of %s are longer than "
                          "--max_len=%d frames: %s kept (--truncation).",
                          int((whole > limit).sum()), len(split),
                          split.source, limit, {
                              "head": "their first", "tail": "their last",
                              "both": "their first and last"}[
                                  data.truncation] + f" {limit}")
    limit = limit or max(int(lengths.max()), 1)
    common = dict(
        batch_size=data.batch_size, batch_tokens=data.batch_tokens or 0,
        max_batch=most,
        truncation=data.truncation, static_shapes=data.static_shapes,
        label_shape=(label_shape(splits) if data.static_shapes and
                     self.task.labels.sequence else None),
        seed=train.seed, labels=self.task.labels, bucket_boundaries=(
            pipeline.length_boundaries(lengths, data.num_buckets)
            if data.num_buckets > 1 else None))
    training = pipeline.PipelineConfig(max_len=limit, crop_fraction=(
        data.crop_fraction), **common)
    steps_per_epoch = pipeline.batches_per_pass(lengths, training,
                                                self.replicas)
    # A per-step task reads every step of the held-out splits.
    eval_len = inference_length(self.config, self.task) or max(
        [limit] + [len(inputs) for split in (splits.validation, splits.test)
                   if split for inputs in split.texts])
    evaluation = dataclasses.replace(training, max_len=eval_len,
                                     shuffle=False, crop_fraction=1.0)
    return Batching(training, evaluation, steps_per_epoch,
                    train.train_steps or train.epochs * steps_per_epoch)

  def build_model(self, assets):
    """The model (weights made under the strategy), and the featurizer of
    its inputs."""
    model = model_in_scope(self.config, self.task, self.kind.model_inputs(
        assets), self.strategy)
    self.featurizer = featurizer_of(self.kind, self.config, assets, model)
    return model

  def build_trainer(self, model, splits, batching):
    """The optimizer and the trainer with its training input (built, not
    yet run)."""
    train = self.config.train
    with self.strategy.scope():
      optimizer = optimization.make_optimizer(
          train.optimizer, optimization.learning_rate_schedule(
              train.lr_schedule, train.learning_rate, batching.total_steps,
              train.warmup_steps), train.weight_decay, train.precision)
      optimizer.build(model.trainable_variables)
    trainer = Trainer(self.task, model, optimizer, self.strategy,
                      clip_norm=train.clip_norm, jit_compile=train.jit_compile)
    trainer.set_train_data(lambda context, start: pipeline.make_dataset(
        splits.train, self.featurizer, batching.train, True, context, start))
    return trainer

  def eval_input(self, examples, batching):
    """A dataset function of ``examples`` for ``Trainer.evaluate``."""
    return lambda context: pipeline.make_dataset(
        examples, self.featurizer, batching.evaluation, False, context)

  def build_checkpointer(self, trainer):
    """The training checkpoint (model, optimizer, step, best validation
    metric), restored from the latest readable one if there is one: a
    checkpoint of another model is refused here, before any write.

    Returns:
      ``(checkpointer, best, restored)``: best is the best-metric variable,
      restored the checkpoint resumed from (None for a new run).
    """
    best = tf.Variable(self.task.worst_value, dtype=tf.float64,
                       trainable=False, name="best_validation_metric")
    checkpoint = checkpoints.weights_checkpoint(
        trainer.model, trainer.optimizer, step=trainer.global_step, best=best)
    settings = self.config.checkpoint
    checkpointer = self.model_dir.checkpointer(
        checkpoint, trainer.global_step, settings.keep_checkpoints,
        settings.checkpoint_every_steps)
    restored = checkpointer.restore()
    if restored:
      logging.info("Resumed from %s at step %d.", restored, trainer.step)
    return checkpointer, best, restored

  def check_serving_weights(self):
    """Says at the start, not after training, when the best checkpoint the
    test pass would load cannot be read: the run then serves the newest
    readable one (a better validation value writes a new best)."""
    best = self.model_dir.best_checkpoint()
    if best and self.config.checkpoint.evaluate_checkpoint == "best":
      problem = checkpoints.unreadable(best)
      if problem:
        logging.warning("%s cannot be read (%s): unless a better validation "
                        "value replaces it, the test pass and the other "
                        "commands serve the newest readable checkpoint.",
                        best, problem)

  def adapt_model(self, model, train, batching):
    """A new run's ``model.adapt`` (if the model has one) on the training
    split's ``(features, labels)``, cut as training cuts them; a resumed
    run has its state from the checkpoint."""
    if hasattr(model, "adapt"):
      model.adapt(pipeline.labelled_batches(train, self.featurizer,
                                            batching.train.max_len,
                                            batching.train.truncation,
                                            self.task.labels))

  def build_controller(self, trainer, splits, batching, restored):
    """The loop with its actions, resumed where the checkpoint left off.

    Args:
      restored: :meth:`build_checkpointer`'s result.

    Returns:
      ``(controller, status)``: status holds the Throughput and
      BestCheckpoint actions and the checkpointer, read at the end.
    """
    checkpointer, best, restored = restored
    if not restored:
      self.adapt_model(trainer.model, splits.train, batching)
    directory, task = self.model_dir, self.task
    # best/ holds the serving weights only when they are the best ones.
    save_best = (directory.best_saver(trainer.model) if
                 self.config.checkpoint.evaluate_checkpoint == "best" else
                 lambda step: None)
    status = dict(throughput=actions.Throughput(), best=actions.BestCheckpoint(
        save_best, task.best_metric, best, task.best_mode),
                  checkpointer=checkpointer)
    metrics = list(task.build_metrics(training=False))
    history = actions.History(
        directory.read_history(trainer.step), directory.write_json,
        directory.file(CURVES_FILE) if directory.chief else None,
        curves.panels_for(metrics, task.metric_units),
        (task.best_metric, task.best_mode))
    controller = Controller(
        trainer, checkpointer, lambda: trainer.evaluate(self.eval_input(
            splits.validation, batching)),
        steps_per_loop=self.config.train.steps_per_loop,
        eval_every=batching.steps_per_epoch,
        train_actions=[
            status["throughput"],
            actions.NaNGuard(self.config.train.precision != "mixed_float16",
                             directory.latest_checkpoint),
            actions.ProgressBar(batching.total_steps, trainer.step,
                                [m for m in metrics if m != "tokens"],
                                verbose=int(directory.chief)),
            actions.Summaries(directory.summary_writer("train")),
            history.record_train],
        eval_actions=[
            actions.MemoryProbe(trainer.trace_counts),
            actions.Summaries(directory.summary_writer("eval")),
            status["best"],
            actions.ValidationLog([m for m in metrics if m != "tokens"],
                                  status["best"], int(directory.chief)),
            history.record_eval],
        preemption=self.build_preemption(checkpointer))
    return controller, status

  def build_preemption(self, checkpointer):
    """SIGTERM and Ctrl-C: TensorFlow's cluster-wide handler for SIGTERM on
    a multi-worker cluster, else a save at the current step."""
    resolver = cluster_resolver(self.strategy)
    save = lambda step: checkpointer.save(step, force=True)  # noqa: E731
    if resolver is None or not isinstance(
        self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
      return [actions.SignalPreemption(save)]
    return [actions.ClusterPreemption(resolver, checkpointer.manager,
                                      self.model_dir.cleanup),
            actions.SignalPreemption(save, signals=(signal.SIGINT,))]

  # ---- running -------------------------------------------------------------

  def train(self, controller, total_steps):
    """Runs the controller; a lost peer worker becomes :class:`WorkerLost`."""
    try:
      controller.run(total_steps)
    except (tf.errors.UnavailableError, tf.errors.InternalError,
            tf.errors.DeadlineExceededError, tf.errors.AbortedError,
            tf.errors.CancelledError) as error:
      lost = cluster_resolver(self.strategy) and lost_worker(str(error))
      if not lost:
        raise
      raise WorkerLost(
          f"Lost {lost} of the cluster during training ("
          f"{type(error).__name__}). Restart every worker with the same "
          f"command to resume from the last checkpoint.") from None

  def evaluate(self, trainer, splits, batching, status):
    """The serving weights (the best or the final ones), what the model
    fits on the validation split, the test pass; returns the summary."""
    task = self.task
    summary = {
        "steps": trainer.step,
        "epochs": trainer.step / batching.steps_per_epoch,
        "steps_per_epoch": batching.steps_per_epoch,
        "train_examples": len(splits.train),
        "validation_examples": len(splits.validation),
        f"best_validation_{task.best_metric}": status["best"].value,
        "train_examples_per_second": status["throughput"].examples_per_second,
    }
    serving_best = self.config.checkpoint.evaluate_checkpoint == "best"
    best = None
    if serving_best and self.model_dir.best_checkpoint():
      # The best weights, or (unreadable) the newest readable checkpoint.
      best = self.model_dir.serving_checkpoint("best")
      checkpoints.restore_weights(trainer.model, best)
      if best != self.model_dir.best_checkpoint():
        best = None
    if hasattr(trainer.model, "fit_held_out"):
      summary["held_out_fit"] = self.fit_held_out(trainer.model,
                                                  splits.validation, batching)
      if best:
        self.model_dir.best_saver(trainer.model)(
            checkpoints.checkpoint_step(best))
      else:
        status["checkpointer"].save(trainer.step, force=True)
    if splits.test is not None:
      logging.info("Test pass over %d examples.", len(splits.test))
      bar = progress.bar(len(splits.test), "examples",
                         verbose=int(self.model_dir.chief))
      test = trainer.evaluate(self.eval_input(splits.test, batching),
                              progress=bar)
      summary.update({f"test_{name}": value for name, value in test.items()})
      summary["test_examples"] = int(test["examples"])
    return summary

  def fit_held_out(self, model, validation, batching):
    """``model.fit_held_out`` on the validation split, a step of the run
    (an ensemble's member weights: each member trained on its own loss,
    the weights only combine their outputs); its result goes in the
    summary."""
    logging.info("Fitting %s on %d validation examples.", model.name,
                 len(validation))
    with progress.heartbeat(f"Fitting {model.name} on held-out data"):
      result = model.fit_held_out(self.task, pipeline.make_dataset(
          validation, self.featurizer, batching.evaluation, False))
    logging.info("Fitted on held-out data: %s.", result)
    return result

def lost_worker(message):
  """The task a collective error names as gone (e.g. ``/job:worker/
  replica:0/task:1``), or None if the error is not about a lost task."""
  if not re.search(r"crash|unhealthy|heartbeat|unavailable|connect|"
                   r"restarted|not responding", message, re.I):
    return None
  tasks = re.findall(r"/job:\w+/replica:\d+/task:\d+", message)
  return f"worker {tasks[-1]}" if tasks else "a worker"


def train_and_evaluate(config, model_dir, strategy):
  """Trains (or resumes) a run in ``model_dir`` and evaluates it.

  Returns:
    The run summary (also written to ``summary.json``).
  """
  return Runner(config, model_dir, strategy).run()
