"""curves.png: titled, labelled panels drawn from the right series."""

import matplotlib
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


@pytest.mark.parametrize("metrics", [["loss", "accuracy"],
                                     ["loss", "mae", "rmse", "r2"]])
def test_every_label_fits_in_the_figure_beside_its_neighbours(metrics):
  """Fixed margins: titles, axis labels and tick labels (wide learning
  rates included) lie inside the figure, and each panel's left labels stay
  clear of the panel before it."""
  history = {"train": [(s, dict({m: 1000.0 / s for m in metrics},
                                learning_rate=1.234e-4 * s, examples=32))
                       for s in range(10, 2000, 10)],
             "validation": [(s, {m: 900.0 / s for m in metrics})
                            for s in range(200, 2000, 200)]}
  figure = curves.draw(history, curves.panels_for(metrics), "loss", "min")
  figure.canvas.draw()  # places the axis labels beside their ticks
  renderer = figure.canvas.get_renderer()
  inside = figure.bbox.padded(1)
  boxes = [axis.get_tightbbox(renderer) for axis in figure.axes
           if axis.get_title()]  # with their examples axes
  title, = [text for text in figure.findobj(matplotlib.text.Text)
            if text.get_text() == "Training curves"]
  boxes.append(title.get_window_extent(renderer))
  assert len(boxes) == len(metrics) + 2
  for box in boxes:
    assert (inside.x0 <= box.x0 and box.x1 <= inside.x1 and
            inside.y0 <= box.y0 and box.y1 <= inside.y1), box
  for before, box in zip(boxes[:-2], boxes[1:-1]):
    assert box.x0 > before.x1
  assert boxes[-1].y0 > max(box.y1 for box in boxes[:-1])
