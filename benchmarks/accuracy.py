"""Accuracy benchmarks: train a benchmark's configuration once per seed,
test once, and append a record per run (benchmarks/records.py).

    python benchmarks/accuracy.py --benchmark=imdb --data_path=aclImdb \
        --seeds=0,1,2

Each run is ``scripts/train.py`` with the benchmark's flags, ``--seed`` and
a fresh ``--model_dir`` under ``--runs_dir``, in a process of its own, as a
user runs it. Settings are chosen on validation data (each flagfile says
how); the test split is read once, at the end of each run. The command
prints each run's result and the mean and spread over the seeds.
"""

import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

from absl import app, flags

import records  # benchmarks/records.py

ROOT = records.ROOT
FLAGS = flags.FLAGS

# name: (flags, what --data_path is, the metric of summary.json reported).
# A flag holding {data} gets the data path in its place; without one, the
# run gets --data_path.
BENCHMARKS = {
    "default": (["--strategy=mirrored"], None, "test_accuracy"),
    "imdb_fast": (["--flagfile=configs/imdb_fast.flags"], "aclImdb",
                  "test_accuracy"),
    "imdb": (["--flagfile=configs/imdb.flags"], "aclImdb", "test_accuracy"),
    "ud_ewt": (["--flagfile=configs/ud_ewt.flags"], "ud-english-ewt",
               "test_token_accuracy"),
    "japanese_vowels": (["--flagfile=configs/japanese_vowels.flags"],
                        "JapaneseVowels", "test_accuracy"),
    "japanese_vowels_eq": (
        ["--flagfile=configs/japanese_vowels.flags",
         "--data_path={data}/JapaneseVowels_eq_TRAIN.ts",
         "--test_path={data}/JapaneseVowels_eq_TEST.ts"], "JapaneseVowels",
        "test_accuracy"),
    "plaid": (["--flagfile=configs/plaid.flags"], "PLAID", "test_accuracy"),
    "cmudict_seq2seq": (["--flagfile=configs/cmudict_seq2seq.flags"],
                        "cmudict-g2p", "test_sequence_error_rate"),
    "cmudict_ctc": (["--flagfile=configs/cmudict_ctc.flags"], "cmudict-g2p",
                    "test_sequence_error_rate"),
}
# More metrics of a run, each recorded as a benchmark of its own.
ALSO = {"cmudict_seq2seq": {"cmudict_seq2seq_phones": "test_token_error_rate"},
        "cmudict_ctc": {"cmudict_ctc_phones": "test_token_error_rate"}}


def with_data(benchmark_flags, data_path, shown=None):
  """The benchmark's flags with its data: ``{data}`` replaced, else
  ``--data_path`` added (as ``shown`` in a recorded command)."""
  value = shown or data_path
  if any("{data}" in f for f in benchmark_flags):
    return [f.replace("{data}", value) for f in benchmark_flags]
  return benchmark_flags + ([f"--data_path={value}"] if data_path else [])

def define_flags():
  """The benchmark's flags (defined when it runs, so importing this module
  defines none)."""
  flags.DEFINE_enum("benchmark", None, sorted(BENCHMARKS), "The benchmark.",
                    required=False)
  flags.DEFINE_string("data_path", None, "Its data (the folder its flagfile "
                      "names), unless it runs on embedded data.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds, one run each.")
  flags.DEFINE_string("runs_dir", "runs/benchmarks", "Where the runs' model "
                      "directories go (one per seed, replaced).")
  flags.DEFINE_string("records", records.RECORDS, "The records file.")
  flags.DEFINE_list("extra", [], "More flags for every run (recorded).")


def command_line(name, seed, model_dir):
  """The train command of one run, as argument lists: the one it runs and
  the one it records (the data path as the placeholder <data>)."""
  benchmark_flags, data, _ = BENCHMARKS[name]
  extra = [*FLAGS.extra, f"--seed={seed}"]
  run = with_data(benchmark_flags, FLAGS.data_path if data else None) + (
      extra + [f"--model_dir={model_dir}"])
  shown = with_data(benchmark_flags, FLAGS.data_path if data else None,
                    f"<{data}>") + extra
  return ([sys.executable, "scripts/train.py", *run],
          "python scripts/train.py " + shlex.join(shown))


def settings_digest(benchmark_flags, read=None):
  """The first 12 hex digits of the sha256 of the benchmark's flagfiles'
  text: runs with the same command but other settings in a flagfile
  differ in it, so their results are never averaged together. ``read``
  (a path -> text function) defaults to reading the checkout."""
  read = read or (lambda path: open(os.path.join(ROOT, path)).read())
  digest = hashlib.sha256()
  for flag in benchmark_flags:
    if flag.startswith("--flagfile="):
      digest.update(read(flag.split("=", 1)[1]).encode())
  return digest.hexdigest()[:12]


def run_records(name, summary, fields):
  """The records of one run of benchmark ``name``: its metric, then each
  further metric of :data:`ALSO` as a benchmark of its own, all with the
  run's ``fields`` (command, seed, timing...)."""
  metrics = {name: BENCHMARKS[name][2], **ALSO.get(name, {})}
  return [dict(fields, benchmark=benchmark, metric=metric,
               value=summary[metric])
          for benchmark, metric in metrics.items()]


def main(argv):
  del argv
  if FLAGS.benchmark is None:
    raise app.UsageError(f"--benchmark: choose one of "
                         f"{', '.join(sorted(BENCHMARKS))}.")
  name = FLAGS.benchmark
  _, data, metric = BENCHMARKS[name]
  if data and not FLAGS.data_path:
    raise app.UsageError(f"--data_path: {name} needs its data ({data}).")
  values = []
  settings = settings_digest(BENCHMARKS[name][0])
  for seed in FLAGS.seeds:
    model_dir = os.path.abspath(os.path.join(FLAGS.runs_dir,
                                             f"{name}-seed{seed}"))
    subprocess.run(["rm", "-rf", model_dir], check=True)
    run, shown = command_line(name, int(seed), model_dir)
    started_at = records.commit()
    print(f"[{name} seed {seed}] {shown}", flush=True)
    start = time.perf_counter()
    result = subprocess.run(run, cwd=ROOT)
    wall = time.perf_counter() - start
    if result.returncode != 0:
      sys.exit(f"error: the run of seed {seed} failed (exit "
               f"{result.returncode}).")
    with open(os.path.join(model_dir, "summary.json")) as f:
      summary = json.load(f)
    validation = next((v for k, v in summary.items()
                       if k.startswith("best_validation_")), None)
    rows = run_records(name, summary, dict(
        command=shown, seed=int(seed), validation=validation, split="test",
        wall_seconds=round(wall, 1),
        train_examples_per_second=summary.get("train_examples_per_second"),
        test_examples=summary.get("test_examples"), commit=started_at,
        settings=settings))
    for row in rows:
      records.append(row, FLAGS.records)
    record = rows[0]
    values.append(record["value"])
    print(f"[{name} seed {seed}] {metric} {record['value']:.4f} in "
          f"{wall:.0f} s", flush=True)
  spread = statistics.stdev(values) if len(values) > 1 else 0.0
  print(json.dumps({"benchmark": name, "metric": metric, "n": len(values),
                    "mean": statistics.mean(values), "sd": spread}))


if __name__ == "__main__":
  define_flags()
  app.run(main)
