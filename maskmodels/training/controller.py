"""The Controller owns the step counter, checkpoints, summaries and progress.

It drives a :class:`~maskmodels.training.trainer.Trainer`: ``steps_per_loop``
train steps per call, a checkpoint every ``checkpoint_every_steps`` (through
``tf.train.CheckpointManager``), an evaluation at each epoch's end with the
best checkpoint kept under ``best/``, TensorBoard scalars under ``train/`` and
``eval/``, and a Keras ``Progbar`` on the console. Under multi-worker
training only the chief writes into the model directory; the other workers
write to temporary directories that are removed after each save, as
TensorFlow's multi-worker guide prescribes.
"""

import contextlib
import json
import math
import os
import shutil
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from maskmodels import atomic_files
from maskmodels.training import curves, memory
from maskmodels.training.strategy import cluster_resolver, is_chief
from maskmodels.training.trainer import NonFiniteLossError

BEST_DIR = "best"
HISTORY_FILE = "history.json"
# Exit status of a run stopped by SIGTERM/SIGINT after saving (EX_TEMPFAIL:
# rerun the same command to resume).
PREEMPTED_EXIT_CODE = 75


class TrainingInterrupted(Exception):
  """Training stopped on a signal after checkpointing the current step."""

  def __init__(self, signal_number, step, path):
    super().__init__(
        f"Stopped by {signal.Signals(signal_number).name} at step {step}; "
        f"saved {path}. Rerun the same command to resume.")
    self.step = step


@contextlib.contextmanager
def _stop_requests(signals=(signal.SIGTERM, signal.SIGINT)):
  """Records ``signals`` in a list instead of dying mid-step."""
  received = []
  if threading.current_thread() is not threading.main_thread():
    yield received
    return
  previous = {}

  def request_stop(number, _):
    received.append(number)
    for sig, handler in previous.items():  # a second signal acts at once
      signal.signal(sig, handler)

  for sig in signals:
    previous[sig] = signal.signal(sig, request_stop)
  try:
    yield received
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)


def weights_checkpoint(model, optimizer=None, **extra):
  """A ``tf.train.Checkpoint`` of a model's (and optimizer's) variables.

  Variables are checkpointed as ordered lists, not through attribute
  tracking: Keras 3 keeps sublayers held in Python lists (an encoder's
  blocks, a head) out of TensorFlow's object graph, so attribute tracking
  would silently skip their weights. ``model.variables`` also holds the
  dropout seed states, so a resumed run draws the same dropout masks.
  """
  if optimizer is not None:
    extra["optimizer"] = list(optimizer.variables)
  return tf.train.Checkpoint(model=list(model.variables), **extra)


def worker_temp_dir(model_dir, strategy):
  """Where a non-chief worker writes: a temporary folder it removes again."""
  resolver = getattr(strategy, "cluster_resolver", None)
  return os.path.join(model_dir,
                      f".worker_tmp_{getattr(resolver, 'task_id', 0) or 0}")


def restore_weights(model, path):
  """Loads the model weights of checkpoint ``path`` (other state ignored)."""
  weights_checkpoint(model).restore(
      path).expect_partial().assert_existing_objects_matched()


def best_checkpoint(model_dir):
  """Path of the best checkpoint (by validation accuracy), or None."""
  return tf.train.latest_checkpoint(os.path.join(model_dir, BEST_DIR))


def best_or_latest_checkpoint(model_dir, prefer_best=True):
  """Path of the best checkpoint in ``model_dir`` (or, with ``prefer_best``
  False or no best one, the latest), else None."""
  best = prefer_best and best_checkpoint(model_dir)
  return best or tf.train.latest_checkpoint(model_dir)


class Controller:
  """Training orchestration around a Trainer; see the module docstring.

  Args:
    trainer: the Trainer (its model and optimizer are checkpointed).
    model_dir: where checkpoints, summaries and history go.
    checkpoint_every_steps: checkpoint interval in steps.
    keep_checkpoints: how many recent checkpoints to keep.
    steps_per_loop: train steps per ``tf.function`` call.
    check_gradients: stop on a non-finite gradient norm (off under float16
      loss scaling, which skips such steps itself).
  """

  def __init__(self, trainer, model_dir, checkpoint_every_steps=200,
               keep_checkpoints=3, steps_per_loop=20, check_gradients=True):
    if steps_per_loop < 1:
      raise ValueError(f"steps_per_loop must be >= 1, got {steps_per_loop}.")
    self.trainer = trainer
    self.model_dir = model_dir
    self.steps_per_loop = steps_per_loop
    self.check_gradients = check_gradients
    strategy = trainer.strategy
    self.chief = is_chief(strategy)
    self.write_dir = (model_dir if self.chief else
                      worker_temp_dir(model_dir, strategy))
    with strategy.scope():
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False,
                              name="global_step")
      self.best = tf.Variable(-np.inf, dtype=tf.float64, trainable=False,
                              name="best_validation_accuracy")
    self.checkpoint = weights_checkpoint(trainer.model, trainer.optimizer,
                                         step=self.step, best=self.best)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, self.write_dir, max_to_keep=keep_checkpoints,
        step_counter=self.step, checkpoint_interval=checkpoint_every_steps)
    self.best_manager = tf.train.CheckpointManager(
        weights_checkpoint(trainer.model),
        os.path.join(self.write_dir, BEST_DIR), max_to_keep=1)
    self._restore()
    self.preemption = self._preemption_handler(strategy)
    if self.chief:
      self.writers = {
          name: tf.summary.create_file_writer(os.path.join(model_dir, name))
          for name in ("train", "eval")}
    else:
      self.writers = {name: tf.summary.create_noop_writer()
                      for name in ("train", "eval")}
    self.examples_per_second = None

  # ---- checkpoints ----------------------------------------------------------

  def _restore(self):
    """Resumes from the newest readable checkpoint in the model directory.

    A checkpoint whose files cannot be read (a kill while it was written
    to a disk that does not rename atomically, a truncated copy) is skipped
    with a warning in favour of the one before it; a checkpoint of another
    architecture is an error.
    """
    # A non-chief worker's manager writes elsewhere: it reads the chief's.
    candidates = list(reversed(self.manager.checkpoints)) or [
        path for path in [tf.train.latest_checkpoint(self.model_dir)] if path]
    for path in candidates:
      try:
        self.checkpoint.restore(path).assert_existing_objects_matched()
      except (tf.errors.OpError, IndexError) as error:  # a short read
        logging.warning("Skipping unreadable checkpoint %s: %s", path,
                        str(error).splitlines()[0])
        continue
      except (AssertionError, ValueError) as error:
        raise ValueError(
            f"Cannot restore {path}: it does not match this model "
            f"({str(error).splitlines()[0]}). Use a new --model_dir or the "
            f"settings the checkpoint was trained with.") from None
      logging.info("Resumed from %s at step %d.", path, self.step_value)
      return
    if candidates:
      raise ValueError(
          f"No checkpoint in {self.model_dir} can be read (tried "
          f"{', '.join(candidates)}). Use a new --model_dir.")

  def _preemption_handler(self, strategy):
    """TensorFlow's preemption handler for a multi-worker cluster, or None.

    On SIGTERM to any worker, ``tf.distribute``'s
    ``PreemptionCheckpointHandler`` agrees with every worker on a step,
    each saves there (the chief for real), and all stop; a lone worker's
    own save would leave its peers waiting in an all-reduce. Single-host
    strategies handle the signal in :meth:`fit` instead.
    """
    resolver = cluster_resolver(strategy)
    if resolver is None or not isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy):
      return None

    def stop():
      self._cleanup()
      raise TrainingInterrupted(signal.SIGTERM, self.step_value,
                                self.manager.latest_checkpoint)

    return tf.distribute.experimental.PreemptionCheckpointHandler(
        resolver, self.manager,
        termination_config=tf.distribute.experimental.TerminationConfig(
            exit_fn=stop))

  def _cleanup(self):
    if not self.chief:
      shutil.rmtree(self.write_dir, ignore_errors=True)

  def save(self, force=False):
    """Saves a checkpoint if the interval has passed (or ``force``)."""
    path = self.manager.save(checkpoint_number=self.step, check_interval=not
                             force)
    self._cleanup()
    return path

  def restore_best(self):
    """Loads the best checkpoint's weights into the model, if there is one."""
    path = best_checkpoint(self.model_dir)
    if path:
      restore_weights(self.trainer.model, path)

  @property
  def step_value(self):
    return int(self.step.numpy())

  @property
  def best_value(self):
    value = float(self.best.numpy())
    return value if math.isfinite(value) else None

  # ---- the loop -------------------------------------------------------------

  def _history(self):
    """The saved history up to the restored step (a kill may leave more)."""
    path = os.path.join(self.model_dir, HISTORY_FILE)
    history = {"train": [], "validation": []}
    if os.path.exists(path):
      with open(path) as f:
        history.update(json.load(f))
    step = self.step_value
    return {name: [entry for entry in entries if entry[0] <= step]
            for name, entries in history.items()}

  def _write_scalars(self, writer, values, step):
    with self.writers[writer].as_default(step=step):
      for name, value in values.items():
        tf.summary.scalar(name, value)

  def _learning_rate(self):
    optimizer = self.trainer.optimizer
    return float(getattr(optimizer, "inner_optimizer", optimizer).learning_rate)

  def fit(self, train_dataset, eval_dataset, total_steps, steps_per_epoch,
          examples_per_step):
    """Trains to ``total_steps``, evaluating after every epoch.

    Args:
      train_dataset: a distributed, repeating training dataset.
      eval_dataset: a distributed validation dataset.
      total_steps: the step to stop at (a resumed run continues to it).
      steps_per_epoch: steps between evaluations.
      examples_per_step: the global batch size, for examples/s.

    Returns:
      The history ``{"train": [(step, metrics)], "validation": [...]}``.
    """
    history = self._history()
    iterator = iter(train_dataset)
    progress = keras.utils.Progbar(
        total_steps, verbose=1 if self.chief else 0,
        stateful_metrics=["loss", "accuracy", "ex/s", "lr"])
    progress.update(self.step_value)
    with _stop_requests((signal.SIGINT,) if self.preemption else
                        (signal.SIGTERM, signal.SIGINT)) as stop:
      self._loop(iterator, eval_dataset, total_steps, steps_per_epoch,
                 examples_per_step, history, progress, stop)
    self.save(force=True)
    if self.chief and history["train"]:
      curves.write_curves_png(os.path.join(self.model_dir, "curves.png"),
                              history)
    return history

  def _loop(self, iterator, eval_dataset, total_steps, steps_per_epoch,
            examples_per_step, history, progress, stop):
    """The body of :meth:`fit`; a signal in ``stop`` ends it after a save."""
    examples, seconds = 0, 0.0
    while self.step_value < total_steps:
      step = self.step_value
      steps = min(self.steps_per_loop, total_steps - step,
                  steps_per_epoch - step % steps_per_epoch)
      start = time.perf_counter()
      metrics = self.trainer.train(iterator, steps)
      elapsed = time.perf_counter() - start
      self._check_finite(metrics, step, steps)
      self.step.assign_add(steps)
      step += steps
      examples += steps * examples_per_step
      seconds += elapsed
      speed = steps * examples_per_step / elapsed
      scalars = dict(metrics, learning_rate=self._learning_rate(),
                     examples_per_second=speed)
      self._write_scalars("train", scalars, step)
      progress.update(step, [("loss", metrics["loss"]),
                             ("accuracy", metrics["accuracy"]),
                             ("ex/s", speed), ("lr", scalars["learning_rate"])])
      if step % steps_per_epoch == 0 or step == total_steps:
        self._end_epoch(eval_dataset, step, history, metrics)
        self.trainer.reset_train_metrics()
      self.examples_per_second = examples / seconds
      if stop:
        raise TrainingInterrupted(stop[0], step, self.save(force=True))
      if self.preemption:  # saves and raises TrainingInterrupted if signalled
        self.preemption.save_checkpoint_if_preempted(
            checkpoint_number=self.step, check_interval=False)
      self.save()

  def _end_epoch(self, eval_dataset, step, history, train_metrics):
    """Evaluates, keeps the best checkpoint, and records the epoch.

    The training record also holds the epoch's peak resident memory and
    the ``tf.function`` trace count so far (evaluation included).
    """
    results = self.trainer.evaluate(eval_dataset)
    usage = {"peak_memory_mb": memory.peak_resident_mb(),
             "traces": sum(self.trainer.trace_counts.values())}
    memory.reset_peak()
    self._write_scalars("train", usage, step)
    history["train"].append((step, dict(train_metrics, **usage)))
    self._write_scalars("eval", results, step)
    history["validation"].append((step, results))
    improved = results["accuracy"] > float(self.best.numpy())
    if improved:
      self.best.assign(results["accuracy"])
      self.best_manager.save(checkpoint_number=step)
      self._cleanup()
    if self.chief:
      logging.info(
          "step %d: validation loss %.4f accuracy %.4f on %d examples%s", step,
          results["loss"], results["accuracy"], results["examples"],
          " (best)" if improved else "")
      atomic_files.write_json(os.path.join(self.model_dir, HISTORY_FILE),
                              history)

  def _check_finite(self, metrics, step, steps):
    names = ["loss"] + (["grad_norm"] if self.check_gradients else [])
    bad = [name for name in names if not math.isfinite(metrics[name])]
    if bad:
      raise NonFiniteLossError(
          f"Non-finite {' and '.join(bad)} in steps {step + 1}-{step + steps}: "
          f"training stopped. The last good checkpoint "
          f"({tf.train.latest_checkpoint(self.model_dir)}) is kept; lower the "
          f"learning rate or enable --clip_norm.")

  def close(self):
    for writer in self.writers.values():
      writer.flush()
    self._cleanup()
