"""Grapheme-to-phoneme throughput: training words/s, and greedy and beam
decoding words/s, of configs/cmudict_seq2seq.flags's model.

    python benchmarks/g2p_throughput.py --data_path=cmudict-g2p

The first line names the CPU and its vector extensions. Training is
``scripts/train.py`` with the flagfile for ``--train_steps`` steps in a
process of its own (its steady-state examples/s: an example is a word and
one of its pronunciations); decoding is the trained model's serving path
(featurize, encode, beam search in the graph) over the test split's first
``--words`` words, greedy and at ``--beam_width``, after a warm-up, in
alternating rounds. The last line gives the medians; each is a record.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from maskmodels import cli

cli.quiet_start()  # before TensorFlow loads

# pylint: disable=wrong-import-position
from absl import app, flags  # noqa: E402

from maskmodels import data, training  # noqa: E402
from machine import cpu_description  # noqa: E402  (benchmarks/machine.py)
import records  # noqa: E402  (benchmarks/records.py)

FLAGS = flags.FLAGS
flags.DEFINE_string("data_path", None, "The cmudict-g2p folder.",
                    required=True)
records.define_flag()
flags.DEFINE_integer("train_steps", 150, "Training steps (the first loop "
                     "of 25, which traces, is left out).", lower_bound=50)
flags.DEFINE_integer("words", 3000, "Test words decoded per measurement.",
                     lower_bound=1)
flags.DEFINE_integer("beam_width", 4, "The beam measured beside greedy.",
                     lower_bound=2)
flags.DEFINE_integer("rounds", 3, "Alternating decoding rounds.",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", 256, "Words per decoding call.",
                     lower_bound=1)


def train(model_dir):
  """Trains the flagfile's model for ``--train_steps``; its words/s."""
  command = [sys.executable, os.path.join(records.ROOT, "scripts",
                                          "train.py"),
             "--flagfile=" + os.path.join(records.ROOT, "configs",
                                          "cmudict_seq2seq.flags"),
             f"--data_path={FLAGS.data_path}", f"--model_dir={model_dir}",
             f"--train_steps={FLAGS.train_steps}", "--steps_per_loop=25",
             "--test_split="]
  subprocess.run(command, check=True, capture_output=True)
  with open(os.path.join(model_dir, "summary.json")) as f:
    return json.load(f)["train_examples_per_second"]


def decoding(run, words, beam_width):
  """Words/s of the serving path at ``beam_width``."""
  run.model.beam_width = beam_width
  server = run.server()
  server.predict(words[:FLAGS.batch_size], FLAGS.batch_size)  # traces
  start = time.perf_counter()
  server.predict(words, FLAGS.batch_size)
  return len(words) / (time.perf_counter() - start)


def main(argv):
  del argv
  print(json.dumps(cpu_description()), flush=True)
  model_dir = os.path.join(tempfile.mkdtemp(prefix="maskmodels_g2p_"), "run")
  rows = [{"config": "training (flagfile model, batch 128)",
           "metric": "train words/s", "value": round(train(model_dir), 1)}]
  print(json.dumps(rows[0]), flush=True)
  run = training.load_trained(model_dir)
  words = data.read_examples("cmudict", FLAGS.data_path, "test").texts[
      :FLAGS.words]
  speeds = {1: [], FLAGS.beam_width: []}
  for _ in range(FLAGS.rounds):
    for width in speeds:
      speeds[width].append(round(decoding(run, words, width), 1))
      print(json.dumps({"beam_width": width, "words_per_second":
                        speeds[width][-1]}), flush=True)
  for width, values in speeds.items():
    rows.append({"config": "greedy decoding" if width == 1 else
                 f"beam search, width {width}", "metric": "decoded words/s",
                 "value": statistics.median(values), "rounds": values})
  greedy, beam = rows[1]["value"], rows[2]["value"]
  rows[2]["ratio"] = round(greedy / beam, 2)  # beam's time over greedy's
  print(json.dumps({"summary": rows}))
  records.append_run("g2p_throughput", rows, sys.argv, FLAGS.records)


if __name__ == "__main__":
  app.run(main)
