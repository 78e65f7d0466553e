"""The command-line tools, run as a user runs them, in fresh processes.

Every command started here goes through ``helpers.run_script``, which also
fails a command that has not exited within ``EXIT_BOUND`` seconds of its
last line of output. What a command computes from a run (evaluate's
metrics, predict's lines, a resume) is checked in-process, as its ``main``
does it. Flag parsing and validation are tested in-process in
``test_config.py``.
"""

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from absl import flags

from helpers import (EXIT_BOUND, ROOT, TINY_FLAGS, TINY_RUN, env, run_script,
                     write_jsonl)
from maskmodels.training import ModelDirectory


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """The README's main command, short: mirrored, embedded data, the test
  pass; in a fresh process."""
  model_dir = str(tmp_path_factory.mktemp("cli") / "run")
  result = run_script("train.py", f"--model_dir={model_dir}",
                      "--strategy=mirrored", *TINY_RUN)
  return model_dir, result


def test_train_prints_plain_progress_and_a_result_then_exits(trained):
  model_dir, trained = trained
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert trained.exit_seconds < EXIT_BOUND
  lines = trained.stdout.splitlines()
  assert lines[-1].startswith("Done: 12 steps") and (
      "held-out test accuracy" in lines[-1])
  # In a log (not a terminal): one plain line per loop, no escape codes.
  assert "\x1b" not in trained.stdout and "\r" not in trained.stdout
  steps = [line for line in lines if line.startswith("step ")]
  assert [line.split()[1] for line in steps] == ["4/12", "8/12", "12/12"]
  assert all(" - loss: " in line and " - ex/s: " in line for line in steps)
  assert any(line.startswith("examples 2000/2000") for line in lines)
  summary = json.loads(open(os.path.join(model_dir, "summary.json")).read())
  assert summary["test_examples"] == 2000
  # A quiet start: TensorFlow's CUDA probing and build notes are filtered.
  for noise in ("cuInit", "cuda drivers", "oneDNN custom operations",
                "absl::InitializeLog", "softmax", "oneDNN supports DT_"):
    assert noise not in trained.stderr, trained.stderr[:2000]


def test_evaluate_predict_and_a_resumed_run_read_the_run(
    trained, tmp_path, caplog, parsed_flags):
  """Evaluate, predict and a resumed training of the main command's run,
  in-process, as the commands' ``main`` does (the commands' fresh
  processes, and their exits, are run by the README's research commands in
  ``test_readme.py``)."""
  # pylint: disable=import-outside-toplevel
  from maskmodels import training
  from maskmodels.commands import evaluate, predict
  model_dir, _ = trained
  summary = json.loads(open(os.path.join(model_dir, "summary.json")).read())
  config = ModelDirectory(model_dir).load_config()
  metrics = training.evaluate(model_dir, evaluate.examples_to_evaluate(config))
  assert metrics["examples"] == 2000
  assert metrics["accuracy"] == pytest.approx(summary["test_accuracy"],
                                              abs=1e-6)

  inputs = predict.read_inputs(["A superb film.", ""])
  serve, describe, _ = predict.server_and_kind(model_dir)
  lines = [describe(given, row) for given, row in zip(inputs, serve(
      inputs, 64))]
  assert len(lines) == 2
  label, probability, text = lines[0].split("\t")
  assert label in ("neg", "pos") and 0.5 <= float(probability) <= 1.0
  assert text == "A superb film."
  # Inputs come one per line on stdin when no argument gives them.
  assert predict.read_inputs([], stdin=io.StringIO(
      "one review\nanother review\n")) == ["one review", "another review"]
  # Bytes on stdin that are not UTF-8 are replaced, as the readers do.
  assert predict.read_inputs([], stdin=io.BytesIO(
      b"caf\xe9 good\r\nfine\n")) == ["caf\ufffd good", "fine"]

  # The run resumed from a flagfile, in-process as the command parses it.
  flagfile = tmp_path / "run.flags"
  flagfile.write_text("\n".join([f"--model_dir={model_dir}"] + TINY_RUN))
  config = parsed_flags(f"--flagfile={flagfile}", "--train_steps=16")
  assert flags.FLAGS.model_dir == model_dir
  with caplog.at_level(logging.INFO, logger="absl"):
    resumed = training.train_and_evaluate(config, model_dir,
                                          tf.distribute.get_strategy())
  assert resumed["steps"] == 16
  assert "Resumed from" in caplog.text and "at step 12." in caplog.text


def test_evaluate_reads_a_file_with_its_own_columns(trained, tmp_path):
  model_dir, _ = trained
  rows = [json.loads(line) for line in open(write_jsonl(
      tmp_path / "dev.jsonl", 40, 2))]
  dev = tmp_path / "dev.tsv"
  dev.write_text("content\tsentiment\n" + "".join(
      f"{r['text']}\t{r['label']}\n" for r in rows))
  # In-process, what the command reads for those flags; then the command
  # itself on a column the file does not have: a one-line error, status 1.
  from maskmodels.commands import evaluate  # pylint: disable=import-outside-toplevel
  examples = evaluate.examples_to_evaluate(
      ModelDirectory(model_dir).load_config(), "tsv", str(dev), "test",
      "content", "sentiment")
  assert len(examples) == 40 and examples.texts[0] == rows[0]["text"]
  assert ModelDirectory(model_dir).load_config().data.label_names == [
      "neg", "pos"]
  wrong = run_script("evaluate.py", f"--model_dir={model_dir}",
                     "--data_format=tsv", f"--data_path={dev}")
  assert wrong.returncode == 1
  assert ("error: column 'text' not found in" in wrong.stderr and
          "columns ['content', 'sentiment']" in wrong.stderr)
  assert "Traceback" not in wrong.stderr


def test_input_errors_show_their_traceback_on_request_and_bugs_always(
    tmp_path, capsys):
  from maskmodels import cli  # pylint: disable=import-outside-toplevel
  from maskmodels.errors import InputError  # pylint: disable=import-outside-toplevel

  def bad_input(path):
    raise InputError(f"{path} is not a maskmodels model directory")

  with pytest.raises(SystemExit) as exit_:
    cli.guarded(bad_input)("runs/x")
  assert exit_.value.code == 1
  assert capsys.readouterr().err == (
      "error: runs/x is not a maskmodels model directory\n")
  with pytest.raises(InputError, match="is not a maskmodels model"):
    cli.guarded(bad_input, lambda: True)("runs/x")  # --traceback
  with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
    cli.guarded(lambda path: 1 / 0)("runs/x")


@pytest.mark.slow
def test_a_bug_in_research_code_shows_its_traceback_from_the_command(
    tmp_path):
  (tmp_path / "buggy.py").write_text(
      "import maskmodels as mm\n\n"
      "@mm.register_encoder('buggy')\n"
      "class Buggy(mm.Encoder):\n"
      "  def __init__(self, **kwargs):\n"
      "    super().__init__(**kwargs)\n"
      "    raise ValueError('a bug in research code')\n")
  result = run_script("train.py", f"--model_dir={tmp_path / 'run'}",
                      "--import=buggy", "--encoder=buggy",
                      "--train_steps=2", cwd=str(tmp_path))
  assert result.returncode != 0
  assert "Traceback" in result.stderr and "a bug in research code" in (
      result.stderr)
  assert 'buggy.py", line 7' in result.stderr


@pytest.mark.slow
def test_sigterm_saves_the_current_step_and_the_rerun_resumes_there(tmp_path):
  model_dir = str(tmp_path / "run")
  args = (*TINY_FLAGS, "--steps_per_loop=2", "--warmup_steps=2",
          "--checkpoint_every_steps=1000", "--train_steps=200")
  process = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
       f"--model_dir={model_dir}", *args], stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
  deadline = time.time() + 300
  while not os.path.exists(os.path.join(model_dir, "train")):
    assert time.time() < deadline and process.poll() is None
    time.sleep(0.2)
  time.sleep(2)  # a few loops of steps, well before any interval checkpoint
  process.send_signal(signal.SIGTERM)
  _, err = process.communicate(timeout=300)
  assert process.returncode == 75, err[-3000:]
  assert "Stopped by SIGTERM at step" in err
  stopped_at = int(err.split("Stopped by SIGTERM at step ")[1].split(";")[0])
  assert 0 < stopped_at < 200
  # The rerun takes two more steps than were saved (all the resume needs).
  resumed = run_script("train.py", f"--model_dir={model_dir}", *args,
                       f"--train_steps={stopped_at + 2}")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"at step {stopped_at}." in resumed.stderr  # "Resumed from ..."
  assert f"Done: {stopped_at + 2} steps" in resumed.stdout
