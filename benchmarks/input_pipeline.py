"""Input pipeline benchmark on aclImdb: throughput and padding, as JSON.

    python benchmarks/input_pipeline.py --data_path=/path/to/aclImdb

Prints the CPU as a first JSON line, then one JSON object: examples/s of
the pipeline alone (first pass, which tokenizes and fills the cache, and a
cached pass), and the padded-step fraction with length bucketing vs.
padding each random batch to its longest sequence.
"""

import json
import os
import sys
import tempfile
import time

from maskmodels import cli

cli.quiet_start()  # before TensorFlow loads

# pylint: disable=wrong-import-position
from absl import app, flags, logging  # noqa: E402

from maskmodels import data  # noqa: E402

from imdb_model import CLASSIFICATION  # noqa: E402  (benchmarks/)
from machine import cpu_description  # noqa: E402  (benchmarks/machine.py)
import records  # noqa: E402  (benchmarks/records.py)

FLAGS = flags.FLAGS
flags.DEFINE_string("data_path", None, "aclImdb folder.", required=True)
records.define_flag()
flags.DEFINE_string("split", "train", "Split to read.")
flags.DEFINE_enum("tokenizer", "word", data.TOKENIZERS.names(), "Tokenizer.")
flags.DEFINE_integer("vocab_size", 20000, "Vocabulary size.", lower_bound=3)
flags.DEFINE_integer("max_len", 400, "Tokens kept per review.", lower_bound=1)
flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
flags.DEFINE_integer("num_buckets", 8, "Length buckets.", lower_bound=1)
flags.DEFINE_string("work_dir", None,
                    "Where the vocabulary is written (default: a new "
                    "temporary folder).")


def timed_pass(dataset, batches):
  """(examples, seconds) of one pass: the first ``batches`` batches of a
  training dataset, which repeats without end."""
  start, count = time.perf_counter(), 0
  for _, _, weights in dataset.take(batches):
    # Filler rows that complete a global batch weigh 0: not examples.
    count += int((weights.numpy() > 0).sum())
  return count, time.perf_counter() - start


def main(argv):
  del argv
  cli.absorb_onednn_notice()
  print(json.dumps(cpu_description()), flush=True)
  start = time.perf_counter()
  examples = data.read_aclimdb(FLAGS.data_path, FLAGS.split)
  read_seconds = time.perf_counter() - start
  examples = examples.with_labels(CLASSIFICATION.encode_labels(
      examples.labels, examples.source))
  logging.info("Read %d reviews in %.1f s.", len(examples), read_seconds)
  work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="maskmodels_bench_")
  vocab_path = os.path.join(work_dir, "vocab.txt")
  start = time.perf_counter()
  data.write_vocabulary(data.learn_vocabulary(
      examples.texts, FLAGS.tokenizer, FLAGS.vocab_size), vocab_path)
  vocab_seconds = time.perf_counter() - start
  tokenizer = data.build_tokenizer(FLAGS.tokenizer, vocab_path)
  featurizer = data.Featurizer(tokenizer)
  lengths = data.token_lengths(examples, tokenizer, FLAGS.max_len)
  edges = data.length_boundaries(lengths, FLAGS.num_buckets)
  result = {"examples": len(examples), "read_seconds": round(read_seconds, 2),
            "vocab_seconds": round(vocab_seconds, 2),
            "mean_tokens": float(lengths.mean()), "bucket_boundaries": edges}
  # Warm up once on a small subset, so one-time start-up costs (tracing,
  # thread pools, table initialization) fall on neither configuration.
  warmup = examples.subset(range(min(500, len(examples))))
  for boundaries in (edges, None):
    config = data.PipelineConfig(FLAGS.max_len, FLAGS.batch_size,
                                 bucket_boundaries=boundaries)
    timed_pass(data.make_dataset(warmup, featurizer, config, training=True),
               data.batches_per_pass(lengths[:len(warmup)], config))
  fractions = {}
  for name, boundaries in (("bucketed", edges), ("unbucketed", None)):
    config = data.PipelineConfig(FLAGS.max_len, FLAGS.batch_size,
                                 bucket_boundaries=boundaries)
    dataset = data.make_dataset(examples, featurizer, config, training=True)
    batches = data.batches_per_pass(lengths, config)
    count, first = timed_pass(dataset, batches)
    _, cached = timed_pass(dataset, batches)
    fractions[name] = data.padded_step_fraction(dataset, featurizer, batches)
    result[f"{name}_first_pass_examples_per_s"] = round(count / first)
    result[f"{name}_cached_examples_per_s"] = round(count / cached)
    result[f"{name}_padded_step_fraction"] = round(fractions[name], 4)
  result["padding_reduction"] = round(
      fractions["unbucketed"] / fractions["bucketed"], 2)
  print(json.dumps(result))
  records.append_run("input_pipeline", [
      dict(config=f"{name}, {when} pass", metric="examples/s",
           value=result[f"{name}_{key}_examples_per_s"])
      for name in ("bucketed", "unbucketed")
      for when, key in (("first", "first_pass"), ("cached", "cached"))] + [
          dict(config=name, metric="padded steps (fraction)",
               value=fractions[name]) for name in fractions],
                     sys.argv, FLAGS.records)


if __name__ == "__main__":
  app.run(main)
