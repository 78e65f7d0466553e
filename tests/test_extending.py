"""docs/extending.md's research module, outside the package: a kind of
input with two texts per example, a backbone over both, a label shape of
several labels per example and a task over it, through every command, and
its SavedModel served in a process that never imports the module."""

import json
import pathlib
import random
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from helpers import ROOT, env, run_script
from maskmodels import cli, training
from maskmodels.commands import evaluate, export, predict, train

EXTENDING = pathlib.Path(ROOT, "docs", "extending.md")
COMMANDS = {"train.py": train.COMMAND, "evaluate.py": evaluate.COMMAND,
            "predict.py": predict.COMMAND, "export.py": export.COMMAND}
# The documented run, made short for the test (a word-level encoder: the
# task compares words).
SHORT = ["--conv_filters=32", "--kernel_size=1", "--pool_size=1",
         "--gru_units=", "--pair_dim=16", "--train_steps=150",
         "--steps_per_loop=50", "--batch_size=32", "--learning_rate=0.01"]


def _block(marker, language):
  return re.search(re.escape(f"<!-- {marker}: run by tests/test_extending.py "
                             f"-->") + rf"\s*```{language}\n(.*?)```",
                   EXTENDING.read_text(), re.S).group(1)


def _write_pairs(path, count, seed):
  """Pairs of short sentences; labels: the same animal, the same action."""
  rng = random.Random(seed)
  animals = ["cat", "dog", "bird", "fish"]
  actions = ["sleeps", "runs", "eats", "sings"]
  with open(path, "w") as f:
    for _ in range(count):
      (a, v), (b, w) = [(rng.choice(animals), rng.choice(actions))
                        for _ in range(2)]
      labels = (["same_animal"] if a == b else []) + (
          ["same_action"] if v == w else [])
      f.write(json.dumps({"premise": f"the {a} {v} .",
                          "hypothesis": f"a {b} {w} here .",
                          "labels": labels}) + "\n")


def _run(command, argv, capfd):
  """A command in this process: ``(exit status, stdout, stderr)``."""
  capfd.readouterr()
  with pytest.raises(SystemExit) as exit_:
    cli.run(command, [command.name, *argv])
  out, err = capfd.readouterr()
  return exit_.value.code or 0, out, err


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  folder = tmp_path_factory.mktemp("pairs")
  (folder / "pair_research.py").write_text(_block("pair-research", "python"))
  _write_pairs(folder / "pairs_train.jsonl", 500, seed=0)
  _write_pairs(folder / "pairs_test.jsonl", 60, seed=1)
  return folder


def test_a_research_kind_and_label_shape_run_through_every_command(
    folder, capfd, monkeypatch):
  monkeypatch.chdir(folder)
  lines = _block("pair-commands", "bash").replace("\\\n", " ").splitlines()
  outputs = {}
  for line in lines:
    words = shlex.split(line)
    script, argv = words[1][len("scripts/"):], words[2:]
    code, out, err = _run(COMMANDS[script], argv + (
        SHORT if script == "train.py" else []), capfd)
    assert code == 0, (script, err[-3000:])
    outputs[script] = out
  model_dir = str(folder / "runs" / "pairs")
  saved = json.load(open(f"{model_dir}/config.json"))
  assert saved["data"]["inputs"] == "text_pair"
  assert saved["model"]["backbone"] == "pair_attention"
  assert saved["modules"] == ["pair_research"]
  summary = json.load(open(f"{model_dir}/summary.json"))
  assert summary["best_validation_f1"] > 0.5  # it learns to compare (0 untrained)
  evaluated = json.loads(outputs["evaluate.py"].splitlines()[-1])
  assert evaluated["examples"] == 60 and evaluated["f1"] == pytest.approx(
      summary["test_f1"], abs=1e-6)
  predicted = outputs["predict.py"].splitlines()
  assert len(predicted) == 60
  first = json.loads(open(folder / "pairs_test.jsonl").readline())
  labels, shown = predicted[0].split("\t")
  assert shown == f"{first['premise']} | {first['hypothesis']}"
  assert set(filter(None, labels.split(","))) <= {"same_action",
                                                  "same_animal"}

  # A process that never imports maskmodels or the module serves it.
  serving = _block("pair-serving", "python").replace(
      '"runs/pairs_export"', "sys.argv[1]")
  script = ("import json, sys\n" + serving.replace(
      "print(outputs", "print(json.dumps(sorted(m for m in sys.modules if "
      "m.startswith(('maskmodels', 'pair_research')))))\nprint(outputs") +
            "print(json.dumps(outputs['probabilities'].numpy().tolist()))\n")
  result = subprocess.run(
      [sys.executable, "-c", script, str(folder / "runs" / "pairs_export")],
      capture_output=True, text=True, env=env(), timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  printed = result.stdout.strip().splitlines()
  assert json.loads(printed[0]) == []
  run = training.load_trained(model_dir)
  want = run.server().predict([{"premise": "the cat sleeps .",
                                "hypothesis": "a cat sleeps here ."}])
  np.testing.assert_allclose(json.loads(printed[-1]),
                             [want[0]["probabilities"]], atol=1e-5)

  check_padding_invariance(run)

  # Without the module, a command says which one to import.
  refused = run_script("evaluate.py", f"--model_dir={model_dir}")
  assert refused.returncode == 2, refused.stderr[-2000:]
  assert "trained with the module(s) pair_research; pass " \
      "--import=pair_research" in refused.stderr


def check_padding_invariance(run):
  """A pair's output alone equals its output in a batch of longer pairs,
  padded on the right or on the left."""
  pairs = [{"premise": "the cat .", "hypothesis": "a dog runs ."},
           {"premise": "the fish eats a very long word list here today .",
            "hypothesis": "a bird ."},
           {"premise": "", "hypothesis": "a cat sings ."}]
  features = run.featurizer.dense({
      side: tf.constant([p[side] for p in pairs]) for side in
      ("premise", "hypothesis")})
  together = run.model(features, training=False).outputs.numpy()
  for row, pair in enumerate(pairs):
    alone = run.featurizer.dense({side: tf.constant([pair[side]])
                                  for side in ("premise", "hypothesis")})
    np.testing.assert_allclose(
        run.model(alone, training=False).outputs.numpy()[0], together[row],
        atol=1e-5)
  left = {}
  for name, ids in features.items():
    if ids.shape.rank == 2:  # move each row's tokens to the right
      ids = ids.numpy()
      left[name] = tf.constant(np.stack([np.roll(r, int((r == 0).sum()))
                                         for r in ids]))
    else:
      left[name] = ids
  np.testing.assert_allclose(run.model(left, training=False).outputs.numpy(),
                             together, atol=1e-5)
