"""Benchmark records: each run appends one JSON line to results/records.jsonl.

A record names the benchmark, the command and config, the seed, the metric
and its value, the wall time, the CPU and its vector extensions, the
maskmodels version and commit, and the date. The tables in README.md,
docs/results.md and docs/performance.md are generated from these records
(``python scripts/make_docs.py``), never written by hand.
"""

import datetime
import json
import os
import subprocess

import maskmodels

from machine import cpu_description  # benchmarks/machine.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = os.path.join(ROOT, "results", "records.jsonl")


def commit():
  """The checkout's commit (``abc1234``, ``+`` if it has changes), or ""."""
  try:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True, check=True
                          ).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--",
                            "maskmodels", "configs", "benchmarks"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return head + ("+" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return ""


def machine():
  """The CPU fields of a record."""
  described = cpu_description()
  return {"cpu": described["cpu"], "cores": described["cores"],
          "extensions": described["extensions"]}


def append(record, path=RECORDS):
  """Adds the machine, version, commit (unless the record names the one
  its run started from) and date to ``record`` and appends it to
  ``path``; returns the full record."""
  full = dict(dict(commit=commit()), **record, **machine(),
              version=maskmodels.__version__,
              date=datetime.date.today().isoformat())
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "a") as f:
    f.write(json.dumps(full, sort_keys=True) + "\n")
  return full


def define_flag():
  """Defines ``--records``: where a benchmark appends its records."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  flags.DEFINE_string("records", RECORDS, "Records file this run appends "
                      "to ('' records nothing).")


def shown_command(argv):
  """The command line as recorded: data paths as placeholders."""
  import shlex  # pylint: disable=import-outside-toplevel
  script = "python benchmarks/" + os.path.basename(argv[0])
  args = [arg.split("=", 1)[0] + "=<data>" if arg.split("=", 1)[0].endswith(
      "data_path") else arg for arg in argv[1:]
          if not arg.startswith("--records")]
  return " ".join([script] + [shlex.quote(a) for a in args])


def append_run(benchmark, rows, argv, path=RECORDS):
  """Appends one record per measured configuration of a throughput run.

  Args:
    benchmark: the benchmark's name (its script's).
    rows: dicts with ``config``, ``metric``, ``value`` (a median), and
      optionally ``rounds`` (every round's value) and ``ratio``.
    argv: the command line (``sys.argv``).
    path: the records file ("" records nothing).
  """
  if not path:
    return
  run = datetime.datetime.now().isoformat(timespec="seconds")
  for row in rows:
    append(dict(row, benchmark=benchmark, command=shown_command(argv),
                run=run), path)
