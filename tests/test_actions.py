"""The controller and each action alone, driven by a fake trainer."""

import math
import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from helpers import summary_scalars
from maskmodels.training import actions, curves, memory
from maskmodels.training.controller import Controller
from maskmodels.training.trainer import NonFiniteLossError


class FakeTrainer:
  """Counts steps and returns scripted losses; no model, no TensorFlow."""

  def __init__(self, losses=None):
    self.step = 0
    self.losses = losses
    self.trace_counts = {"train": 1, "eval": 1}

  def train(self, steps):
    self.step += steps
    loss = self.losses(self.step) if self.losses else 1.0 / self.step
    return {"loss": loss, "accuracy": 0.5, "grad_norm": 1.0,
            "learning_rate": 0.1, "examples": 4.0 * steps}


class Recorder:
  """A checkpointer and action that records what it is given."""

  def __init__(self):
    self.calls = []

  def __call__(self, step, outputs=None):
    self.calls.append((step, dict(outputs or {})))

  def save(self, step, force=False):
    self.calls.append(("save", step, force))
    return f"ckpt-{step}"


def test_controller_loops_evaluates_checkpoints_and_stops_at_the_total():
  trainer, saver, train, evaluated = (FakeTrainer(), Recorder(), Recorder(),
                                      Recorder())
  evaluations = []

  def evaluate():
    evaluations.append(trainer.step)
    return {"accuracy": trainer.step / 100}

  Controller(trainer, saver, evaluate, steps_per_loop=4, eval_every=10,
             train_actions=[train], eval_actions=[evaluated]).run(25)
  assert trainer.step == 25
  assert [step for step, _ in train.calls] == [4, 8, 10, 14, 18, 20, 24, 25]
  assert evaluations == [10, 20, 25]  # every epoch, and at the end
  assert [c[1] for c in saver.calls if c[0] == "save"][-1] == 25
  assert saver.calls[-1] == ("save", 25, True)  # the final save is forced
  assert train.calls[0][1]["steps"] == 4 and "seconds" in train.calls[0][1]


def test_controller_resumes_from_the_trainers_step():
  trainer, train = FakeTrainer(), Recorder()
  trainer.step = 12
  Controller(trainer, Recorder(), None, steps_per_loop=5, eval_every=10,
             train_actions=[train]).run(22)
  assert [step for step, _ in train.calls] == [17, 20, 22]


def test_nan_guard_stops_before_the_checkpoint_and_names_the_steps():
  trainer = FakeTrainer(losses=lambda step: math.nan if step > 6 else 1.0)
  saver = Recorder()
  guard = actions.NaNGuard(True, lambda: "ckpt-6")
  with pytest.raises(NonFiniteLossError, match=r"Non-finite loss in steps "
                     r"7-9: training stopped. The last good checkpoint "
                     r"\(ckpt-6\) is kept"):
    Controller(trainer, saver, None, steps_per_loop=3, eval_every=100,
               train_actions=[guard]).run(30)
  assert [c[1] for c in saver.calls] == [3, 6]  # step 9 was never saved
  gradients = actions.NaNGuard(False, lambda: None)
  gradients(3, {"loss": 1.0, "grad_norm": math.inf, "steps": 3})  # not checked


def test_throughput_leaves_out_the_first_loop():
  throughput = actions.Throughput()
  for examples, seconds in ((40, 10.0), (40, 1.0), (80, 2.0)):
    outputs = {"examples": examples, "seconds": seconds}
    throughput(0, outputs)
    assert outputs["examples_per_second"] == examples / seconds
  assert throughput.examples_per_second == pytest.approx(40.0)
  only = actions.Throughput()
  only(0, {"examples": 10, "seconds": 2.0})
  assert only.examples_per_second == 5.0


def test_best_checkpoint_saves_on_improvement_only():
  saved = []
  best = tf.Variable(-np.inf, dtype=tf.float64)
  action = actions.BestCheckpoint(saved.append, "accuracy", best)
  assert action.value is None
  for step, accuracy in ((10, 0.6), (20, 0.7), (30, 0.65), (40, 0.7)):
    action(step, {"accuracy": accuracy})
  assert saved == [10, 20] and action.value == pytest.approx(0.7)


def test_best_checkpoint_of_a_lower_is_better_metric_keeps_the_lowest():
  saved = []
  best = tf.Variable(np.inf, dtype=tf.float64)
  action = actions.BestCheckpoint(saved.append, "mae", best, mode="min")
  for step, mae in ((10, 0.9), (20, 0.4), (30, 0.6), (40, 0.4), (50, 0.3)):
    action(step, {"mae": mae})
  assert saved == [10, 20, 50] and action.value == pytest.approx(0.3)
  with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
    actions.BestCheckpoint(saved.append, "mae", best, mode="lowest")


def test_validation_log_is_one_line_per_evaluation_marking_the_best(
    monkeypatch):
  logged = []
  monkeypatch.setattr(actions.logging, "info",
                      lambda message, *args: logged.append(message % args))
  best = actions.BestCheckpoint(lambda step: None, "mae",
                                tf.Variable(np.inf, dtype=tf.float64), "min")
  log = actions.ValidationLog(["loss", "mae"], best)
  for step, mae in ((10, 0.5), (20, 0.7)):
    outputs = {"loss": 2 * mae, "mae": mae, "examples": 40.0}
    best(step, outputs)
    log(step, outputs)
  assert logged == [
      "Validation at step 10: loss 1.0000 - mae 0.5000 (best mae).",
      "Validation at step 20: loss 1.4000 - mae 0.7000."]
  actions.ValidationLog(["loss"], best, verbose=0)(30, {"loss": 1.0})
  assert len(logged) == 2


def test_memory_probe_adds_peak_memory_and_traces():
  outputs = {}
  actions.MemoryProbe({"train": 1, "eval": 2})(5, outputs)
  assert outputs["traces"] == 3
  assert 10 < outputs["peak_memory_mb"] < 100_000
  assert memory.peak_resident_mb() > 0


def test_history_records_and_writes_files_and_curves(tmp_path):
  written = {}
  history = actions.History(
      {"train": [], "validation": []},
      lambda name, value: written.update({name: value}),
      str(tmp_path / "curves.png"),
      curves.panels_for(["loss", "accuracy", "mae"]), ("mae", "min"))
  history.record_train(3, {"loss": 0.9, "accuracy": 0.5, "seconds": 1.0,
                           "steps": 3, "learning_rate": 0.1,
                           "examples": 12.0, "mae": 0.4,
                           "loss/network": 1.0})
  assert written == {}  # files are written at evaluations
  history.record_eval(3, {"loss": 0.8, "accuracy": 0.6})
  # Every number is kept (a task's own metric, a member's loss) but the
  # loop's own timing.
  assert written["history.json"]["train"] == [
      (3, {"loss": 0.9, "accuracy": 0.5, "learning_rate": 0.1,
           "examples": 12.0, "mae": 0.4, "loss/network": 1.0})]
  assert written["history.json"]["validation"] == [(3, {"loss": 0.8,
                                                        "accuracy": 0.6})]
  assert os.path.getsize(tmp_path / "curves.png") > 10_000


def test_signal_preemption_saves_the_current_step_then_stops():
  saved = []
  preemption = actions.SignalPreemption(
      lambda step: saved.append(step) or f"ckpt-{step}",
      signals=(signal.SIGUSR1,))
  trainer = FakeTrainer()
  with pytest.raises(actions.TrainingInterrupted,
                     match="Stopped by SIGUSR1 at step 6; saved ckpt-6"):
    with preemption.watching():
      trainer.train(3)
      preemption(3)
      os.kill(os.getpid(), signal.SIGUSR1)  # arrives mid-loop
      trainer.train(3)
      preemption(6)
  assert saved == [6]
  assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # restored


def test_progress_bar_shows_the_run_and_summaries_take_numbers(capsys,
                                                               tmp_path):
  bar = actions.ProgressBar(20, 10)
  bar(14, {"loss": 0.5, "accuracy": 0.75, "examples_per_second": 99.0,
           "learning_rate": 0.01})
  shown = capsys.readouterr().out
  assert "14/20" in shown and "loss: 0.5" in shown and "ex/s: 99" in shown
  writer = tf.summary.create_file_writer(str(tmp_path))
  actions.Summaries(writer)(3, {"loss": 0.5, "mae": 2, "name": "text",
                                "flag": True})
  writer.flush()
  assert summary_scalars(str(tmp_path)) == {("loss", 3): 0.5,
                                            ("mae", 3): 2.0}

