"""The model directory: its layout, its lock, and its checkpoints.

Training, evaluation, prediction and export all find their files here::

    config.json      the run's ExperimentConfig, and the checksums of the
                     assets beside it
    vocab.txt        the tokenizer's vocabulary (an asset)
    checkpoint, ckpt-<step>.*   training checkpoints (model, optimizer, step)
    best/            the best checkpoint by validation metric (model only)
    train/, eval/    TensorBoard scalars
    history.json, summary.json, curves.png
    .lock            held by the run training in this directory

Under multi-worker training only the chief writes here; the other workers
write to ``.worker_tmp_<id>/`` (TensorFlow's multi-worker guide) and remove it.

Assets (the vocabulary, per-channel statistics) carry a checksum in
``config.json``: a file changed after the run wrote it (two lines swapped)
is refused with one line, never read into the wrong rows. A run writes
nothing here until every setting, the data and the resume are checked
(:meth:`ModelDirectory.lock`): a refused run leaves the directory as it
was.
"""

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time

import tensorflow as tf
from absl import logging

from maskmodels import atomic_files
from maskmodels.errors import (DamagedFile, InputError, ModelDirectoryInUse,
                               environment_fault)
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


def checksum(data):
  """The checksum ``config.json`` keeps of an asset's bytes."""
  return "sha256:" + hashlib.sha256(data).hexdigest()


def _read_bytes(path):
  try:
    with open(path, "rb") as f:
      return f.read()
  except FileNotFoundError:
    raise
  except OSError as error:
    raise environment_fault(error, path, reading=True) or error


def _saving(directory, step, save):
  """Runs ``save()`` of checkpoint ``step`` in ``directory``; if it fails
  for a fault of the machine (a full disk), removes the files and folders
  the save made (``ckpt-<step>_temp/``, a partial ``ckpt-<step>.*``) and
  raises the fault naming the checkpoint."""
  before = set(tf.io.gfile.listdir(directory)) if tf.io.gfile.isdir(
      directory) else set()
  try:
    return save()
  except (OSError, tf.errors.OpError) as error:
    fault = environment_fault(error, os.path.join(directory, f"ckpt-{step}"))
    if fault is None:
      raise
    if tf.io.gfile.isdir(directory):
      for name in set(tf.io.gfile.listdir(directory)) - before:
        path = os.path.join(directory, name.rstrip("/"))
        try:
          if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
          else:
            tf.io.gfile.remove(path)
        except (OSError, tf.errors.OpError):
          pass
    raise fault from error


class _Hold:
  """A run's hold on its directory: :meth:`commit` marks its first write
  (until then, leaving undoes what taking the hold changed)."""

  def __init__(self):
    self.committed = False

  def commit(self):
    self.committed = True


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
    self._checksums = None

  def file(self, name):
    """Path of ``name`` inside the directory."""
    return os.path.join(self.path, name)

  @property
  def vocab_path(self):
    return self.file(VOCAB_FILE)

  # ---- config --------------------------------------------------------------

  def load_config(self):
    """The saved ExperimentConfig; a clear error if this is not a model
    directory or its config is damaged."""
    path = self.file(CONFIG_FILE)
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"{path} not found: {self.path} is not a maskmodels model directory "
          f"(train one with maskmodels-train --model_dir={self.path}).")
    config, self._checksums = ExperimentConfig.read(path)
    return config

  def has_config(self):
    return os.path.isfile(self.file(CONFIG_FILE))

  def has_asset(self, name):
    return os.path.isfile(self.file(name))

  def read_bytes(self, name):
    """The bytes of file ``name``, unchecked (see :meth:`read_asset`)."""
    return _read_bytes(self.file(name))

  def read_asset(self, name):
    """The bytes of asset ``name`` (``vocab.txt``), checked against its
    checksum in ``config.json``.

    Raises:
      DamagedFile: the file is missing, or it is not the file the run
        wrote (one status for both: the directory is damaged).
    """
    if self._checksums is None:
      self.load_config()
    path = self.file(name)
    if not os.path.isfile(path):
      raise DamagedFile(f"{path} not found: the model directory lost a file "
                        f"its run wrote; restore it, or retrain in a new "
                        f"--model_dir.")
    data = _read_bytes(path)
    expected = self._checksums.get(name)
    if expected is None:
      raise DamagedFile(f"{self.file(CONFIG_FILE)} holds no checksum of "
                        f"{name}; retrain in a new --model_dir.")
    if checksum(data) != expected:
      raise DamagedFile(
          f"{path} does not match its checksum in {CONFIG_FILE}: it changed "
          f"after the run wrote it (an edit, a line moved), and the model "
          f"would read it into the wrong rows. Restore the file the run "
          f"wrote, or retrain in a new --model_dir.")
    return data

  def save_config(self, config, assets=None):
    """Writes ``assets`` (``{name: bytes}``, each atomically, unless the
    same bytes are there), then ``config.json`` with their checksums: the
    config is written last, so it never names an asset not yet there.
    ``assets=None`` keeps the directory's assets and checksums. Only the
    chief writes."""
    if not self.chief:
      return
    if assets is None:
      if self._checksums is None and self.has_config():
        self.load_config()
      sums = dict(self._checksums or {})
    else:
      for name, data in assets.items():
        path = self.file(name)
        if not (os.path.isfile(path) and _read_bytes(path) == data):
          atomic_files.write_bytes(path, data)
      sums = {name: checksum(data) for name, data in assets.items()}
    config.save(self.file(CONFIG_FILE), sums)
    self._checksums = sums

  # ---- the lock ------------------------------------------------------------

  @contextlib.contextmanager
  def lock(self):
    """Holds the directory for one training run; yields a hold whose
    ``commit()`` the run calls before its first write.

    Uses an advisory ``flock`` on ``.lock``: the kernel releases it when the
    process ends, however it ends, so a killed run never leaves a lock that
    blocks the rerun. A run that ends before it commits (refused: a
    setting, the data, the resume) leaves the directory as it was: the lock
    file's old content, or no lock file, and no directory if it made it.
    Non-chief workers and non-local paths (``gs://``, where ``flock`` does
    not exist) do not lock.

    Raises:
      ModelDirectoryInUse: another live process holds the directory.
      EnvironmentFault: the directory cannot be made or written (a file in
        its place, a read-only folder, a full disk).
    """
    hold = _Hold()
    if not self.chief or "://" in self.path:
      if "://" in self.path:
        logging.warning("%s is not on a local disk: it is not locked "
                        "against a second run.", self.path)
      yield hold
      return
    import fcntl  # pylint: disable=import-outside-toplevel
    made = self._make_directory()
    lock_path = self.file(LOCK_FILE)
    previous = _read_bytes(lock_path) if os.path.isfile(lock_path) else None
    try:
      handle = open(lock_path, "a+")
    except OSError as error:
      self._undo(made, None, previous, hold)
      raise environment_fault(error, lock_path) or error
    with handle:
      try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        raise ModelDirectoryInUse(
            f"{self.path} is in use by a running training ({holder}); wait "
            f"for it to end, or choose another --model_dir.") from None
      try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        yield hold
      except OSError as error:
        fault = environment_fault(error, lock_path)
        if fault is None:
          raise
        raise fault from error
      finally:
        self._undo(made, handle, previous, hold)
        fcntl.flock(handle, fcntl.LOCK_UN)

  def _make_directory(self):
    """Makes the directory; returns the folders it made (outermost
    first)."""
    made, path = [], os.path.abspath(self.path)
    while not os.path.exists(path):
      made.insert(0, path)
      path = os.path.dirname(path)
    try:
      os.makedirs(self.path, exist_ok=True)
    except OSError as error:
      raise environment_fault(error, self.path) or error
    return made

  def _undo(self, made, handle, previous, hold):
    """Before a commit, puts back what taking the lock changed."""
    if hold.committed:
      return
    lock_path = self.file(LOCK_FILE)
    try:
      if previous is None:
        if os.path.exists(lock_path):
          os.remove(lock_path)
      elif handle is not None:
        handle.seek(0)
        handle.truncate()
        handle.write(previous.decode("utf-8", "replace"))
        handle.flush()
      for folder in reversed(made):
        os.rmdir(folder)
    except OSError:
      pass  # the refusal, not this, is what the user needs to see

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
      path = _saving(manager.directory, step, lambda: manager.save(
          checkpoint_number=step))
      self.cleanup()
      return path

    return save

  def warn_unreadable_best(self, evaluate_checkpoint="best"):
    """Says at a run's start, not after training, when the best checkpoint
    its test pass would load cannot be read: the run then serves the
    newest readable one (a better validation value writes a new best)."""
    best = self.best_checkpoint()
    if best and evaluate_checkpoint == "best":
      problem = checkpoints.unreadable(best)
      if problem:
        logging.warning("%s cannot be read (%s): unless a better validation "
                        "value replaces it, the test pass and the other "
                        "commands serve the newest readable checkpoint.",
                        best, problem)

  def latest_checkpoint(self):
    return tf.train.latest_checkpoint(self.path)

  def best_checkpoint(self):
    return tf.train.latest_checkpoint(self.file(BEST_DIR))

  def training_checkpoints(self):
    """The training checkpoints kept, newest first."""
    state = tf.train.get_checkpoint_state(self.path)
    if state is None:
      return []
    return [p if os.path.isabs(p) else os.path.join(self.path, p)
            for p in reversed(state.all_model_checkpoint_paths)]

  def serving_checkpoint(self, which="best"):
    """The checkpoint evaluation, prediction, export and the end-of-run test
    pass load: the best one (``which="best"``) or the final one, whichever
    can be read; else the newest readable training checkpoint, saying which
    in one line.

    Raises:
      FileNotFoundError: no checkpoint at all (train first).
      DamagedFile: none can be read.
    """
    wanted = self.best_checkpoint() if which == "best" else None
    candidates = ([wanted] if wanted else []) + self.training_checkpoints()
    if not candidates:
      raise FileNotFoundError(f"No checkpoint in {self.path}; train first.")
    problems = []
    for path in candidates:
      problem = checkpoints.unreadable(path)
      if problem is None:
        if problems:
          logging.warning("%s cannot be read (%s); serving the newest "
                          "readable checkpoint instead, %s.",
                          problems[0][0], problems[0][1], path)
        return path
      problems.append((path, problem))
    raise DamagedFile(f"No checkpoint in {self.path} can be read (tried "
                      f"{', '.join(p for p, _ in problems)}; "
                      f"{problems[0][1]}). Retrain in a new --model_dir.")

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
    """Saves at ``step`` if the interval has passed (or ``force``); a save
    that fails (a full disk) leaves no partial checkpoint behind."""
    path = _saving(self.manager.directory, step, lambda: self.manager.save(
        checkpoint_number=step, check_interval=not force))
    self.model_dir.cleanup()
    return path

  def restore(self):
    """Resumes from the newest readable checkpoint; its path or None."""
    return self.model_dir.restore_latest(self.checkpoint, self.manager)
