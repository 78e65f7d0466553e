"""Training throughput, side by side in one process, as JSON lines.

    python benchmarks/training_throughput.py --data_dir=/path/to/aclImdb

Measures, on the same model, data and batch size, in alternating rounds:
the maskmodels custom loop vs. Keras ``model.fit`` on the same model; length
bucketing on vs. off; ``steps_per_loop`` 1 vs. 50; XLA on vs. off;
``mixed_bfloat16`` vs. float32; and the textbook ``Embedding(1000, 128,
mask_zero=True) -> GRU(128)`` pipeline (batch 32, full-length reviews padded
per batch) trained with ``fit``. Each line is
one measurement; the last line summarizes medians, ratios and peak resident
memory.
"""

import json
import os
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from maskmodels import cli, data, training
from maskmodels.training import memory
from maskmodels.models import SequenceClassifier

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "aclImdb folder (default: embedded "
                    "data).")
flags.DEFINE_integer("examples", 6000, "Training examples used.",
                     lower_bound=100)
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
flags.DEFINE_integer("max_len", 400, "Tokens kept per review.", lower_bound=1)
flags.DEFINE_integer("steps", 50, "Timed steps per measurement.",
                     lower_bound=1)
flags.DEFINE_integer("rounds", 2, "Alternating rounds.", lower_bound=1)


def make_model(vocab_size):
  return SequenceClassifier(
      vocab_size, 2, 128, encoder_config=dict(
          conv_filters=[128], kernel_size=5, pool_size=2,
          normalization="layer", gru_units=[64], bidirectional=True),
      pooling="max", dropout=0.3)


class CustomLoop:
  """The maskmodels Trainer on the default strategy."""

  def __init__(self, vocab_size, dataset, steps_per_loop, jit_compile,
               precision="float32"):
    # Layers keep the dtype policy that is global when they are built.
    training.set_precision(precision)
    self.model = make_model(vocab_size)
    self.model(tf.zeros([1, 1], tf.int32))
    training.set_precision("float32")
    optimizer = training.make_optimizer("adam", 1e-3)
    optimizer.build(self.model.trainable_variables)
    self.trainer = training.Trainer(self.model, optimizer,
                                    tf.distribute.get_strategy(),
                                    clip_norm=1.0, jit_compile=jit_compile)
    self.iterator = iter(tf.distribute.get_strategy()
                         .distribute_datasets_from_function(
                             lambda ctx: dataset.repeat()))
    self.steps_per_loop = steps_per_loop

  def run(self, steps):
    for _ in range(steps // self.steps_per_loop):
      self.trainer.train(self.iterator, self.steps_per_loop)


class KerasFit:
  """``model.compile`` + ``model.fit`` on the same data."""

  def __init__(self, model, dataset, steps_per_execution, learning_rate=1e-3,
               clipnorm=1.0):
    self.model = model
    self.model.compile(
        keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"], steps_per_execution=steps_per_execution)
    self.dataset = dataset.repeat()

  def run(self, steps):
    self.model.fit(self.dataset, steps_per_epoch=steps, epochs=1, verbose=0)


def textbook_model():
  return keras.Sequential([keras.layers.Embedding(1000, 128, mask_zero=True),
                           keras.layers.GRU(128),
                           keras.layers.Dense(2)])


def measure(name, runner, steps, batch_size):
  start = time.perf_counter()
  runner.run(steps)
  seconds = time.perf_counter() - start
  result = {"config": name, "steps": steps,
            "examples_per_second": round(steps * batch_size / seconds, 1),
            "peak_rss_mb": round(memory.peak_resident_mb())}
  print(json.dumps(result), flush=True)
  return result["examples_per_second"]


def main(argv):
  del argv
  cli.quiet_tensorflow()
  keras.utils.set_random_seed(0)
  if FLAGS.data_dir:
    examples = data.read_aclimdb(FLAGS.data_dir, "train")
  else:
    examples = data.read_default("train")
  order = np.random.default_rng(0).permutation(len(examples))[:FLAGS.examples]
  examples = examples.subset(order)
  work_dir = tempfile.mkdtemp(prefix="maskmodels_bench_")
  vocab = data.learn_vocabulary(examples.texts, "word", 20000)
  data.write_vocabulary(vocab, os.path.join(work_dir, "vocab.txt"))
  tokenizer = data.build_tokenizer("word", os.path.join(work_dir, "vocab.txt"))
  lengths = data.token_lengths(examples.texts, tokenizer, FLAGS.max_len)
  edges = data.length_boundaries(lengths, 8)
  batch = FLAGS.batch_size

  def dataset(bucketed, with_weights=True, batch_size=batch, max_len=None):
    config = data.PipelineConfig(max_len or FLAGS.max_len, batch_size,
                                 bucket_boundaries=edges if bucketed else None)
    ds = data.make_dataset(examples, tokenizer, config, training=True)
    return ds if with_weights else ds.map(lambda i, l, w: (i, l))

  textbook_tokenizer_vocab = vocab[:999]  # + 1 OOV bucket = 1000 ids
  data.write_vocabulary(textbook_tokenizer_vocab,
                        os.path.join(work_dir, "vocab1000.txt"))
  textbook_tokenizer = data.build_tokenizer(
      "word", os.path.join(work_dir, "vocab1000.txt"), num_oov_buckets=1)
  textbook_data = data.make_dataset(
      examples, textbook_tokenizer, data.PipelineConfig(100000, 32),
      training=True).map(lambda i, l, w: (i, l))
  logging.info("Mean tokens per review: %.1f", lengths.mean())

  runners = {
      "custom_loop bucketed steps_per_loop=50": CustomLoop(
          tokenizer.vocab_size, dataset(True), 50, False),
      "keras_fit bucketed steps_per_execution=50": KerasFit(
          make_model(tokenizer.vocab_size), dataset(True, False), 50),
      "custom_loop bucketed steps_per_loop=1": CustomLoop(
          tokenizer.vocab_size, dataset(True), 1, False),
      "custom_loop unbucketed steps_per_loop=50": CustomLoop(
          tokenizer.vocab_size, dataset(False), 50, False),
      "custom_loop bucketed steps_per_loop=50 xla": CustomLoop(
          tokenizer.vocab_size, dataset(True), 50, True),
      "custom_loop bucketed steps_per_loop=50 mixed_bfloat16": CustomLoop(
          tokenizer.vocab_size, dataset(True), 50, False, "mixed_bfloat16"),
  }
  textbook = ("textbook Embedding(1000)->GRU(128) fit batch=32 full length",
              KerasFit(textbook_model(), textbook_data, 1))
  for name, runner in list(runners.items()) + [textbook]:  # warm up, trace
    runner.run(50)
  speeds = {name: [] for name in list(runners) + [textbook[0]]}
  for _ in range(FLAGS.rounds):
    for name, runner in runners.items():
      speeds[name].append(measure(name, runner, FLAGS.steps, batch))
    speeds[textbook[0]].append(measure(textbook[0], textbook[1],
                                       max(FLAGS.steps // 2, 1), 32))
  median = {name: statistics.median(v) for name, v in speeds.items()}
  best = max(median.values())
  print(json.dumps({
      "summary": median,
      "custom_loop_over_fit": round(
          median["custom_loop bucketed steps_per_loop=50"] /
          median["keras_fit bucketed steps_per_execution=50"], 3),
      "bucketing_speedup": round(
          median["custom_loop bucketed steps_per_loop=50"] /
          median["custom_loop unbucketed steps_per_loop=50"], 3),
      "steps_per_loop_50_over_1": round(
          median["custom_loop bucketed steps_per_loop=50"] /
          median["custom_loop bucketed steps_per_loop=1"], 3),
      "xla_speedup": round(
          median["custom_loop bucketed steps_per_loop=50 xla"] /
          median["custom_loop bucketed steps_per_loop=50"], 3),
      "mixed_bfloat16_speedup": round(
          median["custom_loop bucketed steps_per_loop=50 mixed_bfloat16"] /
          median["custom_loop bucketed steps_per_loop=50"], 3),
      "best": max(median, key=median.get),
      "best_over_textbook": round(best / median[textbook[0]], 2),
      "peak_rss_mb": round(memory.peak_resident_mb()),
      "mean_tokens": round(float(lengths.mean()), 1)}))


if __name__ == "__main__":
  app.run(main)
