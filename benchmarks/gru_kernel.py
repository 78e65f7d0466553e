"""The masked GRU's kernels side by side: the fused CPU kernel vs Keras's.

    python benchmarks/gru_kernel.py                      # layer shapes only
    python benchmarks/gru_kernel.py --data_path=aclImdb   # + the train step

Prints JSON lines: the CPU first; then, for each shape, the forward and
backward time of one bidirectional ``MaskedGRU`` call in a ``tf.function``
(``kernel="fused"``, this package's, and ``kernel="keras"``, Keras's
generic loop, which ``MaskedGRU`` ran before), on random right-padded
lengths (1 to the time axis), and on rows with no padding, where the fused
kernel's skipping of pad steps gains nothing; medians over alternating
rounds; with ``--data_path``, the whole training step of the throughput
benchmark's IMDb model with each kernel (bucketed batches: about 8% pad).
Shapes: the throughput benchmark's GRU (batch 64, 200 steps after its
pooling, 128 channels in, 64 units) and a tagger's (batch 32, 25 words,
128 channels, 128 units).
"""

import itertools
import json
import sys

from maskmodels import cli

cli.quiet_start()  # before TensorFlow loads

# pylint: disable=wrong-import-position
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import maskmodels as mm  # noqa: E402
from imdb_model import CLASSIFICATION, CustomLoop  # noqa: E402
import timing  # noqa: E402  (benchmarks/timing.py)
from machine import cpu_description  # noqa: E402  (benchmarks/machine.py)
import records  # noqa: E402  (benchmarks/records.py)

FLAGS = flags.FLAGS
flags.DEFINE_integer("rounds", 7, "Alternating rounds (medians reported).",
                     lower_bound=1)
flags.DEFINE_integer("calls", 8, "Calls per round.", lower_bound=1)
records.define_flag()
flags.DEFINE_string("data_path", None, "aclImdb folder: also time the whole "
                    "training step of the throughput benchmark's model.")
flags.DEFINE_integer("steps", 30, "Timed train steps per round.",
                     lower_bound=1)

KERNELS = ("keras", "fused")
SHAPES = {"throughput benchmark": (64, 200, 128, 64),
          "tagger": (32, 25, 128, 128)}
LENGTHS = ("random", "full")


def layer_step(kernel, lengths, batch, time_steps, channels, units):
  """A traced forward+backward of one bidirectional MaskedGRU;
  ``lengths``: ``"random"`` (1 to ``time_steps``) or ``"full"``."""
  keras.utils.set_random_seed(1)
  layer = mm.MaskedGRU(units, bidirectional=True, return_sequences=True,
                       kernel=kernel)
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(batch, time_steps, channels)),
                  tf.float32)
  lengths = (rng.integers(1, time_steps + 1, size=batch)
             if lengths == "random" else np.full(batch, time_steps))
  mask = tf.constant(np.arange(time_steps)[None] < lengths[:, None])
  layer(x, mask=mask)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      tape.watch(x)
      outputs, _ = layer(x, mask=mask)
      loss = tf.reduce_sum(outputs * outputs)
    return tape.gradient(loss, [x] + layer.trainable_variables)

  return lambda: [g.numpy() for g in step()]


def alternate(runners, calls):
  """Median milliseconds per call of each runner, in alternating rounds."""
  return timing.medians(timing.alternate(runners, FLAGS.rounds, calls))


def train_steps(data_path):
  """ms per training step of the throughput benchmark's model, each
  kernel."""
  # pylint: disable=import-outside-toplevel
  import tempfile
  from maskmodels import data
  examples = data.read_aclimdb(data_path, "train")
  order = np.random.default_rng(0).permutation(len(examples))[:6000]
  examples = examples.subset(order)
  examples = examples.with_labels(CLASSIFICATION.encode_labels(
      examples.labels, examples.source))
  path = tempfile.mkdtemp(prefix="maskmodels_bench_") + "/vocab.txt"
  data.write_vocabulary(data.learn_vocabulary(examples.texts, "word", 20000,
                                              verbose=0), path)
  featurizer = data.Featurizer(data.build_tokenizer("word", path))
  lengths = data.token_lengths(examples, featurizer.tokenizer, 400)
  config = data.PipelineConfig(400, 64, bucket_boundaries=(
      data.length_boundaries(lengths, 8)))
  runners = {}
  for kernel in KERNELS:
    loop = CustomLoop(featurizer.tokenizer.vocab_size, lambda ctx, start: (
        data.make_dataset(examples, featurizer, config, True, ctx, start)),
                      FLAGS.steps, False)
    for layer in loop.model._flatten_layers():  # pylint: disable=protected-access
      if isinstance(layer, mm.MaskedGRU):
        layer.kernel = kernel
    runners[kernel] = (lambda loop=loop: loop.run(FLAGS.steps))
  return {name: ms / FLAGS.steps for name, ms in alternate(runners, 1).items()}


def main(argv):
  del argv
  print(json.dumps(cpu_description()), flush=True)
  rows = []
  for (name, shape), lengths in itertools.product(SHAPES.items(), LENGTHS):
    medians = alternate({kernel: layer_step(kernel, lengths, *shape)
                         for kernel in KERNELS}, FLAGS.calls)
    rows += [dict(config=f"{name} {list(shape)}, {lengths} lengths, "
                  f"{kernel} kernel", metric="forward+backward ms",
                  value=medians[kernel],
                  ratio=medians["keras"] / medians[kernel])
             for kernel in KERNELS]
    print(json.dumps({
        "shape": name, "batch_time_channels_units": shape,
        "lengths": lengths,
        "forward_backward_ms": {k: round(v, 1) for k, v in medians.items()},
        "per_step_us": {k: round(1000 * v / shape[1], 1)
                        for k, v in medians.items()},
        "fused_speedup": round(medians["keras"] / medians["fused"], 2)}),
          flush=True)
  if FLAGS.data_path:
    medians = train_steps(FLAGS.data_path)
    print(json.dumps({
        "train_step_ms": {k: round(v, 1) for k, v in medians.items()},
        "fused_speedup": round(medians["keras"] / medians["fused"], 2)}),
          flush=True)
    rows += [dict(config=f"whole training step, {kernel} kernel",
                  metric="ms per step", value=medians[kernel],
                  ratio=medians["keras"] / medians[kernel])
             for kernel in KERNELS]
  records.append_run("gru_kernel", rows, sys.argv, FLAGS.records)


if __name__ == "__main__":
  app.run(main)
