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
  """Adds the machine, version, commit and date to ``record`` and appends
  it to ``path``; returns the full record."""
  full = dict(record, **machine(), version=maskmodels.__version__,
              commit=commit(), date=datetime.date.today().isoformat())
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "a") as f:
    f.write(json.dumps(full, sort_keys=True) + "\n")
  return full
