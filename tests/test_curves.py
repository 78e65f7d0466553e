"""curves.png: titled, labelled panels drawn from the right series."""

import numpy as np
import pytest

from maskmodels.training import curves

HISTORY = {
    "train": [(50, {"loss": 0.7, "accuracy": 0.5, "learning_rate": 1e-3,
                    "examples": 3200.0}),
              (100, {"loss": 0.5, "accuracy": 0.7, "learning_rate": 2e-3,
                     "examples": 3200.0}),
              (150, {"loss": 0.3, "accuracy": 0.9, "learning_rate": 1e-3,
                     "examples": 3200.0})],
    "validation": [(100, {"loss": 0.45, "accuracy": 0.8}),
                   (150, {"loss": 0.4, "accuracy": 0.78})]}


PANELS = curves.panels_for(["loss", "accuracy"],
                           {"loss": "cross-entropy (nats)"})


def test_series_and_best_point_come_from_the_history():
  assert curves.series(HISTORY, "train", "loss") == ([50, 100, 150],
                                                     [0.7, 0.5, 0.3])
  assert curves.series(HISTORY, "validation", "learning_rate") == ([], [])
  assert curves.best_point(HISTORY, "accuracy") == (100, 0.8)
  assert curves.best_point(HISTORY, "loss", "min") == (150, 0.4)
  assert curves.best_point({"train": []}, "accuracy") is None


def test_panels_are_the_task_s_metrics_then_the_learning_rate():
  assert curves.panels_for(["loss", "mae"], {"mae": "absolute error"}) == [
      ("loss", "Loss", "loss"), ("mae", "Mae", "absolute error"),
      ("learning_rate", "Learning rate", "learning rate")]
  history = {"train": [(10, {"loss": 2.0, "mae": 1.0, "loss/network": 3.0,
                             "loss/naive_bayes": 1.5})],
             "validation": [(10, {"loss": 1.8, "mae": 0.9})]}
  figure = curves.draw(history, curves.panels_for(["loss", "mae"]), "mae",
                       "min")
  panels = {axis.get_title(): axis for axis in figure.axes
            if axis.get_title()}
  assert set(panels) == {"Loss", "Mae", "Learning rate"}
  labels = [line.get_label() for line in panels["Loss"].get_lines()]
  assert "train, member network's own loss" in labels
  assert "train, member naive_bayes's own loss" in labels
  assert "best validation mae 0.9000" in [
      line.get_label() for line in panels["Mae"].get_lines()]


def test_each_panel_is_titled_labelled_and_plots_its_series():
  figure = curves.draw(HISTORY, PANELS)
  panels = {axis.get_title(): axis for axis in figure.axes
            if axis.get_title()}
  assert set(panels) == {"Loss", "Accuracy", "Learning rate"}
  assert panels["Loss"].get_ylabel() == "cross-entropy (nats)"
  for title, metric in (("Loss", "loss"), ("Accuracy", "accuracy")):
    axis = panels[title]
    assert axis.get_xlabel() == "training step" and axis.get_ylabel()
    lines = {line.get_label(): line for line in axis.get_lines()}
    train = lines["train (per loop)"]
    np.testing.assert_array_equal(train.get_xdata(), [50, 100, 150])
    np.testing.assert_array_equal(
        train.get_ydata(), curves.series(HISTORY, "train", metric)[1])
    validation = lines["validation (per evaluation)"]
    np.testing.assert_array_equal(validation.get_xdata(), [100, 150])
    assert "best checkpoint (step 100)" in lines
    legend = [t.get_text() for t in axis.get_legend().get_texts()]
    assert "train (per loop)" in legend
  assert "best validation accuracy 0.8000" in [
      line.get_label() for line in panels["Accuracy"].get_lines()]


def test_png_is_written_whole(tmp_path):
  path = tmp_path / "curves.png"
  curves.write_curves_png(str(path), HISTORY, PANELS)
  raw = path.read_bytes()
  assert raw[:8] == b"\x89PNG\r\n\x1a\n"
  width, height = (int.from_bytes(raw[16:20], "big"),
                   int.from_bytes(raw[20:24], "big"))
  assert (width, height) == (1500, 460)
  assert 20_000 < len(raw) < 1_000_000
  assert not [p for p in tmp_path.iterdir() if p.name != "curves.png"]
