"""Training throughput, side by side in one process, as JSON lines.

    python benchmarks/training_throughput.py --data_path=/path/to/aclImdb

The first line names the CPU and its vector extensions. Then, on the same
model, data and batch size, in alternating rounds: the maskmodels custom
loop vs. Keras ``model.fit`` on the same model; token-budget batches vs.
fixed batches; length bucketing on vs. off; ``steps_per_loop`` 1 vs. 50; XLA
on vs. off; ``mixed_bfloat16`` vs. float32; and the textbook
``Embedding(1000, 128, mask_zero=True) -> GRU(128)`` pipeline (batch 32,
full-length reviews padded per batch) trained with ``fit``. Each line is one
measurement (examples/s over the timed steps, after warm-up); the last line
summarizes medians, ratios, the cross-replica reductions a training step
holds (traced on 2 replicas), the embedding-gradient conversion cost and
peak resident memory.
"""

import json
import os
import statistics
import sys
import tempfile
import time

from maskmodels import cli

cli.quiet_start()  # before TensorFlow loads

# pylint: disable=wrong-import-position
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from maskmodels import data, testing, training  # noqa: E402
from maskmodels.training import memory, optimization, trainer  # noqa: E402

import maskmodels as mm  # noqa: E402
from imdb_model import (CLASSIFICATION, CustomLoop, Logits,  # noqa: E402
                        make_model)
from machine import cpu_description  # noqa: E402  (benchmarks/machine.py)
import records  # noqa: E402  (benchmarks/records.py)

training.split_cpu(2)  # before any op: a 2-replica strategy for counting
cli.absorb_onednn_notice()

FLAGS = flags.FLAGS
flags.DEFINE_string("data_path", None, "aclImdb folder (default: embedded "
                    "data).")
records.define_flag()
flags.DEFINE_integer("examples", 6000, "Training examples used.",
                     lower_bound=100)
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=2)
flags.DEFINE_integer("max_len", 400, "Tokens kept per review.", lower_bound=1)
flags.DEFINE_integer("steps", 50, "Timed steps per measurement.",
                     lower_bound=1)
flags.DEFINE_integer("rounds", 2, "Alternating rounds.", lower_bound=1)


class KerasFit:
  """``model.compile`` + ``model.fit`` on the same data."""

  def __init__(self, model, dataset, steps_per_execution, batch_size):
    self.model = model
    self.model.compile(
        keras.optimizers.Adam(1e-3, global_clipnorm=1.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"], steps_per_execution=steps_per_execution)
    self.dataset = dataset.repeat()
    self.batch_size = batch_size

  def run(self, steps):
    self.model.fit(self.dataset, steps_per_epoch=steps, epochs=1, verbose=0,
                   shuffle=False)  # the dataset is shuffled already
    return steps * self.batch_size


def textbook_model():
  return keras.Sequential([keras.layers.Embedding(1000, 128, mask_zero=True),
                           keras.layers.GRU(128),
                           keras.layers.Dense(2)])


def measure(name, runner, steps):
  start = time.perf_counter()
  examples = runner.run(steps)
  if isinstance(examples, dict):  # the custom loop's counts
    examples = examples["examples"]
  seconds = time.perf_counter() - start
  result = {"config": name, "steps": steps, "examples": int(examples),
            "examples_per_second": round(examples / seconds, 1),
            "peak_rss_mb": round(memory.peak_resident_mb())}
  print(json.dumps(result), flush=True)
  return result["examples_per_second"]


def embedding_gradient_ms(ids, table=30001, width=200, repeats=20):
  """Milliseconds to make a dense gradient of an embedding lookup of
  ``ids`` (real token ids, repeats and all): converting the repeated rows
  directly vs. summing repeats first (what the trainer does)."""
  grad = tf.IndexedSlices(tf.ones([len(ids), width]), tf.constant(ids),
                          tf.constant([table, width]))
  timings = {}
  for name, convert in (("direct", tf.function(tf.convert_to_tensor)),
                        ("deduplicated", tf.function(trainer.dense_gradient))):
    convert(grad)
    start = time.perf_counter()
    for _ in range(repeats):
      convert(grad).numpy()
    timings[name] = round(1000 * (time.perf_counter() - start) / repeats, 1)
  return timings


def collectives_per_step(vocab_size, dataset_fn):
  """The reductions one training step holds, traced on 2 replicas."""
  mirrored = tf.distribute.MirroredStrategy(
      [d.name for d in tf.config.list_logical_devices("CPU")][:2])
  loop = CustomLoop(vocab_size, dataset_fn, 1, False, strategy=mirrored)
  with testing.CollectiveCounter(mirrored, loop.trainer) as counter:
    loop.run(1)
  kinds = [kind for kind, _ in counter.calls]
  return {"gradient_all_reduces": counter.gradient_all_reduces(),
          "all_reduces": kinds.count("batch_reduce_to"),
          "aggregated_variable_updates": kinds.count("reduce_to"),
          "broadcasts": kinds.count("broadcast_to")}


def main(argv):
  del argv
  print(json.dumps(cpu_description()), flush=True)
  keras.utils.set_random_seed(0)
  if FLAGS.data_path:
    examples = data.read_aclimdb(FLAGS.data_path, "train")
  else:
    examples = data.read_examples(
        "default", "", "train",
        default_data=mm.ClassificationTask.default_data)
  order = np.random.default_rng(0).permutation(len(examples))[:FLAGS.examples]
  examples = examples.subset(order)
  examples = examples.with_labels(CLASSIFICATION.encode_labels(
      examples.labels, examples.source))
  work_dir = tempfile.mkdtemp(prefix="maskmodels_bench_")
  vocab = data.learn_vocabulary(examples.texts, "word", 20000, verbose=0)
  data.write_vocabulary(vocab, os.path.join(work_dir, "vocab.txt"))
  tokenizer = data.build_tokenizer("word", os.path.join(work_dir, "vocab.txt"))
  featurizer = data.Featurizer(tokenizer)
  lengths = data.token_lengths(examples, tokenizer, FLAGS.max_len)
  edges = data.length_boundaries(lengths, 8)
  batch = FLAGS.batch_size
  # A token budget that holds the fixed batch's tokens on average.
  budget = int(batch * np.mean(np.minimum(lengths, FLAGS.max_len)))

  def config(bucketed=True, batch_tokens=0):
    return data.PipelineConfig(FLAGS.max_len, batch, batch_tokens=batch_tokens,
                               bucket_boundaries=edges if bucketed else None)

  def dataset_fn(pipeline_config):
    return lambda ctx, start: data.make_dataset(
        examples, featurizer, pipeline_config, True, ctx, start)

  fit_data = data.make_dataset(examples, featurizer, config(), True).map(
      lambda f, l, w: (f["ids"], l))
  textbook_vocab = vocab[:999]  # + 1 OOV bucket = 1000 ids
  data.write_vocabulary(textbook_vocab, os.path.join(work_dir, "v1000.txt"))
  textbook_tokenizer = data.build_tokenizer(
      "word", os.path.join(work_dir, "v1000.txt"), num_oov_buckets=1)
  textbook_data = data.make_dataset(
      examples, data.Featurizer(textbook_tokenizer),
      data.PipelineConfig(100000, 32), training=True).map(
          lambda f, l, w: (f["ids"], l))
  logging.info("Mean tokens per review: %.1f; token budget %d.",
               lengths.mean(), budget)
  token_ids = tokenizer.encode(examples.texts[:400]).flat_values.numpy()

  size = tokenizer.vocab_size
  runners = {
      "custom_loop bucketed steps_per_loop=50": CustomLoop(
          size, dataset_fn(config()), 50, False),
      "keras_fit bucketed steps_per_execution=50": KerasFit(
          Logits(make_model(size)), fit_data, 50, batch),
      f"custom_loop token_budget={budget}": CustomLoop(
          size, dataset_fn(config(batch_tokens=budget)), 50, False),
      "custom_loop bucketed steps_per_loop=1": CustomLoop(
          size, dataset_fn(config()), 1, False),
      "custom_loop unbucketed steps_per_loop=50": CustomLoop(
          size, dataset_fn(config(bucketed=False)), 50, False),
      "custom_loop bucketed xla": CustomLoop(
          size, dataset_fn(config()), 50, True),
      "custom_loop bucketed mixed_bfloat16": CustomLoop(
          size, dataset_fn(config()), 50, False, "mixed_bfloat16"),
      "textbook Embedding(1000)->GRU(128) fit batch=32 full length": KerasFit(
          textbook_model(), textbook_data, 1, 32),
  }
  for runner in runners.values():  # warm up: trace, fill caches
    runner.run(50)
  speeds = {name: [] for name in runners}
  for _ in range(FLAGS.rounds):
    for name, runner in runners.items():
      steps = FLAGS.steps // 2 if name.startswith("textbook") else FLAGS.steps
      speeds[name].append(measure(name, runner, max(steps, 1)))
  median = {name: statistics.median(v) for name, v in speeds.items()}
  names = list(runners)
  records.append_run("training_throughput", [
      dict(config=name, metric="train examples/s", value=median[name],
           rounds=speeds[name], ratio=median[name] / median[names[0]])
      for name in names], sys.argv, FLAGS.records)

  def ratio(a, b):
    return round(median[names[a]] / median[names[b]], 3)

  print(json.dumps({
      "summary": median,
      "custom_loop_over_fit": ratio(0, 1),
      "token_budget_over_fixed_batches": ratio(2, 0),
      "steps_per_loop_50_over_1": ratio(0, 3),
      "bucketing_speedup": ratio(0, 4),
      "xla_speedup": ratio(5, 0),
      "mixed_bfloat16_speedup": ratio(6, 0),
      "best": max(median, key=median.get),
      "best_over_textbook": round(max(median.values()) / median[names[7]], 2),
      "collectives_per_step": collectives_per_step(size, dataset_fn(config())),
      "embedding_gradient_ms": {
          rows: embedding_gradient_ms(token_ids[:rows])
          for rows in (9600, 38400)},
      "peak_rss_mb": round(memory.peak_resident_mb()),
      "mean_tokens": round(float(lengths.mean()), 1)}))


if __name__ == "__main__":
  app.run(main)
