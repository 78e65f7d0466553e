"""Accuracy benchmarks: train a benchmark's configuration once per seed,
test once, and append a record per run (benchmarks/records.py).

    python benchmarks/accuracy.py --benchmark=imdb --data_path=aclImdb \
        --seeds=0,1,2
    python benchmarks/accuracy.py --benchmark=suite --data_path=suite \
        [--tuned --tune_minutes=30]

``--benchmark=suite`` runs every problem of the development suite
(``benchmarks/fetch_suite.py`` puts it in ``--data_path``) with the
defaults (no flagfile), or with ``--tuned``: ``scripts/tune.py`` first
searches each problem's settings on its training data only (validation
folds; the search's trials and wall time are recorded), then each seed
trains with the search's ``best.flags``.

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

import fetch_suite  # benchmarks/fetch_suite.py
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
# The suite's problems with the defaults: --data_path is the problem's
# folder (or, for --benchmark=suite, the suite's folder).
for _problem in fetch_suite.SUITE:
  BENCHMARKS[f"suite_{_problem}"] = (["--data_format=ts"], _problem,
                                      "test_accuracy")
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
  flags.DEFINE_enum("benchmark", None, sorted(BENCHMARKS) + ["suite"],
                    "The benchmark (suite: every suite_* problem).",
                    required=False)
  flags.DEFINE_string("data_path", None, "Its data (the folder its flagfile "
                      "names), unless it runs on embedded data.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds, one run each.")
  flags.DEFINE_string("runs_dir", "runs/benchmarks", "Where the runs' model "
                      "directories go (one per seed, replaced).")
  flags.DEFINE_string("records", records.RECORDS, "The records file.")
  flags.DEFINE_list("extra", [], "More flags for every run (recorded).")
  flags.DEFINE_list("problems", list(fetch_suite.SUITE), "With "
                    "--benchmark=suite: the problems run.")
  flags.DEFINE_bool("tuned", False, "With a suite problem: search its "
                    "settings on validation first (scripts/tune.py), then "
                    "train every seed with the best ones.")
  flags.DEFINE_float("tune_minutes", 30.0, "With --tuned: the search's "
                     "time per problem (trials started after it are not).",
                     lower_bound=0.0)
  flags.DEFINE_integer("tune_trials", 40, "With --tuned: at most this many "
                       "trials per problem.", lower_bound=1)


def command_line(name, seed, model_dir, data_path=None,
                 benchmark_flags=None):
  """The train command of one run, as argument lists: the one it runs and
  the one it records (the data path as the placeholder <data>)."""
  default_flags, data, _ = BENCHMARKS[name]
  benchmark_flags = default_flags if benchmark_flags is None else (
      benchmark_flags)
  data_path = data_path or FLAGS.data_path
  extra = [*FLAGS.extra, f"--seed={seed}"]
  run = with_data(benchmark_flags, data_path if data else None) + (
      extra + [f"--model_dir={model_dir}"])
  shown = with_data(benchmark_flags, data_path if data else None,
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


def run_records(name, summary, fields, recorded=None):
  """The records of one run of benchmark ``name``: its metric, then each
  further metric of :data:`ALSO` as a benchmark of its own, all with the
  run's ``fields`` (command, seed, timing...). ``recorded`` names the
  first record's benchmark instead of ``name`` (a tuned suite run)."""
  metrics = {recorded or name: BENCHMARKS[name][2], **ALSO.get(name, {})}
  return [dict(fields, benchmark=benchmark, metric=metric,
               value=summary[metric])
          for benchmark, metric in metrics.items()]


def run_fresh(command, out_dir, shown, what):
  """Runs ``command`` in the checkout after emptying ``out_dir`` (its model
  or tuning directory), printing ``shown`` first; exits naming ``what`` if
  it fails. Returns its wall time in seconds."""
  subprocess.run(["rm", "-rf", out_dir], check=True)
  print(shown, flush=True)
  start = time.perf_counter()
  result = subprocess.run(command, cwd=ROOT)
  if result.returncode != 0:
    sys.exit(f"error: {what} failed (exit {result.returncode}).")
  return time.perf_counter() - start


def run_seeds(name, data_path, benchmark_flags=None, settings=None,
              recorded=None, fields=None):
  """Trains benchmark ``name`` once per ``--seeds`` seed, appends each
  run's records (with ``fields``), prints the mean and spread; returns
  the values."""
  benchmark_flags = BENCHMARKS[name][0] if benchmark_flags is None else (
      benchmark_flags)
  settings = settings or settings_digest(benchmark_flags)
  recorded = recorded or name
  metric = BENCHMARKS[name][2]
  values = []
  for seed in FLAGS.seeds:
    model_dir = os.path.abspath(os.path.join(FLAGS.runs_dir,
                                             f"{recorded}-seed{seed}"))
    run, shown = command_line(name, int(seed), model_dir, data_path,
                              benchmark_flags)
    started_at = records.commit()
    wall = run_fresh(run, model_dir, f"[{recorded} seed {seed}] {shown}",
                     f"the run of seed {seed}")
    with open(os.path.join(model_dir, "summary.json")) as f:
      summary = json.load(f)
    validation = next((v for k, v in summary.items()
                       if k.startswith("best_validation_")), None)
    rows = run_records(name, summary, dict(
        fields or {}, command=shown, seed=int(seed), validation=validation,
        split="test", wall_seconds=round(wall, 1),
        train_examples_per_second=summary.get("train_examples_per_second"),
        steps=summary.get("steps"), budget=summary.get("budget"),
        test_examples=summary.get("test_examples"), commit=started_at,
        settings=settings), recorded)
    for row in rows:
      records.append(row, FLAGS.records)
    values.append(rows[0]["value"])
    print(f"[{recorded} seed {seed}] {metric} {rows[0]['value']:.4f} in "
          f"{wall:.0f} s", flush=True)
  spread = statistics.stdev(values) if len(values) > 1 else 0.0
  print(json.dumps({"benchmark": recorded, "metric": metric,
                    "n": len(values), "mean": statistics.mean(values),
                    "sd": spread}), flush=True)
  return values


def tune(problem, data_path):
  """Searches ``problem``'s settings on validation (``scripts/tune.py``,
  never reading its test split); returns ``(best flags as a list, their
  digest, fields recording the search)``."""
  tune_dir = os.path.abspath(os.path.join(FLAGS.runs_dir,
                                          f"suite_{problem}-tune"))
  command = [sys.executable, "scripts/tune.py", f"--tune_dir={tune_dir}",
             *BENCHMARKS[f"suite_{problem}"][0],
             f"--data_path={data_path}", f"--minutes={FLAGS.tune_minutes}",
             f"--trials={FLAGS.tune_trials}", *FLAGS.extra]
  wall = run_fresh(command, tune_dir, f"[suite_{problem}_tuned] search: "
                   f"{shlex.join(command[1:])}", f"the search of {problem}")
  with open(os.path.join(tune_dir, "record.json")) as f:
    search = json.load(f)
  with open(os.path.join(tune_dir, "best.flags")) as f:
    best = [line.strip() for line in f
            if line.strip().startswith("--")
            and not line.strip().startswith(("--data_path", "--model_dir"))]
  digest = hashlib.sha256("\n".join(best).encode()).hexdigest()[:12]
  return best, digest, dict(
      tuned=True, search_seconds=round(wall, 1),
      search_trials=search.get("trials"),
      search_validation=search.get("best_value"))


def run_suite_problem(problem, data_path):
  """One suite problem, with the defaults or (``--tuned``) searched
  settings."""
  name = f"suite_{problem}"
  if not FLAGS.tuned:
    return run_seeds(name, data_path)
  best, digest, fields = tune(problem, data_path)
  return run_seeds(name, data_path, best, digest, f"{name}_tuned", fields)


def main(argv):
  del argv
  if FLAGS.benchmark is None:
    raise app.UsageError(f"--benchmark: choose one of "
                         f"{', '.join(sorted(BENCHMARKS) + ['suite'])}.")
  name = FLAGS.benchmark
  if name == "suite":
    if not FLAGS.data_path:
      raise app.UsageError("--data_path: the suite's folder "
                           "(benchmarks/fetch_suite.py --data_dir).")
    unknown = sorted(set(FLAGS.problems) - set(fetch_suite.SUITE))
    if unknown:
      raise app.UsageError(f"--problems: {', '.join(unknown)} not in the "
                           f"suite ({', '.join(fetch_suite.SUITE)}).")
    for problem in FLAGS.problems:
      run_suite_problem(problem, os.path.join(FLAGS.data_path, problem))
    return
  data = BENCHMARKS[name][1]
  if data and not FLAGS.data_path:
    raise app.UsageError(f"--data_path: {name} needs its data ({data}).")
  if FLAGS.tuned and not name.startswith("suite_"):
    raise app.UsageError(f"--tuned: only for suite problems, not {name}.")
  if name.startswith("suite_"):
    run_suite_problem(name[len("suite_"):], FLAGS.data_path)
  else:
    run_seeds(name, FLAGS.data_path)


if __name__ == "__main__":
  define_flags()
  app.run(main)
