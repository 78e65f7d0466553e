"""Choose a benchmark's settings on validation data, never on test.

    python benchmarks/validation_search.py --benchmark=japanese_vowels \
        --data_path=JapaneseVowels --seeds=0,1,2,3,4 \
        --candidate="small: --conv_filters=64" \
        --candidate="wide: --conv_filters=128,128 --gru_units=128"

Each candidate (a name and flags added to the benchmark's flagfile) trains
once per seed with the test split switched off (``--test_split=``, so no
test example is read) on the training files minus a validation split
carved with that seed, and is scored on that split at the end of training
(``--evaluate_checkpoint=final``). The command prints, per candidate, the
mean and spread of the validation loss and accuracy over the seeds; the
candidate with the lowest mean loss is the one to keep (the flagfile's
comment records the command and its figures).
"""

import json
import os
import shlex
import statistics
import subprocess
import sys

from absl import app, flags

import accuracy  # benchmarks/accuracy.py: the benchmarks and their flags

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("candidate", [], "'name: --flag=value --flag=value' "
                          "(repeat for each candidate).")
flags.DEFINE_string("work_dir", "runs/select", "Where the runs go.")


def run(name, flags_list, seed):
  """The last validation entry of one run: ``{"loss": .., metric: ..}``."""
  benchmark_flags, _, _ = accuracy.BENCHMARKS[FLAGS.benchmark]
  model_dir = os.path.abspath(os.path.join(FLAGS.work_dir, FLAGS.benchmark,
                                           f"{name}-seed{seed}"))
  subprocess.run(["rm", "-rf", model_dir], check=True)
  command = [sys.executable, "scripts/train.py",
             *accuracy.with_data(benchmark_flags, FLAGS.data_path),
             f"--seed={seed}",
             f"--model_dir={model_dir}", "--test_split=", "--test_path=",
             "--evaluate_checkpoint=final", *flags_list]
  result = subprocess.run(command, cwd=accuracy.ROOT, capture_output=True,
                          text=True)
  if result.returncode != 0:
    sys.exit(f"error: {name} seed {seed} failed:\n{result.stderr[-2000:]}")
  with open(os.path.join(model_dir, "history.json")) as f:
    history = json.load(f)
  step, values = history["validation"][-1][0], history["validation"][-1][1]
  return dict(values, step=step)


def main(argv):
  del argv
  if not FLAGS.benchmark or not FLAGS.candidate:
    raise app.UsageError("give --benchmark and at least one --candidate.")
  table = []
  for candidate in FLAGS.candidate:
    name, _, given = candidate.partition(":")
    flags_list = shlex.split(given)
    scores = [run(name, flags_list, int(seed)) for seed in FLAGS.seeds]
    row = {"candidate": name, "flags": flags_list, "seeds": len(scores)}
    for key in scores[0]:
      if key in ("step", "examples", "tokens", "peak_memory_mb", "traces"):
        continue
      values = [s[key] for s in scores]
      row[key] = round(statistics.mean(values), 4)
      row[f"{key}_sd"] = round(statistics.stdev(values), 4) if len(
          values) > 1 else 0.0
    table.append(row)
    print(json.dumps(row), flush=True)
  best = min(table, key=lambda r: r["loss"])
  print(json.dumps({"lowest_validation_loss": best["candidate"]}))


if __name__ == "__main__":
  accuracy.define_flags()
  app.run(main)
