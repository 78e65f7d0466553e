"""The absl scripts, run as a user runs them: train -> evaluate -> predict."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--embedding_dim=16", "--conv_filters=16", "--gru_units=8",
        "--vocab_size=400", "--max_len=96", "--batch_size=32",
        "--train_steps=12", "--steps_per_loop=4", "--warmup_steps=2",
        "--checkpoint_every_steps=4"]


def run(script, *args, stdin=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script),
                         *args], capture_output=True, text=True, env=env,
                        input=stdin, timeout=600, cwd=ROOT)


def test_train_evaluate_predict(tmp_path):
  model_dir = str(tmp_path / "run")
  trained = run("train.py", f"--model_dir={model_dir}", "--strategy=mirrored",
                *TINY)
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert "held-out test accuracy" in trained.stdout
  assert "12/12" in trained.stdout  # the progress bar reached the end
  summary = json.loads(open(os.path.join(model_dir, "summary.json")).read())
  assert summary["test_examples"] == 2000

  evaluated = run("evaluate.py", f"--model_dir={model_dir}")
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
  assert metrics["examples"] == 2000
  assert metrics["accuracy"] == pytest.approx(summary["test_accuracy"],
                                              abs=1e-6)

  predicted = run("predict.py", f"--model_dir={model_dir}", "A superb film.",
                  "")
  assert predicted.returncode == 0, predicted.stderr[-3000:]
  lines = predicted.stdout.strip("\n").splitlines()
  assert len(lines) == 2
  label, probability, text = lines[0].split("\t")
  assert label in ("neg", "pos") and 0.5 <= float(probability) <= 1.0
  assert text == "A superb film."
  piped = run("predict.py", f"--model_dir={model_dir}",
              stdin="one review\nanother review\n")
  assert len(piped.stdout.strip().splitlines()) == 2

  flagfile = tmp_path / "run.flags"
  flagfile.write_text("\n".join([f"--model_dir={model_dir}"] + TINY))
  resumed = run("train.py", f"--flagfile={flagfile}")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resumed from" in resumed.stderr


@pytest.mark.parametrize("flag,message", [
    ("--batch_size=-4", "batch_size"),
    ("--max_len=0", "max_len"),
    ("--strategy=horovod", "horovod"),
    ("--model=transformer", "'transformer' is not registered; choose one of "
     "classifier"),
    ("--pooling=median", "choose one of attention, last, max, mean"),
    ("--conv_filters=a,b", "expected comma-separated integers"),
])
def test_bad_flags_name_the_flag_and_value(flag, message, tmp_path):
  result = run("train.py", f"--model_dir={tmp_path}", flag)
  assert result.returncode != 0
  assert message in result.stderr
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize("script,args,message", [
    ("evaluate.py", [], "is not a maskmodels model directory"),
    ("predict.py", ["some text"], "is not a maskmodels model directory"),
    ("train.py", ["--data_format=aclimdb", "--data_path=/no/such/folder"],
     "Data folder not found: /no/such/folder"),
])
def test_bad_paths_are_one_line_errors(tmp_path, script, args, message):
  result = run(script, f"--model_dir={tmp_path / 'nothing'}", *args)
  assert result.returncode == 1
  assert "error: " in result.stderr and message in result.stderr
  assert "Traceback" not in result.stderr


def test_sigterm_saves_the_current_step_and_the_rerun_resumes_there(tmp_path):
  import signal
  import time
  model_dir = str(tmp_path / "run")
  args = [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
          f"--model_dir={model_dir}", "--checkpoint_every_steps=1000",
          "--steps_per_loop=2", "--train_steps=400",
          *[a for a in TINY if not a.startswith(("--train_steps",
                                                  "--steps_per_loop",
                                                  "--checkpoint_every"))]]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  process = subprocess.Popen(args, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env,
                             cwd=ROOT)
  deadline = time.time() + 300
  while not os.path.exists(os.path.join(model_dir, "train")):
    assert time.time() < deadline and process.poll() is None
    time.sleep(0.5)
  time.sleep(3)  # a few loops of steps, well before any interval checkpoint
  process.send_signal(signal.SIGTERM)
  _, err = process.communicate(timeout=300)
  assert process.returncode == 75, err[-3000:]
  assert "Stopped by SIGTERM at step" in err
  stopped_at = int(err.split("Stopped by SIGTERM at step ")[1].split(";")[0])
  assert 0 < stopped_at < 400
  resumed = run("train.py", *args[2:])
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"at step {stopped_at}." in resumed.stderr  # "Resumed from ..."


@pytest.mark.parametrize("flagfile", sorted(
    name for name in os.listdir(os.path.join(ROOT, "configs"))
    if name.endswith(".flags")))
def test_checked_in_flagfiles_are_valid(flagfile, tmp_path):
  # Every flag parses and validates; the run then stops at the missing data.
  result = run("train.py", f"--flagfile=configs/{flagfile}",
               "--data_path=/no/such/aclImdb", f"--model_dir={tmp_path}")
  assert result.returncode == 1, result.stderr[-3000:]
  assert "Data folder not found: /no/such/aclImdb" in result.stderr
