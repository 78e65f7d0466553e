"""Every benchmark still runs: tiny settings on tiny data, in a fresh
process; each prints the CPU first and then JSON lines of figures."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT, env
from maskmodels.data import synthetic


@pytest.fixture(scope="module")
def imdb_root(tmp_path_factory):
  """An aclImdb-shaped folder of synthetic reviews, 40 per class and
  split."""
  root = tmp_path_factory.mktemp("aclImdb")
  for split, seed in (("train", 1), ("test", 2)):
    texts, labels = synthetic.generate_reviews(80, seed=seed)
    for i, (text, label) in enumerate(zip(texts, labels)):
      folder = root / split / ["neg", "pos"][label]
      folder.mkdir(parents=True, exist_ok=True)
      (folder / f"{i}_1.txt").write_text(text)
  return str(root)


def _run(script, *args, records=""):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", script), *args] + (
          [f"--records={records}"] if records is not None else []),
      capture_output=True, text=True, env=env(), cwd=ROOT, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [json.loads(line) for line in result.stdout.splitlines()
          if line.startswith("{")]
  assert rows and "cpu" in rows[0] and "extensions" in rows[0], rows[:1]
  return rows[1:]


@pytest.mark.slow
@pytest.mark.parametrize("script,args", [
    ("gru_kernel.py", ["--rounds=1", "--calls=1", "--steps=2",
                       "--data_path={imdb}"]),
    ("conv_gradient.py", ["--batch_size=2", "--steps=9", "--channels=4",
                          "--rounds=1", "--calls=1"]),
    ("dropout.py", ["--batch_size=2", "--steps=9", "--channels=4",
                    "--rounds=1", "--calls=1"]),
    ("tagging_throughput.py", ["--steps=2", "--rounds=1"]),
    ("training_throughput.py", ["--data_path={imdb}", "--examples=120",
                                "--steps=2", "--rounds=1"]),
    ("input_pipeline.py", ["--data_path={imdb}", "--vocab_size=200"]),
    ("textbook_imdb.py", ["--data_path={imdb}", "--epochs=1",
                          "--vocab_size=200"]),
    ("exit_delay.py", ["--runs=2", "--", sys.executable, "-c",
                       "print('run {{i}}')"]),
    ("step_profile.py", ["--steps=2", "--train_steps=4", "--steps_per_loop=2",
                         "--gru_units=8", "--conv_filters=8"]),
    ("g2p_throughput.py", ["--data_path={cmudict}", "--train_steps=50",
                           "--words=20", "--rounds=1", "--batch_size=8"]),
])
def test_benchmark_runs_and_prints_figures(imdb_root, script, args,
                                           tmp_path):
  records = str(tmp_path / "records.jsonl")
  cmudict = tmp_path / "cmudict"  # the embedded sample as a split folder
  cmudict.mkdir()
  for split in ("train", "test"):
    shutil.copy(os.path.join(ROOT, "maskmodels", "data",
                             f"cmudict_sample_{split}.txt.gz"),
                cmudict / f"sample_{split}.txt.gz")
  rows = _run(script, *[a.format(imdb=imdb_root, cmudict=cmudict)
                        for a in args],
              records=None if script == "exit_delay.py" else records)
  assert rows
  if script != "exit_delay.py":  # every figure is also a record
    with open(records) as f:
      written = [json.loads(line) for line in f]
    assert written and all(
        r["benchmark"] == script[:-3] and "value" in r and r["cpu"] and
        "extensions" in r and r["version"] for r in written), written
  numbers = [v for row in rows for v in row.values()
             if isinstance(v, (int, float))]
  assert numbers, rows  # some figure beside the CPU line


def test_accuracy_records_every_metric_of_a_run(tmp_path):
  """A G2P run is a word error record and a phone error record, each with
  the run's fields and the machine's."""
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  try:
    import accuracy  # pylint: disable=import-outside-toplevel,import-error
    import records  # pylint: disable=import-outside-toplevel,import-error
  finally:
    sys.path.pop(0)
  summary = {"test_sequence_error_rate": 0.3, "test_token_error_rate": 0.07}
  path = str(tmp_path / "records.jsonl")
  for row in accuracy.run_records("cmudict_seq2seq", summary,
                                  dict(seed=4, commit="abc", split="test")):
    records.append(row, path)
  with open(path) as f:
    written = [json.loads(line) for line in f]
  assert [(r["benchmark"], r["metric"], r["value"]) for r in written] == [
      ("cmudict_seq2seq", "test_sequence_error_rate", 0.3),
      ("cmudict_seq2seq_phones", "test_token_error_rate", 0.07)]
  assert all(r["seed"] == 4 and r["commit"] == "abc" and r["cpu"]
             for r in written)


@pytest.mark.slow  # maskmodels-tune replaces it (tests/test_tuning.py)
def test_validation_search_scores_candidates_on_validation_only(tmp_path):
  """The settings search runs each candidate per seed with no test split
  read, and names the candidate of the lowest mean validation loss."""
  tiny = ("--train_steps=4 --steps_per_loop=2 --embedding_dim=8 "
          "--conv_filters=8 --gru_units=8 --batch_size=8")
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", "validation_search.py"),
       "--benchmark=default", "--seeds=0", f"--work_dir={tmp_path}",
       f"--candidate=small: {tiny}",
       f"--candidate=wider: {tiny} --gru_units=12"],
      capture_output=True, text=True, env=env(), cwd=ROOT, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [json.loads(line) for line in result.stdout.splitlines()
          if line.startswith("{")]
  assert [r.get("candidate") for r in rows[:2]] == ["small", "wider"]
  assert all(r["seeds"] == 1 and "loss_sd" in r for r in rows[:2]), rows
  assert rows[2]["lowest_validation_loss"] == min(
      rows[:2], key=lambda r: r["loss"])["candidate"]
  for run in os.listdir(tmp_path / "default"):
    with open(tmp_path / "default" / run / "summary.json") as f:
      summary = json.load(f)
    assert not any(key.startswith("test_") for key in summary), summary
