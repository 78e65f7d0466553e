"""The model directory: its layout, its lock, and its checkpoints.

Training, evaluation, prediction and export all find their files here::

    config.json      the run's ExperimentConfig
    vocab.txt        the tokenizer's vocabulary
    checkpoint, ckpt-<step>.*   training checkpoints (model, optimizer, step)
    best/            the best checkpoint by validation metric (model only)
    train/, eval/    TensorBoard scalars
    history.json, summary.json, curves.png
    .lock            held by the run training in this directory

Under multi-worker training only the chief writes here; the other workers
write to ``.worker_tmp_<id>/`` (TensorFlow's multi-worker guide) and remove it.
"""

import contextlib
import json
import os
import shutil
import socket
import time

import tensorflow as tf
from absl import logging

from maskmodels import atomic_files
from maskmodels.errors import InputError, ModelDirectoryInUse
from maskmodels.training import checkpoints
from maskmodels.training.config import ExperimentConfig
from maskmodels.training.strategy import is_chief, task_id

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.txt"
HISTORY_FILE = "history.json"
SUMMARY_FILE = "summary.json"
CURVES_FILE = "curves.png"
BEST_DIR = "best"
LOCK_FILE = ".lock"


class ModelDirectory:
  """One model directory, seen from one worker.

  Args:
    path: the directory (created when a run writes to it).
    strategy: the run's strategy (decides chief and write path); None for
      evaluation, prediction and export.
  """

  def __init__(self, path, strategy=None):
    self.path = path
    self.chief = strategy is None or is_chief(strategy)
    self.write_path = (path if self.chief else os.path.join(
        path, f".worker_tmp_{task_id(strategy)}"))

  def file(self, name):
    """Path of ``name`` inside the directory."""
    return os.path.join(self.path, name)

  @property
  def vocab_path(self):
    return self.file(VOCAB_FILE)

  # ---- config --------------------------------------------------------------

  def load_config(self):
    """The saved ExperimentConfig; a clear error if this is not a model
    directory."""
    path = self.file(CONFIG_FILE)
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"{path} not found: {self.path} is not a maskmodels model directory "
          f"(train one with maskmodels-train --model_dir={self.path}).")
    return ExperimentConfig.load(path)

  def has_config(self):
    return os.path.isfile(self.file(CONFIG_FILE))

  def save_config(self, config):
    if self.chief:
      config.save(self.file(CONFIG_FILE))

  # ---- the lock ------------------------------------------------------------

  @contextlib.contextmanager
  def lock(self):
    """Holds the directory for one training run.

    Uses an advisory ``flock`` on ``.lock``: the kernel releases it when the
    process ends, however it ends, so a killed run never leaves a lock that
    blocks the rerun. Non-chief workers and non-local paths (``gs://``,
    where ``flock`` does not exist) do not lock.

    Raises:
      ModelDirectoryInUse: another live process holds the directory.
    """
    if not self.chief or "://" in self.path:
      if "://" in self.path:
        logging.warning("%s is not on a local disk: it is not locked "
                        "against a second run.", self.path)
      yield
      return
    import fcntl  # pylint: disable=import-outside-toplevel
    os.makedirs(self.path, exist_ok=True)
    with open(self.file(LOCK_FILE), "a+") as handle:
      try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        raise ModelDirectoryInUse(
            f"{self.path} is in use by a running training ({holder}); wait "
            f"for it to end, or choose another --model_dir.") from None
      handle.seek(0)
      handle.truncate()
      handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
      handle.flush()
      try:
        yield
      finally:
        fcntl.flock(handle, fcntl.LOCK_UN)

  # ---- checkpoints ---------------------------------------------------------

  def checkpointer(self, checkpoint, step_counter, max_to_keep, interval):
    """The run's training checkpoints (in this worker's write path)."""
    return Checkpointer(self, checkpoint, step_counter, max_to_keep,
                        interval)

  def best_saver(self, model):
    """A function of the step that saves ``model``'s weights as the best
    checkpoint (under ``best/``)."""
    manager = tf.train.CheckpointManager(
        checkpoints.weights_checkpoint(model),
        os.path.join(self.write_path, BEST_DIR), max_to_keep=1)

    def save(step):
      path = manager.save(checkpoint_number=step)
      self.cleanup()
      return path

    return save

  def latest_checkpoint(self):
    return tf.train.latest_checkpoint(self.path)

  def best_checkpoint(self):
    return tf.train.latest_checkpoint(self.file(BEST_DIR))

  def serving_checkpoint(self, which="best"):
    """The checkpoint evaluation, prediction and export load: the best one
    (``which="best"``, falling back to the latest) or the final one."""
    path = (which == "best" and self.best_checkpoint()) or (
        self.latest_checkpoint())
    if path is None:
      raise FileNotFoundError(f"No checkpoint in {self.path}; train first.")
    return path

  def restore_latest(self, checkpoint, manager):
    """Resumes from the newest readable checkpoint; returns its path or None.

    A checkpoint whose files cannot be read (a kill while it was written to
    a disk that does not rename atomically, a truncated copy) is skipped with
    a warning in favour of the one before it; a checkpoint of another model
    is an error naming the first differing value.
    """
    # A non-chief worker's manager writes elsewhere: it reads the chief's.
    candidates = list(reversed(manager.checkpoints)) or [
        p for p in [self.latest_checkpoint()] if p]
    for path in candidates:
      try:
        checkpoints.restore(checkpoint, path)
      except (tf.errors.OpError, IndexError) as error:  # a short read
        logging.warning("Skipping unreadable checkpoint %s: %s", path,
                        str(error).splitlines()[0])
        continue
      except AssertionError as error:
        raise InputError(f"Cannot restore {path}: it does not match this "
                         f"model ({str(error).splitlines()[0]}).") from None
      return path
    if candidates:
      raise InputError(f"No checkpoint in {self.path} can be read (tried "
                       f"{', '.join(candidates)}). Use a new --model_dir.")
    return None

  def cleanup(self):
    """Removes a non-chief worker's temporary write path."""
    if not self.chief:
      shutil.rmtree(self.write_path, ignore_errors=True)

  # ---- records -------------------------------------------------------------

  def read_history(self, up_to_step):
    """The saved history, without entries past ``up_to_step`` (a kill
    after the last checkpoint may have left some)."""
    history = {"train": [], "validation": []}
    path = self.file(HISTORY_FILE)
    if os.path.exists(path):
      with open(path) as f:
        history.update(json.load(f))
    return {name: [entry for entry in entries if entry[0] <= up_to_step]
            for name, entries in history.items()}

  def write_json(self, name, value):
    """Writes ``name`` atomically (chief only)."""
    if self.chief:
      atomic_files.write_json(self.file(name), value, indent=2)

  def summary_writer(self, name):
    """A TensorBoard writer for ``train`` or ``eval`` (a no-op off chief)."""
    if not self.chief:
      return tf.summary.create_noop_writer()
    return tf.summary.create_file_writer(self.file(name))


class Checkpointer:
  """Saves and restores one run's training checkpoints through a
  ``tf.train.CheckpointManager``; see :meth:`ModelDirectory.checkpointer`.
  """

  def __init__(self, model_dir, checkpoint, step_counter, max_to_keep,
               interval):
    self.model_dir = model_dir
    self.checkpoint = checkpoint
    self.manager = tf.train.CheckpointManager(
        checkpoint, model_dir.write_path, max_to_keep=max_to_keep,
        step_counter=step_counter, checkpoint_interval=interval)

  def save(self, step, force=False):
    """Saves at ``step`` if the interval has passed (or ``force``)."""
    path = self.manager.save(checkpoint_number=step, check_interval=not force)
    self.model_dir.cleanup()
    return path

  def restore(self):
    """Resumes from the newest readable checkpoint; its path or None."""
    return self.model_dir.restore_latest(self.checkpoint, self.manager)
