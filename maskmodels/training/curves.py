"""A PNG of training curves, drawn with NumPy and encoded by TensorFlow."""

import numpy as np
import tensorflow as tf

_COLORS = {"train": (31, 119, 180), "validation": (214, 39, 40)}


def _panel(series, height=240, width=360, margin=12):
  """One panel: each series a polyline, scaled to the panel, on a grid."""
  image = np.full((height, width, 3), 255, np.uint8)
  image[margin:height - margin:max((height - 2 * margin) // 4, 1),
        margin:width - margin] = 225
  image[margin:height - margin, margin] = 0
  image[height - margin, margin:width - margin] = 0
  values = [v for points in series.values() for _, v in points
            if np.isfinite(v)]
  steps = [s for points in series.values() for s, _ in points]
  if not values:
    return image
  low, high = min(values), max(values)
  high = high if high > low else low + 1.0
  last = max(steps) or 1

  def to_pixel(step, value):
    x = margin + (width - 2 * margin - 1) * step / last
    y = height - margin - (height - 2 * margin - 1) * (value - low) / (
        high - low)
    return x, y

  for name, points in series.items():
    color = _COLORS.get(name, (0, 0, 0))
    pixels = [to_pixel(s, v) for s, v in points if np.isfinite(v)]
    for (x0, y0), (x1, y1) in zip(pixels, pixels[1:] or pixels):
      count = int(max(abs(x1 - x0), abs(y1 - y0))) + 2
      for x, y in zip(np.linspace(x0, x1, count), np.linspace(y0, y1, count)):
        image[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = color
  return image


def write_curves_png(path, history):
  """Writes loss (left) and accuracy (right) against step.

  Args:
    path: output ``.png`` path.
    history: ``{"train": [(step, {"loss": .., "accuracy": ..}), ...],
      "validation": [...]}``; train is blue, validation red.
  """
  panels = []
  for metric in ("loss", "accuracy"):
    series = {name: [(step, values[metric]) for step, values in points
                     if metric in values]
              for name, points in history.items()}
    panels.append(_panel(series))
  image = np.concatenate(panels, axis=1)
  tf.io.write_file(path, tf.io.encode_png(image))
