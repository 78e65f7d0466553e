"""The convolution block's gradient, by part, as JSON lines.

    python benchmarks/conv_gradient.py
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/conv_gradient.py

Prints the CPU first; then milliseconds per call (medians over alternating
rounds) of the throughput benchmark's convolution (batch 64, 240 steps,
128 channels in and out, kernel 5): the forward pass, the gradient
TensorFlow computes (its two oneDNN backward kernels: input and filter,
separately and together), and, for comparison, the filter gradient as one
matrix product per kernel tap (``x[:, j:j+T]^T · dy``), which
``MaskedConv1D`` computes where oneDNN runs below AVX-512.
"""

import functools
import json
import sys

from maskmodels import cli

cli.quiet_start()  # before TensorFlow loads

# pylint: disable=wrong-import-position
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from maskmodels.layers import conv  # noqa: E402

import timing  # noqa: E402  (benchmarks/timing.py)
from machine import cpu_description  # noqa: E402  (benchmarks/machine.py)
import records  # noqa: E402  (benchmarks/records.py)

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
flags.DEFINE_integer("steps", 240, "Time steps.", lower_bound=1)
flags.DEFINE_integer("channels", 128, "Channels in and out.", lower_bound=1)
flags.DEFINE_integer("kernel_size", 5, "Kernel size.", lower_bound=1)
records.define_flag()
flags.DEFINE_integer("rounds", 5, "Alternating rounds (medians reported).",
                     lower_bound=1)
flags.DEFINE_integer("calls", 10, "Calls per round.", lower_bound=1)


def parts(channels, kernel_size):
  """``{name: traced function of (x, dy)}``: x ``[batch, time + k - 1,
  channels]`` (a "valid" convolution's input), dy ``[batch, time,
  channels]``."""
  kernel = tf.random.stateless_normal([kernel_size, channels, channels],
                                      [0, 3]) * 0.05
  x4 = lambda x: x[:, tf.newaxis]  # conv1d runs conv2d over [b, 1, t, c]

  def forward(x, dy):
    del dy
    return tf.nn.conv1d(x, kernel, 1, "VALID")

  def input_gradient(x, dy):  # the kernel both gradients run
    return conv.input_gradient(tf.shape(x), kernel, dy)

  def filter_gradient(x, dy):
    return tf.compat.v1.nn.conv2d_backprop_filter(
        x4(x), tf.shape(kernel[tf.newaxis]), x4(dy), [1, 1, 1, 1], "VALID")

  def gradient(x, dy):
    with tf.GradientTape() as tape:
      tape.watch([x, kernel])
      y = tf.nn.conv1d(x, kernel, 1, "VALID")
    return tape.gradient(y, [x, kernel], output_gradients=dy)

  def filter_gradient_per_tap(x, dy):  # what runs below AVX-512
    return conv.filter_gradient_per_tap(x, dy, kernel_size)

  return {fn.__name__: tf.function(fn, autograph=False) for fn in (
      forward, input_gradient, filter_gradient, gradient,
      filter_gradient_per_tap)}


def main(argv):
  del argv
  print(json.dumps(cpu_description()), flush=True)
  k = FLAGS.kernel_size
  x = tf.random.stateless_normal(
      [FLAGS.batch_size, FLAGS.steps + k - 1, FLAGS.channels], [0, 1])
  dy = tf.random.stateless_normal(
      [FLAGS.batch_size, FLAGS.steps, FLAGS.channels], [0, 2])
  functions = parts(FLAGS.channels, k)
  tf_filter = functions["filter_gradient"](x, dy)[0]
  per_tap = functions["filter_gradient_per_tap"](x, dy)
  scale = float(tf.reduce_max(tf.abs(tf_filter)))
  difference = float(tf.reduce_max(tf.abs(tf_filter - per_tap))) / scale
  times = timing.alternate(
      {name: functools.partial(fn, x, dy) for name, fn in functions.items()},
      FLAGS.rounds, FLAGS.calls)
  medians = {name: round(ms, 2) for name, ms in timing.medians(times).items()}
  for name, ms in medians.items():
    print(json.dumps({"part": name, "ms": ms,
                      "rounds": [round(t, 2) for t in times[name]]}))
  records.append_run("conv_gradient", [
      dict(config=name, metric="ms per call", value=ms, rounds=times[name])
      for name, ms in medians.items()], sys.argv, FLAGS.records)
  print(json.dumps({
      "filter_gradient_over_per_tap": round(
          medians["filter_gradient"] / medians["filter_gradient_per_tap"],
          3),
      "gradient_over_forward": round(medians["gradient"] /
                                     medians["forward"], 3),
      "per_tap_max_relative_difference": difference}))


if __name__ == "__main__":
  app.run(main)
