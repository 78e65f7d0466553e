"""--early_stopping: Keras's semantics, the best weights served, a resume
that goes on counting, and the budget a run chooses and says."""

import json
import os
import shutil

import pytest
import tensorflow as tf

from helpers import tiny_config, write_jsonl
from maskmodels import training
from maskmodels.training import actions
from maskmodels.training.prepare import training_budget

DEFAULT = tf.distribute.get_strategy()


def _stopping(mode="max", patience=3, min_delta=0.0):
  best = tf.Variable(float("-inf") if mode == "max" else float("inf"),
                     dtype=tf.float64)
  wait = tf.Variable(0, dtype=tf.int64)
  return actions.EarlyStopping("metric", mode, patience, min_delta, best,
                               wait), best, wait


def test_the_patience_counts_validations_without_an_improvement():
  """As Keras: an improvement beats the reference by more than min_delta
  and becomes it; a NaN is none."""
  stop, best, wait = _stopping("max", patience=3, min_delta=0.02)
  waits = []
  for step, value in enumerate([0.5, 0.6, 0.61, float("nan"), 0.63, 0.6], 1):
    outputs = {"metric": value}
    stop(step, outputs)
    waits.append(outputs["early_stopping_wait"])
    if step < 6:
      assert not stop.should_stop()
  assert waits == [0, 0, 1, 2, 0, 1]
  assert float(best.numpy()) == pytest.approx(0.63)
  for value in (0.62, 0.64):  # not by more than 0.02 either
    stop(7, {"metric": value})
  assert stop.should_stop() and int(wait.numpy()) == 3
  # A resumed run's action reads the checkpoint's variables.
  again = actions.EarlyStopping("metric", "max", 3, 0.02, best, wait)
  assert again.should_stop()
  low, _, _ = _stopping("min", patience=1)
  low(1, {"metric": 2.0})
  low(2, {"metric": 1.0})
  assert not low.should_stop()
  low(3, {"metric": 1.5})
  assert low.should_stop()


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory):
  return write_jsonl(tmp_path_factory.mktemp("data") / "reviews.jsonl", 200,
                     seed=7)


def _config(jsonl, **overrides):
  settings = dict(early_stopping=True, patience=2, monitor="loss",
                  eval_every_steps=2, train_steps=40, steps_per_loop=2,
                  checkpoint_every_steps=2, learning_rate=0.03,
                  warmup_steps=1, dropout=0.0)
  settings.update(overrides)
  return tiny_config(jsonl, **settings)


@pytest.fixture(scope="module")
def stopped(jsonl, tmp_path_factory):
  """A run straight through to its early stop."""
  model_dir = str(tmp_path_factory.mktemp("stopped") / "run")
  return model_dir, training.train_and_evaluate(_config(jsonl), model_dir,
                                                DEFAULT)


def test_a_run_stops_when_validation_stops_improving_and_serves_the_best(
    jsonl, stopped, tmp_path):
  model_dir = str(tmp_path / "run")
  shutil.copytree(stopped[0], model_dir)
  summary = stopped[1]
  assert summary["stopped_early"] and summary["steps"] < 40
  history = json.load(open(os.path.join(model_dir, "history.json")))
  validations = history["validation"]
  waits = [entry["early_stopping_wait"] for _, entry in validations]
  assert waits[-2:] == [1, 2] and validations[-1][0] == summary["steps"]
  losses = [entry["loss"] for _, entry in validations]
  best_step = validations[losses.index(min(losses))][0]
  assert summary["best_validation_loss"] == pytest.approx(min(losses))
  # The weights that serve (and were tested) are the best validation's.
  directory = training.ModelDirectory(model_dir)
  assert directory.best_checkpoint().endswith(f"-{best_step}")
  config = directory.load_config()
  examples = training.read_splits(config.data, config.train.seed).validation
  metrics = training.evaluate(model_dir, examples, verbose=0)
  assert metrics["loss"] == pytest.approx(min(losses), rel=1e-5)
  # A rerun of a stopped run has nothing left to do.
  again = training.train_and_evaluate(_config(jsonl), model_dir, DEFAULT)
  assert again["steps"] == summary["steps"] and again["stopped_early"]


def test_a_resumed_run_goes_on_counting_its_patience(jsonl, stopped, tmp_path,
                                                    monkeypatch):
  """Interrupted mid-patience, then resumed: the same validations, counts
  and stop as a run straight through (the count is in the checkpoint)."""
  straight, whole = stopped
  want = [(step, entry["early_stopping_wait"]) for step, entry in json.load(
      open(os.path.join(straight, "history.json")))["validation"]]
  # Interrupted after the first validation that spent some patience (a
  # loop of 2 steps is a validation and a checkpoint).
  loops = next(i for i, (_, wait) in enumerate(want) if wait) + 1
  original, calls = training.Trainer.train, []

  def train_then_stop(self, steps):
    calls.append(steps)
    if len(calls) > loops:
      raise KeyboardInterrupt("simulated interruption")
    return original(self, steps)

  resumed = str(tmp_path / "resumed")
  monkeypatch.setattr(training.Trainer, "train", train_then_stop)
  with pytest.raises(KeyboardInterrupt):
    training.train_and_evaluate(_config(jsonl), resumed, DEFAULT)
  monkeypatch.setattr(training.Trainer, "train", original)
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(resumed))
  assert reader.get_tensor("stopping_wait/.ATTRIBUTES/VARIABLE_VALUE") >= 1
  summary = training.train_and_evaluate(_config(jsonl), resumed, DEFAULT)
  assert summary["steps"] == whole["steps"] and summary["stopped_early"]
  got = [(step, entry["early_stopping_wait"]) for step, entry in json.load(
      open(os.path.join(resumed, "history.json")))["validation"]]
  assert got == want


def test_a_run_says_what_it_trains_for_and_why(jsonl, tmp_path):
  """--train_steps, else --epochs passes, else the input kind's budget:
  enough passes for a few dozen series, few for a large corpus."""
  kind = training.builders.input_kind_of(training.ExperimentConfig.create(
      ).replace(inputs="frames"))
  train = training.ExperimentConfig.create().train
  assert training_budget(
      train.__class__(train_steps=7), kind, 5, 40) == (7, "--train_steps=7")
  assert training_budget(
      train.__class__(epochs=2), kind, 5, 40) == (10, "--epochs=2 of 5 "
                                                  "steps")
  steps, why = kind.budget(5, 40)
  assert training_budget(train, kind, 5, 40) == (
      steps, f"{why} (series: their default)")
  # Series: 100 passes of a 40-series problem, 3 of a 25,000-series one,
  # about 3,000 steps between.
  assert steps == 500 and why.startswith("100 passes")
  assert kind.budget(782, 25000)[0] == 3 * 782
  assert kind.budget(60, 1900)[0] == 50 * 60
  config = tiny_config(jsonl, train_steps=None, epochs=None)
  run = training.prepare(config, training.builders.task_of(config),
                         training.ModelDirectory(str(tmp_path / "a")))
  assert run.total_steps == 3 * run.steps_per_epoch
  assert run.budget == "3 passes over the training data (texts: their " \
      "default)"
  assert not (tmp_path / "a").exists()  # preparing writes nothing
