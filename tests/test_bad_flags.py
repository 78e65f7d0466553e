"""Every flag of every command, given a bad value, is one line on stderr
naming the flag, the value and what is allowed; exit status 2; nothing
written.

Each command runs its cases in one process of its own (``flag_driver.py``,
stderr captured at its file descriptor, as a user sees it): the wrong type,
out of bounds, an unknown name, for every typed flag its settings declare,
and a path, a column or a split that names nothing for every string flag.
A new flag without a case fails the coverage check.
"""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from helpers import ROOT, env, write_jsonl
from maskmodels import training

COMMANDS = ("train", "evaluate", "predict", "export")


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
  """A data file, a run trained on it, and a folder that is no SavedModel."""
  root = tmp_path_factory.mktemp("flags")
  data = write_jsonl(root / "reviews.jsonl", 120, seed=3)
  model_dir = str(root / "trained")
  config = training.ExperimentConfig.create(
      data_format="jsonl", data_path=data, validation_fraction=0.2,
      embedding_dim=8, conv_filters=[8], kernel_size=[3], gru_units=[4],
      vocab_size=200, max_len=64, batch_size=16, train_steps=2,
      steps_per_loop=2, warmup_steps=1)
  training.train_and_evaluate(config, model_dir, tf.distribute.get_strategy())
  occupied = root / "occupied"
  occupied.mkdir()
  (occupied / "notes.txt").write_text("mine")
  return dict(root=str(root), data=data, model_dir=model_dir,
              occupied=str(occupied))


def contexts(setting):
  """Per command: the flags every case starts from, and the string flags'
  bad values ``(flag, value, the flags that make it count)``."""
  root, data, model_dir = (setting[k] for k in ("root", "data",
                                                "model_dir"))
  jsonl = ["--data_format=jsonl", f"--data_path={data}"]
  return {
      "train": {
          "base": [f"--model_dir={root}/train/m{{case}}", "--train_steps=1",
                   "--embedding_dim=8", "--conv_filters=8", "--gru_units=4"],
          "strings": [
              ["model_dir", "", []],
              ["data_path", "/no/such/data.jsonl", ["--data_format=jsonl"]],
              # A real file, but the embedded data's format: never ignored.
              ["data_path", data, []],
              ["validation_path", "/no/such/dev.jsonl", []],
              ["test_path", "/no/such/test.jsonl", []],
              ["train_split", "nosuch", []],
              ["validation_split", "nosuch", []],
              ["test_split", "nosuch", []],
              ["text_column", "nosuch", jsonl],
              ["label_column", "nosuch", jsonl],
              ["validation_text_column", "nosuch",
               jsonl + [f"--validation_path={data}"]],
              ["validation_label_column", "nosuch",
               jsonl + [f"--validation_path={data}"]],
              ["test_text_column", "nosuch", jsonl + [f"--test_path={data}"]],
              ["test_label_column", "nosuch",
               jsonl + [f"--test_path={data}"]],
              ["tpu", "grpc://10.0.0.1:8470", []],
          ]},
      "evaluate": {
          "base": [f"--model_dir={model_dir}"],
          "strings": [
              ["model_dir", "", []],
              ["model_dir", "/no/such/run", []],
              ["data_path", "/no/such/data.jsonl", []],
              ["split", "nosuch", ["--data_format=default"]],
              ["text_column", "nosuch", []],
              ["label_column", "nosuch", []],
          ]},
      "predict": {
          "base": [f"--model_dir={model_dir}"],
          "strings": [
              ["model_dir", "", []],
              ["model_dir", "/no/such/run", []],
              ["input", "/no/such/inputs.txt", []],
              ["data_path", "/no/such/series.ts", ["--data_format=ts"]],
          ]},
      "export": {
          "base": [f"--model_dir={model_dir}",
                   f"--export_dir={root}/export/e{{case}}"],
          "strings": [
              ["model_dir", "", []],
              ["model_dir", "/no/such/run", []],
              ["export_dir", "", []],
              ["export_dir", setting["occupied"], []],
          ]},
  }


def snapshot(folder):
  found = {}
  for directory, _, files in os.walk(folder):
    for name in files:
      with open(os.path.join(directory, name), "rb") as f:
        found[os.path.relpath(os.path.join(directory, name), folder)] = (
            f.read())
  return found


@pytest.fixture(scope="module")
def reports(setting):
  """Every command's cases, run in one process (flag_driver.py)."""
  before = snapshot(setting["model_dir"])
  process = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tests", "flag_driver.py"),
       json.dumps(contexts(setting))], capture_output=True, text=True,
      env=env(), cwd=setting["root"], stdin=subprocess.DEVNULL, timeout=600)
  assert process.returncode == 0, process.stderr[-3000:]
  return json.loads(process.stdout.strip().splitlines()[-1]), before


@pytest.mark.parametrize("command", COMMANDS)
def test_every_bad_flag_value_is_one_line_exit_2_and_writes_nothing(
    command, setting, reports):
  report, before = reports[0][command], reports[1]
  problems = []
  for case in report["results"]:
    lines = case["stderr"].strip().splitlines()
    line = lines[0] if lines else ""
    wanted = (case["code"] == 2 and len(lines) == 1 and
              line.startswith("error: ") and f"--{case['flag']}" in line and
              case["value"] in line and
              ("expected" in line or "required" in line))
    if not wanted:
      problems.append(f"{' '.join(case['argv'])}: exit {case['code']}, "
                      f"stderr {case['stderr'][-600:]!r}")
  assert not problems, "\n".join(problems)
  covered = {case["flag"] for case in report["results"]}
  assert set(report["flags"]) <= covered, sorted(set(report["flags"]) -
                                                  covered)
  # Nothing written: no model or export folder, the trained run unchanged.
  assert not os.path.exists(os.path.join(setting["root"], command))
  assert snapshot(setting["model_dir"]) == before
  assert os.listdir(setting["occupied"]) == ["notes.txt"]
