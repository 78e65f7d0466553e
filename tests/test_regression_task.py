"""A task defined here, in research code, through every command.

``RegressionTask`` (a float label per text, squared-error loss, MAE, lower
is better) is this test module's own: the commands get it with
``--import=test_regression_task``, in fresh processes, and nothing in the
library knows it.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import EXIT_BOUND, run_script
import maskmodels as mm
from maskmodels.data import synthetic
from maskmodels.errors import InputError
from maskmodels import training
from maskmodels.training import curves

HERE = os.path.dirname(os.path.abspath(__file__))


@mm.register_task("test_regression")
class RegressionTask(mm.Task):
  """One float per text: squared error, and MAE (lower is better)."""

  labels = mm.LabelSpec("float32", pad=0.0)
  best_metric = "mae"
  best_mode = "min"
  metric_units = {"loss": "squared error", "mae": "absolute error"}

  def encode_labels(self, raw_labels, source):
    values = np.empty(len(raw_labels), np.float32)
    for i, value in enumerate(raw_labels):
      try:
        values[i] = float(value)
      except (TypeError, ValueError):
        raise InputError(f"Label {value!r} in {source} (example {i}) is not "
                         f"a number.") from None
    return values

  @property
  def output_size(self):
    return 1

  def compute_loss(self, labels, outputs, training):
    return tf.square(tf.cast(outputs.outputs, tf.float32)[:, 0] - labels)

  def build_metrics(self, training):
    return dict(super().build_metrics(training),
                mae=keras.metrics.MeanAbsoluteError(name="mae"))

  def update_metrics(self, metrics, labels, outputs, losses, loss_weights):
    super().update_metrics(metrics, labels, outputs, losses, loss_weights)
    metrics["mae"].update_state(labels[:, tf.newaxis],
                                tf.cast(outputs.outputs, tf.float32),
                                sample_weight=loss_weights)

  display = {"output": "prediction"}  # a prediction line: value<TAB>text

  def served_outputs(self, outputs):
    return {"prediction": tf.cast(outputs.outputs, tf.float32)[:, 0]}


def write_targets(path, count, seed):
  """Synthetic reviews with a float target: +1 or -1 by sentiment, plus
  noise."""
  texts, labels = synthetic.generate_reviews(count, seed=seed)
  rng = np.random.default_rng(seed)
  with open(path, "w") as f:
    for text, label in zip(texts, labels):
      target = 2.0 * label - 1.0 + float(rng.normal(scale=0.1))
      f.write(json.dumps({"text": text, "target": round(target, 4)}) + "\n")
  return str(path)


def test_encoding_a_non_number_names_the_example():
  with pytest.raises(InputError, match="Label 'high' in file.jsonl "
                     "\\(example 1\\) is not a number"):
    RegressionTask().encode_labels([0.5, "high"], "file.jsonl")


SETTINGS = dict(validation_fraction=0.2, vocab_size=400, max_len=64,
                embedding_dim=16, conv_filters=[16], gru_units=[8],
                batch_size=32, steps_per_loop=4, warmup_steps=2,
                learning_rate=0.01, checkpoint_every_steps=4)
TEXTS = ["A superb and moving film.", "", "Dull, boring and awful."]


def check_best_checkpoint_history_and_curves(model_dir):
  """The best checkpoint is the one of the lowest validation MAE, and
  history.json and the curves carry the task's own metric."""
  history = json.load(open(os.path.join(model_dir, "history.json")))
  maes = {step: values["mae"] for step, values in history["validation"]}
  assert len(maes) == 4 and len(set(maes.values())) == 4
  best_step = min(maes, key=maes.get)
  summary = json.load(open(os.path.join(model_dir, "summary.json")))
  assert summary["best_validation_mae"] == pytest.approx(maes[best_step])
  best = tf.train.latest_checkpoint(os.path.join(model_dir, "best"))
  assert best.endswith(f"ckpt-{best_step}")
  assert all("mae" in values for _, values in history["train"])
  panels = curves.panels_for(["loss", "mae"], RegressionTask.metric_units)
  figure = curves.draw(history, panels, "mae", "min")
  axes = {axis.get_title(): axis for axis in figure.axes if axis.get_title()}
  assert axes["Mae"].get_ylabel() == "absolute error"
  lines = {line.get_label(): line for line in axes["Mae"].get_lines()}
  np.testing.assert_allclose(
      lines["validation (per evaluation)"].get_ydata(), list(maes.values()))
  assert f"best validation mae {maes[best_step]:.4f}" in lines
  assert os.path.getsize(os.path.join(model_dir, "curves.png")) > 20_000


def check_served_predictions(model_dir, predictions):
  """``predictions`` (one float per text of ``TEXTS``) are what the
  trained model directory serves."""
  run = training.load_trained(model_dir)
  np.testing.assert_allclose(
      predictions, [row["prediction"] for row in run.server().predict(TEXTS)],
      atol=1e-4)


def test_a_research_task_trains_resumes_evaluates_exports_and_serves(
    tmp_path):
  """In-process: the run, its resume, evaluation and the SavedModel."""
  from maskmodels import export  # pylint: disable=import-outside-toplevel
  from maskmodels.commands import evaluate, predict  # pylint: disable=import-outside-toplevel
  data = write_targets(tmp_path / "targets.jsonl", 160, seed=1)
  model_dir = str(tmp_path / "run")
  config = training.ExperimentConfig.create(
      task="test_regression", data_format="jsonl", data_path=data,
      label_column="target", epochs=2, **SETTINGS)
  strategy = tf.distribute.get_strategy()
  training.train_and_evaluate(config, model_dir, strategy)
  summary = training.train_and_evaluate(config.replace(epochs=4), model_dir,
                                        strategy)
  assert "test_mae" not in summary  # JSONL: no test split
  check_best_checkpoint_history_and_curves(model_dir)

  examples = evaluate.examples_to_evaluate(
      training.ModelDirectory(model_dir).load_config(), "jsonl", data,
      label_column="target")
  metrics = training.evaluate(model_dir, examples)
  assert metrics["examples"] == 160 and metrics["mae"] < 2.0

  export_dir = export.export_saved_model(model_dir, str(tmp_path / "export"))
  serve, describe, _ = predict.server_and_kind(export_dir)
  assert describe(TEXTS[0], serve(TEXTS[:1], 1)[0]).endswith(
      f"\t{TEXTS[0]}")
  check_served_predictions(
      model_dir, [row["prediction"] for row in serve(TEXTS, 2)])


@pytest.mark.slow
def test_a_research_task_runs_through_every_command(tmp_path):
  """The same, through the commands in fresh processes (``--import``)."""
  data = write_targets(tmp_path / "targets.jsonl", 300, seed=1)
  model_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
  common = ["--import=test_regression_task", f"--model_dir={model_dir}"]
  train = [*common, "--task=test_regression", "--data_format=jsonl",
           f"--data_path={data}", "--label_column=target",
           *(f"--{name}={','.join(map(str, value))}" if isinstance(
               value, list) else f"--{name}={value}"
             for name, value in SETTINGS.items())]
  first = run_script("train.py", *train, "--epochs=2", cwd=HERE)
  assert first.returncode == 0, first.stderr[-3000:]
  resumed = run_script("train.py", *train, "--epochs=4", cwd=HERE)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resumed from" in resumed.stderr
  assert "held-out" not in resumed.stdout  # JSONL: no test split
  check_best_checkpoint_history_and_curves(model_dir)

  evaluated = run_script("evaluate.py", *common, "--data_format=jsonl",
                         f"--data_path={data}", "--label_column=target",
                         cwd=HERE)
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  metrics = json.loads(evaluated.stdout.splitlines()[-1])
  assert metrics["examples"] == 300 and metrics["mae"] < 2.0

  exported = run_script("export.py", *common, f"--export_dir={export_dir}",
                        cwd=HERE)
  assert exported.returncode == 0, exported.stderr[-3000:]
  predicted = run_script("predict.py", "--import=test_regression_task",
                         f"--model_dir={export_dir}", *TEXTS, cwd=HERE)
  assert predicted.returncode == 0, predicted.stderr[-3000:]
  rows = [line.split("\t") for line in predicted.stdout.splitlines()]
  assert [text for _, text in rows] == TEXTS
  check_served_predictions(model_dir, [float(value) for value, _ in rows])
  for result in (first, resumed, evaluated, exported, predicted):
    assert result.exit_seconds < EXIT_BOUND
