"""A training run, assembled from small builders: data flows one way.

strings -> examples (readers) -> tokenizer (vocabulary) -> batches
(pipeline) -> task, model, optimizer -> trainer -> controller with actions
-> evaluation -> summary. ``train_and_evaluate`` is what ``maskmodels-train``
runs; research code may subclass :class:`Runner` and override a builder.
"""

import dataclasses
import os
import re
import signal
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from maskmodels.data import pipeline, readers, text
from maskmodels.errors import InputError, WorkerLost
from maskmodels.training import actions, checkpoints, optimization
from maskmodels.training.builders import build_model, load_tokenizer
from maskmodels.training.controller import Controller
from maskmodels.training.model_dir import CURVES_FILE, ModelDirectory
from maskmodels.training.strategy import cluster_resolver
from maskmodels.training.tasks import build_task
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


def read_splits(data, seed=0):
  """Reads the run's train, validation and test examples.

  Validation comes from ``data.validation_path`` if given, else it is carved
  from the training data; the test split from ``data.test_path``, or for
  aclImdb and the embedded data from ``data.test_split``.
  """
  names = data.class_names or None
  train = readers.read_examples(data.data_format, data.data_path,
                                data.train_split, data.text_column,
                                data.label_column, names)

  def other_file(path, text_column, label_column):
    return readers.read_examples(
        data.data_format, path, "", text_column or data.text_column,
        label_column or data.label_column, train.class_names)

  test = None  # read before the split, so bad data anywhere fails first
  if data.test_path:
    test = other_file(data.test_path, data.test_text_column,
                      data.test_label_column)
  elif data.data_format in ("aclimdb", "default") and data.test_split:
    test = readers.read_examples(data.data_format, data.data_path,
                                 data.test_split, class_names=train.class_names)
  if data.validation_path:
    validation = other_file(data.validation_path, data.validation_text_column,
                            data.validation_label_column)
  else:
    train, validation = readers.split_validation(
        train, data.validation_fraction, seed)
  return Splits(train, validation, test)


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

  def run(self):
    """Runs everything; returns the summary (also ``summary.json``)."""
    start = time.perf_counter()
    with self.model_dir.lock():
      self.prepare_process()
      splits = self.read_data()
      tokenizer = self.build_tokenizer(splits.train)
      batching = self.build_batching(splits, tokenizer)
      trainer = self.build_trainer(tokenizer, splits, batching)
      controller, status = self.build_controller(trainer, splits, tokenizer,
                                                 batching)
      self.train(controller, batching.total_steps)
      summary = self.evaluate(trainer, splits, tokenizer, batching, status)
      summary["wall_seconds"] = time.perf_counter() - start
      self.model_dir.write_json("summary.json", summary)
    return summary

  # ---- builders, in the order data flows --------------------------------

  def prepare_process(self):
    """Seeds, determinism and the dtype policy, before anything is built."""
    train = self.config.train
    if train.deterministic and train.jit_compile:
      raise InputError("--deterministic and --jit_compile cannot be "
                       "combined: XLA has no deterministic gradient for "
                       "max-pooling. Choose one.")
    keras.utils.set_random_seed(train.seed)
    if train.deterministic:
      tf.config.experimental.enable_op_determinism()
    optimization.set_precision(
        train.precision, on_gpu=bool(tf.config.list_logical_devices("GPU")))

  def read_data(self):
    """Reads the splits, fixes the class list, checks a resume."""
    splits = read_splits(self.config.data, self.config.train.seed)
    changes = dict(class_names=splits.train.class_names)
    if isinstance(self.strategy, tf.distribute.TPUStrategy):
      logging.info("TPU: padding every batch to its bucket's edge.")
      changes["static_shapes"] = True
    self.config = self.config.replace(**changes)
    self.check_resumable()
    return splits

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

  def build_tokenizer(self, train):
    """The directory's vocabulary, or one learned from ``train`` (a
    non-chief worker writes it to its temporary path)."""
    path = self.model_dir.vocab_path
    if not os.path.exists(path):
      path = os.path.join(self.model_dir.write_path, "vocab.txt")
      data = self.config.data
      text.write_vocabulary(text.learn_vocabulary(
          train.texts, data.tokenizer, data.vocab_size,
          verbose=int(self.model_dir.chief)), path)
    self.model_dir.save_config(self.config)
    return load_tokenizer(self.config, path)

  def build_batching(self, splits, tokenizer):
    """Length buckets from the training texts, and the run's step counts."""
    data, train = self.config.data, self.config.train
    lengths = pipeline.token_lengths(splits.train.texts, tokenizer,
                                     data.max_len, data.truncation)
    common = dict(
        batch_size=data.batch_size, batch_tokens=data.batch_tokens,
        truncation=data.truncation, static_shapes=data.static_shapes,
        seed=train.seed, bucket_boundaries=(
            pipeline.length_boundaries(lengths, data.num_buckets)
            if data.num_buckets > 1 else None))
    training = pipeline.PipelineConfig(max_len=data.max_len, **common)
    steps_per_epoch = pipeline.batches_per_pass(lengths, training,
                                                self.replicas)
    return Batching(
        training, pipeline.PipelineConfig(max_len=data.inference_max_len,
                                          **common), steps_per_epoch,
        train.train_steps or train.epochs * steps_per_epoch)

  def build_trainer(self, tokenizer, splits, batching):
    """Task, model, optimizer and the trainer with its training input."""
    train = self.config.train
    task = build_task(train.task, train.task_config,
                      self.config.data.class_names)
    model = build_model(self.config, tokenizer.vocab_size, self.strategy)
    with self.strategy.scope():
      optimizer = optimization.make_optimizer(
          train.optimizer, optimization.learning_rate_schedule(
              train.lr_schedule, train.learning_rate, batching.total_steps,
              train.warmup_steps), train.weight_decay, train.precision)
      optimizer.build(model.trainable_variables)
    trainer = Trainer(task, model, optimizer, self.strategy,
                      clip_norm=train.clip_norm, jit_compile=train.jit_compile)
    trainer.set_train_data(lambda context, start: pipeline.make_dataset(
        splits.train, tokenizer, batching.train, True, context, start))
    return trainer

  def eval_input(self, examples, tokenizer, batching):
    """A dataset function of ``examples`` for ``Trainer.evaluate``."""
    return lambda context: pipeline.make_dataset(
        examples, tokenizer, batching.evaluation, False, context)

  def build_checkpointer(self, trainer):
    """The training checkpoint (model, optimizer, step, best validation
    metric), restored from the latest readable one if there is one.

    Returns:
      ``(checkpointer, best, restored)``: best is the best-metric variable,
      restored the checkpoint resumed from (None for a new run).
    """
    best = tf.Variable(-np.inf, dtype=tf.float64, trainable=False,
                       name="best_validation_metric")
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

  def adapt_model(self, model, train, tokenizer):
    """A new run's ``model.adapt`` (if the model has one) on the training
    split's ``(ids, labels)``; a resumed run has its state from the
    checkpoint."""
    if hasattr(model, "adapt"):
      data = self.config.data
      model.adapt(pipeline.labelled_batches(train, tokenizer, data.max_len,
                                            data.truncation))

  def build_controller(self, trainer, splits, tokenizer, batching):
    """The loop with its actions, resumed where the checkpoint left off.

    Returns:
      ``(controller, status)``: status holds the Throughput and
      BestCheckpoint actions, read for the summary.
    """
    checkpointer, best, restored = self.build_checkpointer(trainer)
    if not restored:
      self.adapt_model(trainer.model, splits.train, tokenizer)
    directory, metric = self.model_dir, trainer.task.best_metric
    status = dict(throughput=actions.Throughput(), best=actions.BestCheckpoint(
        directory.best_saver(trainer.model), metric, best))
    history = actions.History(
        directory.read_history(trainer.step), directory.write_json,
        directory.file(CURVES_FILE) if directory.chief else None, metric)
    controller = Controller(
        trainer, checkpointer, lambda: trainer.evaluate(self.eval_input(
            splits.validation, tokenizer, batching)),
        steps_per_loop=self.config.train.steps_per_loop,
        eval_every=batching.steps_per_epoch,
        train_actions=[
            status["throughput"],
            actions.NaNGuard(self.config.train.precision != "mixed_float16",
                             directory.latest_checkpoint),
            actions.ProgressBar(batching.total_steps, trainer.step,
                                verbose=int(directory.chief)),
            actions.Summaries(directory.summary_writer("train")),
            history.record_train],
        eval_actions=[
            actions.MemoryProbe(trainer.trace_counts),
            actions.Summaries(directory.summary_writer("eval")),
            status["best"], history.record_eval],
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

  def evaluate(self, trainer, splits, tokenizer, batching, status):
    """The summary, with a test pass (and its progress) if there is a test
    split."""
    summary = {
        "steps": trainer.step,
        "epochs": trainer.step / batching.steps_per_epoch,
        "steps_per_epoch": batching.steps_per_epoch,
        "train_examples": len(splits.train),
        "validation_examples": len(splits.validation),
        f"best_validation_{trainer.task.best_metric}": status["best"].value,
        "train_examples_per_second": status["throughput"].examples_per_second,
    }
    if splits.test is not None:
      if self.config.checkpoint.evaluate_checkpoint == "best":
        best = self.model_dir.best_checkpoint()
        if best:
          checkpoints.restore_weights(trainer.model, best)
      logging.info("Test pass over %d examples.", len(splits.test))
      bar = keras.utils.Progbar(len(splits.test), unit_name="examples",
                                verbose=int(self.model_dir.chief))
      test = trainer.evaluate(self.eval_input(splits.test, tokenizer,
                                              batching), progress=bar)
      summary.update({f"test_{name}": value for name, value in test.items()})
      summary["test_examples"] = int(test["examples"])
    return summary


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
