"""maskmodels-tune: the search space, k-fold splits, pruning, a resumed
study, the test split never read, and the best settings as a flagfile."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from helpers import ROOT, TINY_FLAGS, env, run_script, write_jsonl
from maskmodels import data, tuning
from maskmodels.errors import InputError, SettingError

optuna = pytest.importorskip("optuna")

# A stand-in for maskmodels-train (no TensorFlow, so the search's own logic
# runs in seconds): it validates every 0.2 s, writing history.json as a run
# does, and its figure climbs to --quality; SIGTERM stops it after a
# checkpoint (status 75), and a rerun resumes from its last step.
FAKE_TRAIN = textwrap.dedent('''
    import json, os, signal, sys, time
    flags = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
    model_dir, quality = flags["model_dir"], float(flags["quality"])
    steps = int(flags.get("validations", "8"))
    state = os.path.join(model_dir, "state.json")
    start = json.load(open(state))["step"] if os.path.exists(state) else 0
    with open(os.path.join(model_dir, "seen.txt"), "a") as f:
      f.write(json.dumps({"start": start, "test_path": flags.get(
          "test_path"), "fold": flags.get("validation_fold")}) + "\\n")
    stopped = []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(1))
    history = {"train": [], "validation": []}
    for step in range(1, start + 1):
      history["validation"].append([step, {"accuracy": quality * step /
                                           steps}])
    for step in range(start + 1, steps + 1):
      time.sleep(0.2)
      history["validation"].append([step, {"accuracy": quality * step /
                                           steps}])
      json.dump(history, open(os.path.join(model_dir, "history.json"), "w"))
      json.dump({"step": step}, open(state, "w"))
      if stopped:
        sys.exit(75)
    json.dump({"best_validation_accuracy": quality},
              open(os.path.join(model_dir, "summary.json"), "w"))
    ''')


@pytest.fixture
def fake_train(tmp_path):
  path = tmp_path / "fake_train.py"
  path.write_text(FAKE_TRAIN)
  return [sys.executable, str(path)]


def _search(tune_dir, command, **kwargs):
  space = tuning.parse_space({"quality": {"low": 0.0, "high": 1.0}})
  settings = dict(metric="accuracy", mode="max", heartbeat=1, verbose=0,
                  prune_after=1, command=command)
  settings.update(kwargs)
  return tuning.Search(str(tune_dir), ["--test_path=never.jsonl"], space,
                       **settings)


def test_k_fold_folds_are_disjoint_and_cover_the_training_data():
  examples = data.Examples([f"text {i}" for i in range(23)], list(range(23)),
                           "data", [f"line {i + 1}" for i in range(23)])
  held = []
  for fold in range(5):
    train, validation = data.split_fold(examples, 5, fold, seed=3)
    assert not set(train.labels) & set(validation.labels)
    assert sorted(train.labels + validation.labels) == list(range(23))
    assert validation.where(0).startswith("data [fold")
    held.append(validation.labels)
  assert sorted(sum(held, [])) == list(range(23))  # each once, all of them
  assert {len(h) for h in held} <= {4, 5}
  assert data.split_fold(examples, 5, 2, seed=3)[1].labels == held[2]
  for folds, fold in ((1, 0), (24, 0), (5, 5)):
    with pytest.raises(InputError):
      data.split_fold(examples, folds, fold)
  assert tuning.folds_for(None, 499, False) == tuning.AUTO_FOLDS
  assert tuning.folds_for(None, 500, False) == 0
  assert tuning.folds_for(None, 40, True) == 0  # it has a validation file
  assert tuning.folds_for(3, 10000, False) == 3


def test_a_search_space_is_read_from_json_yaml_or_flags_and_checked(
    tmp_path):
  spec = {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
          "conv_filters": {"choices": [[64], [64, 64]]},
          "kernel_size": {"low": 3, "high": 7}}
  (tmp_path / "space.json").write_text(json.dumps(spec))
  (tmp_path / "space.yaml").write_text(
      "learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}\n"
      "conv_filters: {choices: [[64], [64, 64]]}\n"
      "kernel_size: {low: 3, high: 7}\n")
  read = [tuning.read_space(str(tmp_path / "space.json")),
          tuning.read_space(str(tmp_path / "space.yaml")),
          tuning.read_space(json.dumps(spec))]
  assert read[0] == read[1] == read[2]
  tuning.check_names(read[0])
  study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
  trial = study.ask()
  values = {d.name: d.suggest(trial) for d in read[0]}
  assert values["conv_filters"] in ((64,), (64, 64))
  assert isinstance(values["kernel_size"], int)
  assert 1e-4 <= values["learning_rate"] <= 1e-2
  for bad, message in (
      ({"learning_rate": {"low": 0.0, "high": 1.0, "log": True}}, "low > 0"),
      ({"dropout": {"low": 0.5, "high": 0.1}}, "low < high"),
      ({"dropout": {"choices": []}}, "non-empty list"),
      ({"dropout": {"lo": 0.1}}, "unknown key"), ({}, "non-empty object")):
    with pytest.raises(SettingError, match=message):
      tuning.parse_space(bad)
  with pytest.raises(SettingError, match="'conv_filter', which is no "
                     "setting"):
    tuning.check_names(tuning.parse_space({"conv_filter": {"choices": [1]}}))


def test_trials_that_fall_behind_are_pruned_and_the_test_split_never_read(
    tmp_path, fake_train):
  search = _search(tmp_path / "tune", fake_train, seed=1)
  study = search.run(trials=6)
  states = [t.state.name for t in study.trials]
  assert states.count("COMPLETE") + states.count("PRUNED") == 6
  assert "PRUNED" in states and "COMPLETE" in states
  for t in study.trials:
    run = tmp_path / "tune" / "trials" / tuning.trial_key(
        {"quality": t.params["quality"]}) / "run"
    seen = [json.loads(line) for line in open(run / "seen.txt")]
    assert all(s["test_path"] == "" for s in seen)  # never the test file
    steps = [s for s, _ in tuning.validations(str(run), "accuracy")]
    if t.state.name == "PRUNED":  # stopped before its last validation
      assert max(steps) < 8 and not (run / "summary.json").exists()
    else:
      assert max(steps) == 8
  record = search.finish(study, ["--test_path=test.jsonl"], 1.0)
  best = max(t.value for t in study.trials if t.value is not None)
  assert record["best_value"] == best and record["pruned"] >= 1
  flags = (tmp_path / "tune" / "best.flags").read_text().splitlines()
  assert flags[1:] == ["--test_path=test.jsonl",
                       f"--quality={study.best_trial.params['quality']}"]


def test_k_fold_trials_score_the_mean_of_their_folds(tmp_path, fake_train):
  search = _search(tmp_path / "tune", fake_train, folds=3, prune=False)
  study = search.run(trials=1)
  trial = study.trials[0]
  folder = tmp_path / "tune" / "trials" / tuning.trial_key(trial.params)
  folds = [json.loads(open(folder / f"fold_{k}" / "seen.txt").readline())[
      "fold"] for k in range(3)]
  assert folds == ["0", "1", "2"]
  assert trial.value == pytest.approx(trial.params["quality"])


SEARCH = textwrap.dedent('''
    import sys
    sys.path.insert(0, sys.argv[3])
    import test_tuning
    search = test_tuning._search(sys.argv[1], [sys.executable, sys.argv[2]],
                                 prune=False)
    search.run(trials=3)
    ''')


def test_an_interrupted_search_resumes_its_trial_where_it_stopped(
    tmp_path, fake_train):
  """The search is killed mid-trial; a rerun fails the silent trial, runs
  it again with the same settings (its run resumes where it stopped) and
  finishes the study."""
  tune_dir = tmp_path / "tune"
  command = [sys.executable, "-c", SEARCH, str(tune_dir), fake_train[1],
             os.path.join(ROOT, "tests")]
  first = subprocess.Popen(command, env=env(), start_new_session=True)
  deadline = time.monotonic() + 60
  while time.monotonic() < deadline:
    runs = list((tune_dir / "trials").glob("*/run/history.json")) if (
        tune_dir / "trials").exists() else []
    if runs and len(tuning.validations(str(runs[0].parent), "accuracy")) >= 3:
      break
    time.sleep(0.1)
  os.killpg(first.pid, signal.SIGKILL)  # the search and its trial's run
  first.wait()
  interrupted = runs[0].parent
  time.sleep(4.5)  # past the heartbeat's grace period
  subprocess.run(command, env=env(), check=True, timeout=120)
  study = optuna.load_study(
      study_name=tuning.STUDY, storage=f"sqlite:///{tune_dir}/study.db")
  states = [t.state.name for t in study.trials]
  assert states.count("COMPLETE") == 3 and states.count("FAIL") == 1
  starts = [json.loads(line)["start"] for line in open(interrupted /
                                                        "seen.txt")]
  assert starts[0] == 0 and starts[-1] >= 3  # resumed, not started over
  assert (interrupted / "summary.json").exists()


RESEARCH = textwrap.dedent('''
    """tune_research.py: an encoder of its own, with a setting to search."""
    import dataclasses
    import maskmodels as mm

    @mm.register_encoder("research_conv")
    class ResearchConv(mm.Configurable, mm.Encoder):
      """One masked convolution of a searchable width."""

      @dataclasses.dataclass
      class Config(mm.Settings):
        research_width: int = mm.setting(4, "research_conv: channels.",
                                         lower=1)

      def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = mm.MaskedConv1D(self.settings.research_width, 3,
                                    dtype=self.dtype_policy)

      def call(self, inputs, mask=None, training=None):
        return self.conv(inputs, mask=mask)
    ''')


def test_the_tune_command_searches_on_validation_and_writes_best_flags(
    tmp_path):
  """A real search (one trial, to be quick) over a research encoder's
  setting (``--import``), under the mirrored strategy; its trial never
  reads the test file (its run records no test split), and training with
  best.flags reads it once."""
  (tmp_path / "tune_research.py").write_text(RESEARCH)
  data_path = write_jsonl(tmp_path / "reviews.jsonl", 120, seed=3)
  test_path = write_jsonl(tmp_path / "test.jsonl", 40, seed=4)
  tune_dir = tmp_path / "tune"
  flags = [f"--tune_dir={tune_dir}", "--trials=1", "--folds=0",
           "--import=tune_research", "--encoder=research_conv",
           "--strategy=mirrored", "--data_format=jsonl",
           f"--data_path={data_path}", f"--test_path={test_path}",
           "--train_steps=4", "--steps_per_loop=2", "--warmup_steps=1",
           '--space={"learning_rate": {"low": 0.001, "high": 0.01}, '
           '"research_width": {"choices": [3, 5]}}',
           *[f for f in TINY_FLAGS
             if not f.startswith(("--conv_filters", "--gru_units"))]]
  result = run_script("tune.py", *flags, cwd=str(tmp_path))
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  assert sum(line.startswith("trial 0/1: ") for line in lines) == 1
  record = json.load(open(tune_dir / "record.json"))
  assert record["complete"] == 1 and record["folds"] == 0
  for config in tune_dir.glob("trials/*/run/config.json"):
    assert set(json.load(open(config))["data"]["digests"]) == {
        "train", "validation"}  # no test split was read
  for config in tune_dir.glob("trials/*/run/config.json"):
    written = json.load(open(config))
    assert written["model"]["encoder_config"]["research_width"] in (3, 5)
    assert written["modules"] == ["tune_research"], written["modules"]
  best = (tune_dir / "best.flags").read_text()
  assert f"--test_path={test_path}" in best and "--learning_rate=" in best
  assert "--research_width=" in best and "--import=tune_research" in best
  trained = run_script("train.py", f"--flagfile={tune_dir / 'best.flags'}",
                       f"--model_dir={tmp_path / 'final'}",
                       cwd=str(tmp_path))
  assert trained.returncode == 0, trained.stderr[-3000:]
  summary = json.load(open(tmp_path / "final" / "summary.json"))
  assert summary["test_examples"] == 40
  assert np.isfinite(summary["test_accuracy"])
