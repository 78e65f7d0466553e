"""A training run: the thin wiring around the one step that prepares it.

In order, each once:

1. :func:`~maskmodels.training.prepare.prepare` reads the data, checks
   every setting, label and the model directory, and decides the batching
   (pure: every refusal happens there, nothing is written);
2. the process is set up (seeds, determinism, the dtype policy);
3. the model is built under the strategy, with its optimizer and trainer;
4. the latest readable checkpoint is restored (a checkpoint of another
   model is refused here, still before any write);
5. the first write: the input kind's assets and ``config.json``;
6. the controller runs the steps with its actions (progress, summaries,
   history, the best checkpoint, the NaN guard, preemption);
7. what the model fits on held-out data (an ensemble's member weights);
8. the test pass, and ``summary.json``.

``train_and_evaluate`` is what ``maskmodels-train`` runs; research code may
subclass :class:`Runner` and override a step.
"""

import signal
import time

import keras
import tensorflow as tf
from absl import logging

from maskmodels import progress
from maskmodels.data import pipeline
from maskmodels.errors import WorkerLost
from maskmodels.training import actions, checkpoints, curves, optimization
from maskmodels.training.builders import model_in_scope, task_of
from maskmodels.training.controller import Controller
from maskmodels.training.model_dir import CURVES_FILE, ModelDirectory
from maskmodels.training.prepare import prepare
from maskmodels.training.strategy import cluster_resolver, lost_worker
from maskmodels.training.trainer import Trainer


def monitored(task, train):
  """``(metric, mode)`` that picks the best checkpoint and stops early:
  the task's best metric, or with ``--monitor=loss`` the validation
  loss."""
  if train.monitor == "loss":
    return "loss", "min"
  return task.best_metric, task.best_mode


def set_up_process(train):
  """Seeds, determinism and the dtype policy of a run's ``TrainConfig``,
  before anything is built."""
  keras.utils.set_random_seed(train.seed)
  if train.deterministic:
    tf.config.experimental.enable_op_determinism()
  optimization.set_precision(
      train.precision, on_gpu=bool(tf.config.list_logical_devices("GPU")))


class Runner:
  """Trains (or resumes) one run in a model directory and evaluates it.

  Args:
    config: an ``ExperimentConfig`` (as given; the run's final one is its
      :class:`~maskmodels.training.prepare.PreparedRun`'s).
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
    with self.model_dir.lock() as hold:
      run = self.prepare()
      set_up_process(run.config.train)
      model = model_in_scope(run.config, run.task, run.kind.model_inputs(
          run.assets), self.strategy)
      trainer = self.build_trainer(run, model)
      restored = self.restore(run, trainer)
      self.model_dir.warn_unreadable_best(
          run.config.checkpoint.evaluate_checkpoint)
      hold.commit()
      self.model_dir.save_config(run.config, run.asset_files())
      try:
        controller, status = self.build_controller(run, trainer, restored)
        self.train(controller, run.total_steps)
        trainer.close()  # the training pipeline ends with training
        summary = self.evaluate(run, trainer, status)
      finally:
        trainer.close()
      summary["wall_seconds"] = time.perf_counter() - start
      self.model_dir.write_json("summary.json", summary)
    return summary

  # ---- before the first write -------------------------------------------------

  def prepare(self):
    """The run's :class:`~maskmodels.training.prepare.PreparedRun` (a TPU
    pads every batch to its bucket's edge)."""
    tpu = isinstance(self.strategy, tf.distribute.TPUStrategy)
    if tpu:
      logging.info("TPU: padding every batch to its bucket's edge.")
    run = prepare(self.config, task_of(self.config), self.model_dir,
                  self.replicas, static_shapes=tpu)
    logging.info("Training under %s with %d replica(s).",
                 type(self.strategy).__name__, self.replicas)
    return run

  def build_trainer(self, run, model):
    """The optimizer and the trainer with its training input (built, not
    yet run)."""
    train = run.config.train
    with self.strategy.scope():
      optimizer = optimization.make_optimizer(
          train.optimizer, optimization.learning_rate_schedule(
              train.lr_schedule, train.learning_rate, run.total_steps,
              train.warmup_steps), train.weight_decay, train.precision)
      optimizer.build(model.trainable_variables)
    trainer = Trainer(run.task, model, optimizer, self.strategy,
                      clip_norm=train.clip_norm,
                      jit_compile=train.jit_compile,
                      padding_stats=run.featurizer.padding_stats)
    trainer.set_train_data(run.train_input)
    return trainer

  def restore(self, run, trainer):
    """The training checkpoint (model, optimizer, step, best validation
    metric, early stopping's count), restored from the latest readable one
    if there is one: a checkpoint of another model is refused here, before
    any write.

    Returns:
      ``(checkpointer, state, restored)``: state holds the variables the
      actions keep in the checkpoint (``best``, and with early stopping
      ``stopping_best`` and ``stopping_wait``), restored the checkpoint
      resumed from (None for a new run).
    """
    _, mode = monitored(run.task, run.config.train)
    worst = float("inf") if mode == "min" else float("-inf")
    state = {"best": tf.Variable(worst, dtype=tf.float64, trainable=False,
                                 name="best_validation_metric")}
    if run.config.train.early_stopping:
      state.update(
          stopping_best=tf.Variable(worst, dtype=tf.float64, trainable=False,
                                    name="early_stopping_best"),
          stopping_wait=tf.Variable(0, dtype=tf.int64, trainable=False,
                                    name="early_stopping_wait"))
    checkpoint = checkpoints.weights_checkpoint(
        trainer.model, trainer.optimizer, step=trainer.global_step, **state)
    settings = run.config.checkpoint
    checkpointer = self.model_dir.checkpointer(
        checkpoint, trainer.global_step, settings.keep_checkpoints,
        settings.checkpoint_every_steps)
    restored = checkpointer.restore()
    if restored:
      logging.info("Resumed from %s at step %d.", restored, trainer.step)
    return checkpointer, state, restored

  # ---- training -----------------------------------------------------------------

  def build_controller(self, run, trainer, restored):
    """The loop with its actions, resumed where the checkpoint left off.

    A new run first adapts the model's data-derived state (``model.adapt``,
    an ensemble member's counts) on the training split, cut as training
    cuts it; a resumed run has it from the checkpoint.

    Returns:
      ``(controller, status)``: status holds the Throughput and
      BestCheckpoint actions and the checkpointer, read at the end.
    """
    checkpointer, state, restored = restored
    if not restored and hasattr(trainer.model, "adapt"):
      trainer.model.adapt(pipeline.labelled_batches(
          run.splits.train, run.featurizer, run.train_pipeline.max_len,
          run.train_pipeline.truncation, run.task.labels))
    directory, task, train = self.model_dir, run.task, run.config.train
    metric, mode = monitored(task, train)
    # best/ holds the serving weights only when they are the best ones.
    save_best = (directory.best_saver(trainer.model) if
                 run.config.checkpoint.evaluate_checkpoint == "best" else
                 lambda step: None)
    status = dict(throughput=actions.Throughput(), best=actions.BestCheckpoint(
        save_best, metric, state["best"], mode), checkpointer=checkpointer,
                  stopping=actions.EarlyStopping(
                      metric, mode, train.patience, train.min_delta,
                      state["stopping_best"], state["stopping_wait"])
                  if train.early_stopping else None)
    metrics = list(task.build_metrics(training=False))
    shown = [m for m in metrics if m != "tokens"]
    history = actions.History(
        directory.read_history(trainer.step), directory.write_json,
        directory.file(CURVES_FILE) if directory.chief else None,
        curves.panels_for(metrics, task.metric_units), (metric, mode))
    controller = Controller(
        trainer, checkpointer,
        lambda: trainer.evaluate(run.eval_input(run.splits.validation)),
        steps_per_loop=train.steps_per_loop, eval_every=run.eval_every,
        train_actions=[
            status["throughput"],
            actions.NaNGuard(run.config.train.precision != "mixed_float16",
                             directory.latest_checkpoint),
            actions.ProgressBar(run.total_steps, trainer.step, shown,
                                verbose=int(directory.chief)),
            actions.Summaries(directory.summary_writer("train")),
            history.record_train],
        eval_actions=[
            actions.MemoryProbe(trainer.trace_counts), status["best"]] + (
                [status["stopping"]] if status["stopping"] else []) + [
                    actions.Summaries(directory.summary_writer("eval")),
                    actions.ValidationLog(shown, status["best"],
                                          int(directory.chief)),
                    history.record_eval],
        preemption=self.build_preemption(checkpointer),
        stop=status["stopping"] and status["stopping"].should_stop)
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

  # ---- after training --------------------------------------------------------------

  def evaluate(self, run, trainer, status):
    """The serving weights (the best or the final ones), what the model
    fits on the validation split, the test pass; returns the summary."""
    splits, stopping = run.splits, status["stopping"]
    summary = {
        "steps": trainer.step,
        "epochs": trainer.step / run.steps_per_epoch,
        "steps_per_epoch": run.steps_per_epoch,
        "budget": f"at most {run.total_steps} steps: {run.budget}",
        "train_examples": len(splits.train),
        "validation_examples": len(splits.validation),
        f"best_validation_{status['best'].metric}": status["best"].value,
        "train_examples_per_second": status["throughput"].examples_per_second,
    }
    if stopping is not None:
      summary["stopped_early"] = stopping.should_stop()
    serving_best = run.config.checkpoint.evaluate_checkpoint == "best"
    best = None
    if serving_best and self.model_dir.best_checkpoint():
      # The best weights, or (unreadable) the newest readable checkpoint.
      best = self.model_dir.serving_checkpoint("best")
      checkpoints.restore_weights(trainer.model, best)
      if best != self.model_dir.best_checkpoint():
        best = None
    if hasattr(trainer.model, "fit_held_out"):
      summary["held_out_fit"] = self.fit_held_out(run, trainer.model)
      if best:
        self.model_dir.best_saver(trainer.model)(
            checkpoints.checkpoint_step(best))
      else:
        status["checkpointer"].save(trainer.step, force=True)
    if splits.test is not None:
      logging.info("Test pass over %d examples.", len(splits.test))
      bar = progress.bar(len(splits.test), "examples",
                         verbose=int(self.model_dir.chief))
      test = trainer.evaluate(run.eval_input(splits.test), progress=bar)
      summary.update({f"test_{name}": value for name, value in test.items()})
      summary["test_examples"] = int(test["examples"])
    return summary

  def fit_held_out(self, run, model):
    """``model.fit_held_out`` on the validation split, a step of the run
    (an ensemble's member weights: each member trained on its own loss,
    the weights only combine their outputs); its result goes in the
    summary."""
    logging.info("Fitting %s on %d validation examples.", model.name,
                 len(run.splits.validation))
    with progress.heartbeat(f"Fitting {model.name} on held-out data"):
      result = model.fit_held_out(run.task, run.eval_input(
          run.splits.validation)())
    logging.info("Fitted on held-out data: %s.", result)
    return result


def train_and_evaluate(config, model_dir, strategy):
  """Trains (or resumes) a run in ``model_dir`` and evaluates it.

  Returns:
    The run summary (also written to ``summary.json``).
  """
  return Runner(config, model_dir, strategy).run()
