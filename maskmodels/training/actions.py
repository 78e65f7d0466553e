"""Actions: what happens around the training loop, one small object each.

The controller calls *train actions* as ``action(step, outputs)`` after each
loop of train steps and *eval actions* the same way after each evaluation,
in list order; an action may add entries to ``outputs`` for the actions
after it. A *preemption* action runs last in a loop, after the checkpoint.
"""

import contextlib
import math
import signal
import threading

import tensorflow as tf
from absl import logging

from maskmodels import progress
from maskmodels.training import curves, memory
from maskmodels.training.trainer import NonFiniteLossError

# Exit status of a run stopped by SIGTERM/SIGINT after saving (EX_TEMPFAIL:
# rerun the same command to resume).
from maskmodels.errors import PREEMPTED_EXIT_CODE  # noqa: F401  (re-exported)


class TrainingInterrupted(Exception):
  """Training stopped on a signal after checkpointing the current step."""

  def __init__(self, signal_number, step, path):
    super().__init__(
        f"Stopped by {signal.Signals(signal_number).name} at step {step}; "
        f"saved {path}. Rerun the same command to resume.")
    self.step = step


class Throughput:
  """Adds the loop's ``examples_per_second`` to its outputs and keeps the
  steady-state rate: the first loop of a process (which traces and fills
  the input pipeline's cache) is left out when there are others."""

  def __init__(self):
    self.examples = 0.0
    self.seconds = 0.0
    self.first = None

  def __call__(self, step, outputs):
    examples, seconds = outputs.get("examples", 0.0), outputs["seconds"]
    outputs["examples_per_second"] = examples / max(seconds, 1e-9)
    if self.first is None:
      self.first = (examples, seconds)
    else:
      self.examples += examples
      self.seconds += seconds

  @property
  def examples_per_second(self):
    """Steady-state examples/s (the first loop's if it was the only one)."""
    examples, seconds = ((self.examples, self.seconds) if self.seconds else
                         self.first or (0.0, 0.0))
    return examples / seconds if seconds else None


class NaNGuard:
  """Stops training on a non-finite loss (or gradient norm) before the
  loop's weights can be checkpointed.

  Args:
    check_gradients: also check ``grad_norm`` (off under float16 loss
      scaling, which skips such steps itself).
    latest_checkpoint: a function returning the last good checkpoint's path.
  """

  def __init__(self, check_gradients, latest_checkpoint):
    self.names = ["loss"] + (["grad_norm"] if check_gradients else [])
    self.latest_checkpoint = latest_checkpoint

  def __call__(self, step, outputs):
    bad = [name for name in self.names if not math.isfinite(outputs[name])]
    if bad:
      raise NonFiniteLossError(
          f"Non-finite {' and '.join(bad)} in steps "
          f"{step - outputs['steps'] + 1}-{step}: training stopped. The last "
          f"good checkpoint ({self.latest_checkpoint()}) is kept; lower the "
          f"learning rate or enable --clip_norm.")


class ProgressBar:
  """Progress over the run's steps with the task's metrics, ex/s and lr: a
  live Keras ``Progbar`` on a terminal, one plain line per loop in a log.

  Args:
    total_steps: the run's last step.
    start_step: the step it starts from (a resumed run's).
    metrics: the training metrics to show (the task's, ``loss`` first).
    verbose: 0 to show nothing (non-chief workers).
  """

  EXTRA = (("examples_per_second", "ex/s"), ("learning_rate", "lr"))

  def __init__(self, total_steps, start_step, metrics=("loss",), verbose=1):
    self.shown = [(name, name) for name in metrics] + list(self.EXTRA)
    self.bar = progress.bar(
        total_steps, "step", verbose=verbose, interval=0.0,  # every loop
        stateful_metrics=[label for _, label in self.shown])
    self.bar.update(start_step)

  def __call__(self, step, outputs):
    self.bar.update(step, [(label, outputs[name]) for name, label in
                           self.shown if name in outputs])


class Summaries:
  """Writes every number in the outputs as a TensorBoard scalar."""

  def __init__(self, writer):
    self.writer = writer

  def __call__(self, step, outputs):
    with self.writer.as_default(step=step):
      for name, value in outputs.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
          tf.summary.scalar(name, value)


class MemoryProbe:
  """Adds the peak resident memory since the last evaluation and the
  ``tf.function`` trace count to the evaluation outputs."""

  def __init__(self, trace_counts):
    self.trace_counts = trace_counts

  def __call__(self, step, outputs):
    outputs["peak_memory_mb"] = memory.peak_resident_mb()
    outputs["traces"] = sum(self.trace_counts.values())
    memory.reset_peak()


def beats(value, best, mode, min_delta=0.0):
  """Whether ``value`` improves on ``best`` by more than ``min_delta``:
  lower with ``mode="min"``, higher with ``"max"``."""
  return value < best - min_delta if mode == "min" else value > best + min_delta


class BestCheckpoint:
  """Saves the model when the evaluation ``metric`` improves.

  Args:
    save: a function of the step that saves the best checkpoint.
    metric: the evaluation output to follow.
    best: a float64 ``tf.Variable`` holding the best value so far (it is
      part of the training checkpoint, so a resumed run remembers it); it
      starts at the worst value (``-inf`` for ``"max"``, ``inf`` for
      ``"min"``).
    mode: ``"max"`` (higher is better) or ``"min"`` (lower is better).
  """

  def __init__(self, save, metric, best, mode="max"):
    if mode not in ("max", "min"):
      raise ValueError(f"mode must be 'max' or 'min', got {mode!r}.")
    self.save, self.metric, self.best, self.mode = save, metric, best, mode
    self.step = None

  def __call__(self, step, outputs):
    value = outputs[self.metric]
    if beats(value, float(self.best.numpy()), self.mode):
      self.best.assign(value)
      self.step = step
      self.save(step)

  @property
  def value(self):
    value = float(self.best.numpy())
    return value if math.isfinite(value) else None


class EarlyStopping:
  """Stops training when the validation ``metric`` has not improved by
  ``min_delta`` in ``patience`` validations: Keras's ``EarlyStopping``
  (``wait`` counts validations since the last improvement; an
  improvement beats the reference by more than ``min_delta``, and becomes
  the reference). The best weights serve as ever (``best/``).

  Args:
    metric: the evaluation output to follow.
    mode: ``"max"`` or ``"min"``.
    patience: validations without improvement before it stops.
    min_delta: the least change that counts as an improvement.
    best, wait: float64 and int64 ``tf.Variable`` s of the training
      checkpoint (the reference value, starting at the worst, and the
      count), so a resumed run goes on counting where it stopped.
  """

  def __init__(self, metric, mode, patience, min_delta, best, wait):
    if mode not in ("max", "min"):
      raise ValueError(f"mode must be 'max' or 'min', got {mode!r}.")
    self.metric, self.mode = metric, mode
    self.patience, self.min_delta = patience, min_delta
    self.best, self.wait = best, wait

  def improves(self, value):
    """Whether ``value`` beats the reference by more than ``min_delta``."""
    return math.isfinite(value) and beats(
        value, float(self.best.numpy()), self.mode, self.min_delta)

  def __call__(self, step, outputs):
    value = outputs[self.metric]
    if self.improves(value):
      self.best.assign(value)
      self.wait.assign(0)
    else:
      self.wait.assign_add(1)
    outputs["early_stopping_wait"] = int(self.wait.numpy())
    if self.should_stop():
      logging.info("Early stopping at step %d: validation %s has not "
                   "improved by more than %g in %d validations (best %.4f).",
                   step, self.metric, self.min_delta, self.patience,
                   float(self.best.numpy()))

  def should_stop(self):
    """Whether patience has run out (also for a resumed run that had
    stopped)."""
    return int(self.wait.numpy()) >= self.patience


class ValidationLog:
  """Logs one plain line per evaluation: the step, the task's metrics, and
  whether the best metric improved (after :class:`BestCheckpoint`).

  Args:
    metrics: the evaluation metrics to show (the task's).
    best: the run's :class:`BestCheckpoint`.
    verbose: 0 to log nothing (non-chief workers).
  """

  def __init__(self, metrics, best, verbose=1):
    self.metrics, self.best, self.verbose = list(metrics), best, verbose

  def __call__(self, step, outputs):
    if not self.verbose:
      return
    shown = " - ".join(f"{name} {outputs[name]:.4f}" for name in self.metrics
                       if name in outputs)
    mark = f" (best {self.best.metric})" if self.best.step == step else ""
    logging.info("Validation at step %d: %s%s.", step, shown, mark)


class History:
  """Records train outputs after every loop and evaluation outputs after
  every evaluation; writes ``history.json`` and ``curves.png`` at each
  evaluation. Every number an output holds is kept (the task's metrics
  among them).

  Args:
    history: ``{"train": [(step, outputs)], "validation": [...]}`` so far.
    write_json: a function ``(name, value)`` writing a model-directory file.
    curves_path: where the plot goes, or None (non-chief workers).
    panels: the plot's panels (``curves.panels_for``).
    best: ``(metric, mode)`` the best checkpoint follows.
  """

  SKIPPED = ("seconds", "steps")

  def __init__(self, history, write_json, curves_path, panels, best):
    self.history = history
    self.write_json = write_json
    self.curves_path = curves_path
    self.panels = panels
    self.best = best

  def record_train(self, step, outputs):
    self.history["train"].append((step, {
        k: v for k, v in outputs.items() if k not in self.SKIPPED and
        isinstance(v, (int, float)) and not isinstance(v, bool)}))

  def record_eval(self, step, outputs):
    self.history["validation"].append((step, dict(outputs)))
    self.write()

  def write(self):
    self.write_json("history.json", self.history)
    if self.curves_path and self.history["train"]:
      curves.write_curves_png(self.curves_path, self.history, self.panels,
                              *self.best)


class SignalPreemption:
  """SIGTERM or SIGINT ends training after the current loop: the action
  saves a checkpoint at that step and raises :class:`TrainingInterrupted`.
  A second signal acts at once (the previous handlers are back).

  Args:
    save: a function of the step that saves a checkpoint, returning its
      path.
    signals: the signals to catch.
  """

  def __init__(self, save, signals=(signal.SIGTERM, signal.SIGINT)):
    self.save = save
    self.signals = signals
    self.received = []

  @contextlib.contextmanager
  def watching(self):
    """Catches the signals while the ``with`` block runs (main thread)."""
    if threading.current_thread() is not threading.main_thread():
      yield
      return
    previous = {}

    def request_stop(number, _):
      self.received.append(number)
      for sig, handler in previous.items():
        signal.signal(sig, handler)

    for sig in self.signals:
      previous[sig] = signal.signal(sig, request_stop)
    try:
      yield
    finally:
      for sig, handler in previous.items():
        signal.signal(sig, handler)

  def __call__(self, step):
    if self.received:
      raise TrainingInterrupted(self.received[0], step, self.save(step))


class ClusterPreemption:
  """TensorFlow's ``PreemptionCheckpointHandler`` for a multi-worker cluster.

  On SIGTERM to any worker, every worker agrees on a step, each saves there
  (the chief for real) and all stop with :class:`TrainingInterrupted`; a
  lone worker's own save would leave its peers waiting in an all-reduce.

  Args:
    resolver: the cluster resolver.
    manager: the training ``tf.train.CheckpointManager``.
    cleanup: called after a save (removes a non-chief's temporary files).
  """

  def __init__(self, resolver, manager, cleanup):
    self.manager = manager

    def stop():
      cleanup()
      raise TrainingInterrupted(signal.SIGTERM, self.step,
                                manager.latest_checkpoint)

    self.step = 0
    self.handler = tf.distribute.experimental.PreemptionCheckpointHandler(
        resolver, manager,
        termination_config=tf.distribute.experimental.TerminationConfig(
            exit_fn=stop))

  @contextlib.contextmanager
  def watching(self):
    yield

  def __call__(self, step):
    self.step = step
    self.handler.save_checkpoint_if_preempted(checkpoint_number=step,
                                              check_interval=False)

