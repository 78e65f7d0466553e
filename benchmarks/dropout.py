"""Dropout's cost, as JSON lines.

    python benchmarks/dropout.py
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/dropout.py

Prints the CPU first; then milliseconds per call (medians over alternating
rounds) of a training-time dropout on the throughput benchmark's
convolution output (batch 64, 240 steps, 128 channels, rate 0.3):
TensorFlow's ``tf.nn.experimental.stateless_dropout`` (a float drawn per
value) and maskmodels' ``stateless_dropout`` (16 bits per value); then the
fraction maskmodels' dropped and its output's mean on a tensor of ones.
"""

import functools
import json
import sys

from maskmodels import cli

cli.quiet_start()  # before TensorFlow loads

# pylint: disable=wrong-import-position
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from maskmodels.layers import dropout  # noqa: E402

import timing  # noqa: E402  (benchmarks/timing.py)
from machine import cpu_description  # noqa: E402  (benchmarks/machine.py)
import records  # noqa: E402  (benchmarks/records.py)

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
flags.DEFINE_integer("steps", 240, "Time steps.", lower_bound=1)
flags.DEFINE_integer("channels", 128, "Channels.", lower_bound=1)
flags.DEFINE_float("rate", 0.3, "Dropout rate.", lower_bound=0.0,
                   upper_bound=0.99)
records.define_flag()
flags.DEFINE_integer("rounds", 7, "Alternating rounds (medians reported).",
                     lower_bound=1)
flags.DEFINE_integer("calls", 20, "Calls per round.", lower_bound=1)


def main(argv):
  del argv
  print(json.dumps(cpu_description()), flush=True)
  rate = FLAGS.rate
  x = tf.random.stateless_normal([FLAGS.batch_size, FLAGS.steps, FLAGS.channels],
                                 [0, 1])
  seed = tf.constant([3, 4])
  functions = {
      "tensorflow_stateless_dropout": tf.function(
          lambda x, s: tf.nn.experimental.stateless_dropout(x, rate, s)),
      "maskmodels_stateless_dropout": tf.function(
          lambda x, s: dropout.stateless_dropout(x, rate, s)),
  }
  times = timing.alternate(
      {name: functools.partial(fn, x, seed) for name, fn in functions.items()},
      FLAGS.rounds, FLAGS.calls)
  medians = {name: round(ms, 2) for name, ms in timing.medians(times).items()}
  for name, ms in medians.items():
    print(json.dumps({"op": name, "ms": ms,
                      "rounds": [round(t, 2) for t in times[name]]}))
  records.append_run("dropout", [
      dict(config=name, metric="ms per call", value=ms, rounds=times[name])
      for name, ms in medians.items()], sys.argv, FLAGS.records)
  ones = dropout.stateless_dropout(tf.ones([1000, 1000]), rate, seed)
  print(json.dumps({
      "tensorflow_over_maskmodels": round(
          medians["tensorflow_stateless_dropout"]
          / medians["maskmodels_stateless_dropout"], 3),
      "dropped": float(tf.reduce_mean(tf.cast(ones == 0, tf.float32))),
      "mean": float(tf.reduce_mean(ones))}))


if __name__ == "__main__":
  app.run(main)
