"""``curves.png``: a run's metrics and learning rate, with matplotlib.

One titled panel per metric the task declares (loss first), then the
learning rate, against the training step (the examples trained so far on a
second axis at the top): training points after every loop of steps,
validation points at every evaluation, a legend, and the best checkpoint
marked. An ensemble's members' training losses share the loss panel under
their own names. Drawn headless (Agg) with fixed margins (a layout engine
measures every label first, which doubled the cost of a write) and written
atomically.
"""

import io

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot, ticker  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position

from maskmodels import atomic_files  # noqa: E402  pylint: disable=wrong-import-position

LEARNING_RATE = ("learning_rate", "Learning rate", "learning rate")
TRAIN_STYLE = dict(color="tab:blue", marker=".", markersize=3, linewidth=1,
                   label="train (per loop)")
VALIDATION_STYLE = dict(color="tab:red", marker="o", markersize=5,
                        linewidth=1.5, label="validation (per evaluation)")
MEMBER_COLORS = ("tab:olive", "tab:purple", "tab:brown", "tab:cyan")
PANEL_SIZE = (5.0, 4.6)  # inches
# Margins in inches: tick labels and axis label at the left of each panel;
# above it, its title, the examples axis and the figure's title.
LEFT, RIGHT, BOTTOM, TOP, GAP = 0.8, 0.15, 0.55, 1.05, 1.0


def panels_for(metrics, units=None):
  """``[(metric, title, unit)]``: one panel per metric name, then the
  learning rate. ``units`` maps names to axis labels (a task's
  ``metric_units``)."""
  units = units or {}
  return [(name, name.replace("_", " ").capitalize(), units.get(name, name))
          for name in metrics] + [LEARNING_RATE]


def series(history, split, metric):
  """``(steps, values)`` of ``metric`` in ``history[split]``."""
  points = [(step, values[metric]) for step, values in history.get(split, [])
            if metric in values and values[metric] is not None]
  return [p[0] for p in points], [float(p[1]) for p in points]


def best_point(history, metric, mode="max"):
  """``(step, value)`` of the best validation ``metric`` (highest for
  ``mode="max"``, lowest for ``"min"``), or None."""
  steps, values = series(history, "validation", metric)
  if not values:
    return None
  index = int(np.argmax(values) if mode == "max" else np.argmin(values))
  return steps[index], values[index]


def _examples_axis(axis, history):
  """A top axis in examples trained, from the training records."""
  steps, counts = series(history, "train", "examples")
  if len(steps) < 2:
    return
  cumulative = np.cumsum(counts)
  to_examples = lambda s: np.interp(s, steps, cumulative)  # noqa: E731
  to_steps = lambda e: np.interp(e, cumulative, steps)  # noqa: E731
  top = axis.secondary_xaxis("top", functions=(to_examples, to_steps))
  top.set_xlabel("examples trained")
  top.xaxis.set_major_locator(ticker.MaxNLocator(5))
  top.xaxis.set_major_formatter(ticker.FuncFormatter(
      lambda value, _: f"{value / 1000:g}k" if value >= 1000 else
      f"{value:g}"))


def draw(history, panels, best_metric="accuracy", mode="max",
         title="Training curves"):
  """The figure of ``history`` (``{"train": [(step, outputs)],
  "validation": [...]}``) with ``panels`` (:func:`panels_for`)."""
  width, height = PANEL_SIZE[0] * len(panels), PANEL_SIZE[1]
  axis_width = (width - LEFT - RIGHT - GAP * (len(panels) - 1)) / len(panels)
  figure, axes = pyplot.subplots(1, len(panels), figsize=(width, height),
                                 squeeze=False)
  figure.subplots_adjust(left=LEFT / width, right=1 - RIGHT / width,
                         bottom=BOTTOM / height, top=1 - TOP / height,
                         wspace=GAP / axis_width)
  best = best_point(history, best_metric, mode)
  members = sorted({name for _, values in history.get("train", [])
                    for name in values if name.startswith("loss/")})
  for axis, (metric, name, unit) in zip(axes[0], panels):
    for split, style in (("train", TRAIN_STYLE),
                         ("validation", VALIDATION_STYLE)):
      steps, values = series(history, split, metric)
      if steps:
        axis.plot(steps, values, **style)
    if metric == "loss":
      for member, color in zip(members, MEMBER_COLORS * len(members)):
        steps, values = series(history, "train", member)
        axis.plot(steps, values, color=color, linewidth=1, linestyle=":",
                  label=f"train, member {member[5:]}'s own loss")
    if best is not None:
      axis.axvline(best[0], color="tab:green", linestyle="--", linewidth=1,
                   label=f"best checkpoint (step {best[0]})")
      if metric == best_metric:
        axis.plot([best[0]], [best[1]], marker="*", markersize=14,
                  color="tab:green", linestyle="none",
                  label=f"best validation {best_metric} {best[1]:.4f}")
    axis.set_title(name)
    axis.set_xlabel("training step")
    axis.set_ylabel(unit)
    axis.grid(True, alpha=0.3)
    _examples_axis(axis, history)
    if axis.get_legend_handles_labels()[0]:
      axis.legend(loc="best", fontsize=8)
  figure.suptitle(title)
  return figure


def write_curves_png(path, history, panels, best_metric="accuracy",
                     mode="max", title="Training curves"):
  """Draws :func:`draw` and writes it to ``path`` as a PNG, atomically."""
  figure = draw(history, panels, best_metric, mode, title)
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=100)
  pyplot.close(figure)
  atomic_files.write_bytes(path, buffer.getvalue())
