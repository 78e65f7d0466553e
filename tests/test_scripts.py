"""The command-line tools, run as a user runs them, in fresh processes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, TINY_FLAGS, env, run_script, write_jsonl

TINY = TINY_FLAGS + ["--train_steps=12", "--steps_per_loop=4",
                     "--warmup_steps=2", "--checkpoint_every_steps=4"]


def test_train_evaluate_predict(tmp_path):
  model_dir = str(tmp_path / "run")
  trained = run_script("train.py", f"--model_dir={model_dir}",
                       "--strategy=mirrored", *TINY)
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert "held-out test accuracy" in trained.stdout
  assert "12/12" in trained.stdout  # the progress bar reached the end
  assert "2000/2000" in trained.stdout  # the test pass shows progress
  summary = json.loads(open(os.path.join(model_dir, "summary.json")).read())
  assert summary["test_examples"] == 2000
  # A quiet start: TensorFlow's CUDA probing and build notes are filtered.
  for noise in ("cuInit", "cuda drivers", "oneDNN custom operations",
                "absl::InitializeLog", "softmax", "oneDNN supports DT_"):
    assert noise not in trained.stderr, trained.stderr[:2000]

  evaluated = run_script("evaluate.py", f"--model_dir={model_dir}")
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
  assert metrics["examples"] == 2000
  assert metrics["accuracy"] == pytest.approx(summary["test_accuracy"],
                                              abs=1e-6)

  predicted = run_script("predict.py", f"--model_dir={model_dir}",
                         "A superb film.", "")
  assert predicted.returncode == 0, predicted.stderr[-3000:]
  lines = predicted.stdout.strip("\n").splitlines()
  assert len(lines) == 2
  label, probability, text = lines[0].split("\t")
  assert label in ("neg", "pos") and 0.5 <= float(probability) <= 1.0
  assert text == "A superb film."
  piped = run_script("predict.py", f"--model_dir={model_dir}",
                     stdin="one review\nanother review\n")
  assert len(piped.stdout.strip().splitlines()) == 2

  flagfile = tmp_path / "run.flags"
  flagfile.write_text("\n".join([f"--model_dir={model_dir}"] + TINY))
  resumed = run_script("train.py", f"--flagfile={flagfile}")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resumed from" in resumed.stderr


def test_train_dev_and_test_files_by_one_command(tmp_path):
  """GLUE-style train.tsv / dev.tsv / test.tsv, dev with other columns."""
  def write_tsv(name, count, seed, text, label):
    rows = [json.loads(line) for line in open(write_jsonl(
        tmp_path / f"{name}.jsonl", count, seed))]
    path = tmp_path / f"{name}.tsv"
    path.write_text(f"{text}\t{label}\n" + "".join(
        f"{r['text']}\t{r['label']}\n" for r in rows))
    return str(path)

  train = write_tsv("train", 200, 1, "sentence", "label")
  dev = write_tsv("dev", 40, 2, "content", "sentiment")
  test = write_tsv("test", 60, 3, "sentence", "label")
  model_dir = str(tmp_path / "run")
  result = run_script(
      "train.py", f"--model_dir={model_dir}", "--data_format=tsv",
      f"--data_path={train}", "--text_column=sentence",
      f"--validation_path={dev}", "--validation_text_column=content",
      "--validation_label_column=sentiment", f"--test_path={test}", *TINY)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.load(open(os.path.join(model_dir, "summary.json")))
  assert (summary["train_examples"], summary["validation_examples"],
          summary["test_examples"]) == (200, 40, 60)
  evaluated = run_script("evaluate.py", f"--model_dir={model_dir}",
                         f"--data_path={dev}", "--text_column=content",
                         "--label_column=sentiment")
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  assert json.loads(evaluated.stdout.splitlines()[-1])["examples"] == 40
  wrong = run_script("evaluate.py", f"--model_dir={model_dir}",
                     f"--data_path={dev}")
  assert wrong.returncode == 1
  assert ("error: Column 'sentence' not found in" in wrong.stderr and
          "columns are ['content', 'sentiment']" in wrong.stderr)


@pytest.mark.parametrize("flags,message", [
    ("--batch_size=-4", "batch_size"),
    ("--max_len=0", "max_len"),
    ("--strategy=horovod", "horovod"),
    ("--model=transformer", "model 'transformer' is not registered; choose "
     "one of classifier"),
    ("--pooling=median", "choose one of attention, last, max, mean"),
    ("--conv_filters=a,b", "expected comma-separated int values"),
    ("--encoder_config={\"conv_filter\": 4}", "conv_filter is not a setting "
     "of encoder 'conv_gru'; its settings: conv_filters, kernel_size"),
    (["--encoder=unmasked_conv_gru", "--strides=2"], "--strides is a setting of "
     "encoder 'conv_gru', which this run does not use"),
    ("--import=no_such_module", "--import=no_such_module: no module named"),
])
def test_bad_flags_name_the_flag_and_value(flags, message, tmp_path):
  flags = [flags] if isinstance(flags, str) else flags
  result = run_script("train.py", f"--model_dir={tmp_path}", *flags)
  assert result.returncode != 0
  assert message in result.stderr
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize("script,args,message", [
    ("evaluate.py", [], "is not a maskmodels model directory"),
    ("predict.py", ["some text"], "is not a maskmodels model directory"),
    ("export.py", ["--export_dir=x"], "is not a maskmodels model directory"),
    ("train.py", ["--data_format=aclimdb", "--data_path=/no/such/folder"],
     "Data folder not found: /no/such/folder"),
])
def test_bad_paths_are_one_line_errors_unless_traceback(tmp_path, script,
                                                        args, message):
  result = run_script(script, f"--model_dir={tmp_path / 'nothing'}", *args)
  assert result.returncode == 1
  assert "error: " in result.stderr and message in result.stderr
  assert "Traceback" not in result.stderr
  traced = run_script(script, f"--model_dir={tmp_path / 'nothing'}", *args,
                      "--traceback")
  assert traced.returncode != 0 and "Traceback" in traced.stderr


def test_a_bug_in_research_code_keeps_its_traceback(tmp_path):
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


def _start_training(model_dir, *extra):
  return subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
       f"--model_dir={model_dir}", *TINY_FLAGS, "--steps_per_loop=2",
       "--warmup_steps=2", *extra],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
      cwd=ROOT)


def _wait_for(path, process, timeout=300):
  deadline = time.time() + timeout
  while not os.path.exists(path):
    assert time.time() < deadline and process.poll() is None
    time.sleep(0.2)


def test_sigterm_saves_the_current_step_and_the_rerun_resumes_there(tmp_path):
  model_dir = str(tmp_path / "run")
  args = ("--checkpoint_every_steps=1000", "--train_steps=400")
  process = _start_training(model_dir, *args)
  _wait_for(os.path.join(model_dir, "train"), process)
  time.sleep(3)  # a few loops of steps, well before any interval checkpoint
  process.send_signal(signal.SIGTERM)
  _, err = process.communicate(timeout=300)
  assert process.returncode == 75, err[-3000:]
  assert "Stopped by SIGTERM at step" in err
  stopped_at = int(err.split("Stopped by SIGTERM at step ")[1].split(";")[0])
  assert 0 < stopped_at < 400
  resumed = run_script("train.py", f"--model_dir={model_dir}", *TINY_FLAGS,
                       "--steps_per_loop=2", "--warmup_steps=2", *args)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"at step {stopped_at}." in resumed.stderr  # "Resumed from ..."


def test_a_second_run_on_a_directory_in_use_is_refused(tmp_path):
  model_dir = str(tmp_path / "run")
  first = _start_training(model_dir, "--train_steps=2000")
  _wait_for(os.path.join(model_dir, "train"), first)
  second = run_script("train.py", f"--model_dir={model_dir}", *TINY)
  first.kill()  # SIGKILL: the kernel releases its lock
  first.communicate(timeout=60)
  assert second.returncode == 1
  assert f"error: {model_dir} is in use by a running training (pid " \
      f"{first.pid} on" in second.stderr
  # The killed run's lock file stays behind, and blocks nothing.
  assert os.path.exists(os.path.join(model_dir, ".lock"))
  again = run_script("train.py", f"--model_dir={model_dir}", *TINY)
  assert again.returncode == 0, again.stderr[-3000:]


@pytest.mark.parametrize("flagfile", sorted(
    name for name in os.listdir(os.path.join(ROOT, "configs"))
    if name.endswith(".flags")))
def test_checked_in_flagfiles_are_valid(flagfile, tmp_path):
  # Every flag parses and validates; the run then stops at the missing data.
  result = run_script("train.py", f"--flagfile=configs/{flagfile}",
                      "--data_path=/no/such/aclImdb", f"--model_dir={tmp_path}")
  assert result.returncode == 1, result.stderr[-3000:]
  assert "Data folder not found: /no/such/aclImdb" in result.stderr


def test_naive_bayes_weight_benchmark_matches_the_model_s_own_output(
    tmp_path):
  model_dir = str(tmp_path / "run")
  trained = run_script("train.py", f"--model_dir={model_dir}", *TINY,
                       "--naive_bayes_buckets=4099", "--naive_bayes_weight=2")
  assert trained.returncode == 0, trained.stderr[-3000:]
  summary = json.loads(open(os.path.join(model_dir, "summary.json")).read())
  result = subprocess.run(
      [sys.executable,
       os.path.join(ROOT, "benchmarks", "naive_bayes_weight.py"),
       f"--model_dir={model_dir}", "--test", "--weights=0,2"],
      capture_output=True, text=True, env=env(), timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [json.loads(line) for line in result.stdout.splitlines()
          if line.startswith("{")]
  assert rows[0]["cpu"]
  weights = {row["naive_bayes_weight"]: row for row in rows[1:]}
  assert set(weights) == {0.0, 2.0, "alone"}
  # The run's own weight (2) gives the test accuracy of the run's test pass.
  assert weights[2.0]["test_accuracy"] == pytest.approx(
      summary["test_accuracy"], abs=1e-4)
  assert weights[2.0]["validation_accuracy"] == pytest.approx(
      summary["best_validation_accuracy"], abs=1e-4)
