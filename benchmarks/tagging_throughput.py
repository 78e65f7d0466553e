"""Tagger and classifier training throughput, side by side, as JSON lines.

    python benchmarks/tagging_throughput.py --data_path=ud-english-ewt \
        --imdb_data_path=aclImdb

The first line names the CPU and its vector extensions. Then, in
alternating rounds on one process: the tagger of ``configs/ud_ewt.flags``
with and without its character features (UD English-EWT's train split, or
the embedded sample), and the throughput benchmark's classifier (IMDb
reviews, or the embedded ones). Each line is one measurement: training
examples/s and tokens/s (real tokens: words for the tagger, word ids after
truncation for the classifier), after warm-up; the last line gives the
medians.
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
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import maskmodels as mm  # noqa: E402
from maskmodels import data  # noqa: E402
from maskmodels.data import tokens  # noqa: E402
from imdb_model import CLASSIFICATION, CustomLoop, make_model  # noqa: E402
from machine import cpu_description  # noqa: E402  (benchmarks/machine.py)
import records  # noqa: E402  (benchmarks/records.py)

FLAGS = flags.FLAGS
flags.DEFINE_string("data_path", None, "UD English-EWT folder (default: the "
                    "embedded sample).")
flags.DEFINE_string("imdb_data_path", None, "aclImdb folder (default: the "
                    "embedded reviews).")
records.define_flag()
flags.DEFINE_integer("steps", 40, "Timed steps per measurement.",
                     lower_bound=1)
flags.DEFINE_integer("rounds", 3, "Alternating rounds.", lower_bound=1)


def tagger(vocab_size, chars):
  """The tagger of configs/ud_ewt.flags (its character CNN if ``chars``)."""
  return lambda _: mm.SequenceModel.tagger(
      vocab_size, 17, embedding_dim=128, token_dropout=0.1,
      encoder_config=dict(conv_filters=[128], kernel_size=3,
                          normalization="none", gru_units=[128, 128],
                          dropout=0.3), head_dropout=0.3,
      word_features=["chars"] if chars else [],
      word_features_config={"chars": dict(char_dim=32, char_filters=64,
                                          max_chars=24)} if chars else None)


def setup(examples, task, make, batch_size, max_len, vocab_size):
  """A custom loop over ``examples`` with ``make``'s model."""
  path = os.path.join(tempfile.mkdtemp(prefix="maskmodels_bench_"),
                      "vocab.txt")
  data.write_vocabulary(data.learn_vocabulary(examples.texts, "word",
                                              vocab_size, verbose=0), path)
  tokenizer = data.build_tokenizer("word", path)
  lengths = data.token_lengths(examples, tokenizer, max_len)
  config = data.PipelineConfig(max_len, batch_size, labels=task.labels,
                               bucket_boundaries=data.length_boundaries(
                                   lengths, 8))
  holder = {}

  def dataset_fn(ctx, start):
    return data.make_dataset(examples, holder["featurizer"], config, True,
                             ctx, start)

  loop = CustomLoop(tokenizer.vocab_size, dataset_fn, 20, False, make=make,
                    task=task)
  holder["featurizer"] = data.Featurizer(
      tokenizer, tokens.word_features_of(loop.model),
      "words" if task.labels.per_token else "text")
  return loop, float(np.mean(lengths))


def main(argv):
  del argv
  cli.absorb_onednn_notice()
  print(json.dumps(cpu_description()), flush=True)
  tagging = mm.TaggingTask()
  if FLAGS.data_path:
    words = data.read_examples("conllu", FLAGS.data_path, "train")
  else:
    words = data.read_examples("default", "", "train",
                               default_data=tagging.default_data)
  tagging = mm.TaggingTask(label_names=tagging.fit_labels(words.labels, ""))
  words = words.with_labels(tagging.encode_labels(words.labels, ""))
  if FLAGS.imdb_data_path:
    texts = data.read_aclimdb(FLAGS.imdb_data_path, "train")
  else:
    texts = data.read_examples("default", "", "train",
                               default_data=CLASSIFICATION.default_data)
  texts = texts.subset(np.random.default_rng(0).permutation(len(texts))[
      :6000])
  texts = texts.with_labels(CLASSIFICATION.encode_labels(texts.labels, ""))
  runners = {}
  for name, chars in (("tagger, word + character features", True),
                      ("tagger, words only", False)):
    runners[name] = setup(words, tagging, tagger(20000, chars), 32, 128,
                          20000)
  runners["classifier (throughput benchmark's IMDb model)"] = setup(
      texts, CLASSIFICATION, make_model, 64, 400, 20000)
  for loop, _ in runners.values():
    loop.run(20)  # warm up: trace, fill caches
  speeds = {name: [] for name in runners}
  for _ in range(FLAGS.rounds):
    for name, (loop, mean_tokens) in runners.items():
      start = time.perf_counter()
      counts = loop.run(FLAGS.steps)
      seconds = time.perf_counter() - start
      tokens = counts.get("tokens", counts["examples"] * mean_tokens)
      row = {"config": name, "examples_per_second": round(
          counts["examples"] / seconds, 1), "tokens_per_second": round(
              tokens / seconds)}
      speeds[name].append(row)
      print(json.dumps(row), flush=True)
  summary = {name: {key: statistics.median(r[key] for r in rows)
                    for key in ("examples_per_second", "tokens_per_second")}
             for name, rows in speeds.items()}
  print(json.dumps({"summary": summary}))
  records.append_run("tagging_throughput", [
      dict(config=name, metric=f"train {key.replace('_per_second', '')}/s",
           value=summary[name][key], rounds=[r[key] for r in speeds[name]])
      for name in speeds for key in ("examples_per_second",
                                     "tokens_per_second")],
                     sys.argv, FLAGS.records)


if __name__ == "__main__":
  app.run(main)
