"""Faults a user can cause or meet, each made real where it can be.

Each is one ``error:`` line naming the path, the cause and what to do, with
its own exit status (``maskmodels.errors``); nothing is left half-written;
a refused run leaves its model directory byte for byte as it was. A full
disk is a small tmpfs and a read-only folder a read-only bind mount where
the test process may mount them (as root in a container); elsewhere the
fault is injected at the write call.
"""

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from helpers import write_jsonl
from maskmodels import cli, errors, export, training
from maskmodels.commands import train as train_command

TINY = ["--data_format=jsonl", "--embedding_dim=8", "--conv_filters=8",
        "--kernel_size=3", "--gru_units=4", "--vocab_size=200",
        "--max_len=64", "--batch_size=16", "--steps_per_loop=2",
        "--warmup_steps=1", "--checkpoint_every_steps=2",
        "--validation_fraction=0.2"]


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
  return write_jsonl(tmp_path_factory.mktemp("data") / "reviews.jsonl", 160,
                     seed=11)


def run_train(capfd, *argv):
  """``maskmodels-train`` in this process: ``(exit status, stdout,
  stderr)``."""
  capfd.readouterr()
  with pytest.raises(SystemExit) as exit_:
    cli.run(train_command.COMMAND, ["train", *argv])
  out, err = capfd.readouterr()
  return exit_.value.code or 0, out, err


@pytest.fixture(scope="module")
def trained(data_path, tmp_path_factory):
  """A finished tiny run (4 steps, best/ and two training checkpoints)."""
  model_dir = str(tmp_path_factory.mktemp("trained") / "run")
  config = training.ExperimentConfig.create(
      data_format="jsonl", data_path=data_path, validation_fraction=0.2,
      embedding_dim=8, conv_filters=[8], kernel_size=[3], gru_units=[4],
      vocab_size=200, max_len=64, batch_size=16, steps_per_loop=2,
      warmup_steps=1, checkpoint_every_steps=2, train_steps=4, epochs=1)
  training.train_and_evaluate(config, model_dir, tf.distribute.get_strategy())
  return model_dir


def snapshot(folder):
  """Every file under ``folder`` with its bytes, and every folder."""
  found = {}
  for directory, folders, files in os.walk(folder):
    for name in folders:
      found[os.path.relpath(os.path.join(directory, name), folder)] = None
    for name in files:
      path = os.path.join(directory, name)
      with open(path, "rb") as f:
        found[os.path.relpath(path, folder)] = f.read()
  return found


def one_error_line(err):
  """The ``error:`` line of a command's stderr; fails unless there is
  exactly one and no traceback."""
  lines = [line for line in err.splitlines() if line.startswith("error:")]
  assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
  return lines[0]


# ---- a damaged best checkpoint ---------------------------------------------


def test_a_damaged_best_checkpoint_falls_back_to_the_newest_readable(
    trained, data_path, tmp_path, capfd, caplog):
  model_dir = str(tmp_path / "run")
  shutil.copytree(trained, model_dir)
  directory = training.ModelDirectory(model_dir)
  best = directory.best_checkpoint()
  data_file = tf.io.gfile.glob(best + ".data-*")[0]
  with open(data_file, "r+b") as f:
    f.truncate(os.path.getsize(data_file) // 2)
  newest = directory.training_checkpoints()[0]
  # Loading for serving (evaluate, predict, export) falls back and says so.
  with caplog.at_level("WARNING"):
    assert directory.serving_checkpoint("best") == newest
  warned = [r.getMessage() for r in caplog.records if "cannot be read" in
            r.getMessage()]
  assert len(warned) == 1 and best in warned[0] and newest in warned[0]
  run = training.load_trained(model_dir)
  assert run.server().predict(["a superb film"])[0]["labels"] in (b"neg",
                                                                  b"pos")
  # A resume says so at its start, trains, and tests readable weights.
  caplog.clear()
  with caplog.at_level("INFO"):  # (and INFO whatever ran before)
    code, out, err = run_train(capfd, *TINY, f"--data_path={data_path}",
                               f"--model_dir={model_dir}", "--train_steps=6",
                               "--verbosity=0")
  assert code == 0, err[-3000:]
  logged = [r.getMessage() for r in caplog.records]
  first = next(i for i, m in enumerate(logged) if "cannot be read" in m)
  assert "unless a better validation value replaces it" in logged[first]
  assert first < next(i for i, m in enumerate(logged) if "Validation at "
                      "step 6" in m)
  assert "Done: 6 steps" in out


# ---- refused runs leave the directory as it was --------------------------


def _delete_config(model_dir):
  os.remove(os.path.join(model_dir, "config.json"))


def _swap_vocabulary_lines(model_dir):
  path = os.path.join(model_dir, "vocab.txt")
  lines = open(path).read().splitlines(keepends=True)
  lines[3], lines[4] = lines[4], lines[3]
  open(path, "w").write("".join(lines))


def _config_not_utf8(model_dir):
  path = os.path.join(model_dir, "config.json")
  data = open(path, "rb").read()
  open(path, "wb").write(data.replace(b'"jsonl"', b'"\xff\xfejsonl"', 1))


def _other_version(model_dir):
  path = os.path.join(model_dir, "config.json")
  values = json.load(open(path))
  values["version"] = "0.1"
  json.dump(values, open(path, "w"))


def _write(folder, name, lines):
  path = os.path.join(folder, name)
  with open(path, "w") as f:
    f.write("".join(line + "\n" for line in lines))
  return path


def _tagged_lines(count, seed, broken=None):
  """Tagged word lists as JSON Lines (``broken``: ``{line: record}``)."""
  rng = np.random.default_rng(seed)
  lines = []
  for number in range(1, count + 1):
    words = [["the", "a"][rng.integers(2)], ["cat", "dog"][rng.integers(2)],
             "sat"]
    record = {"text": words, "label": ["DET", "NOUN", "VERB"]}
    lines.append(json.dumps((broken or {}).get(number, record)))
  return lines


def _frames_lines(channels):
  rng = np.random.default_rng(0)
  return [json.dumps({"frames": rng.normal(size=(4, channels)).tolist(),
                      "label": ["a", "b"][i % 2]}) for i in range(40)]


# Every refusal a run makes, as (data files it writes, flags, exit status,
# message), tried on a new directory and on a finished run's copy (the
# task's: ``tagging`` refusals on a finished tagger). Each leaves the
# directory byte for byte as it was (a new one is never made).
REFUSALS = {
    "a learning rate of 0": (
        {}, ["--learning_rate=0"], 2, "--learning_rate=0.0: expected a "
        "number > 0"),
    "deterministic with XLA": (
        {}, ["--deterministic", "--jit_compile"], 2, "cannot be combined"),
    "a column the data lacks": (
        {}, ["--text_column=review"], 2, "--text_column=review: field "
        "'review' missing"),
    "a split the embedded data lacks": (
        {}, ["--train_split=dev", "--data_format=default", "--data_path="], 2,
        "--train_split=dev: the embedded data has no split 'dev'"),
    "a test file with an unknown label": (
        {"test.jsonl": ['{"text": "fine", "label": "meh"}']},
        ["--test_path={tmp}/test.jsonl"], 1,
        "Unknown label 'meh' in .*test.jsonl, line 1"),
    "a malformed test file": (
        {"test.jsonl": ['{"text": "fine", "label": "pos"}', "{oops"]},
        ["--test_path={tmp}/test.jsonl"], 1,
        "Invalid JSON in .*test.jsonl at line 2"),
    "texts cropped": (
        {}, ["--crop_fraction=0.5"], 2, "--crop_fraction=0.5: texts are "
        "not cropped"),
    "a task that does not read texts": (
        {}, ["--task=tagging"], 1, "holds texts; task 'tagging' reads "
        "words, frames"),
    "frames of another kind in the test split": (
        {"test.jsonl": _frames_lines(2)[:2]},
        ["--test_path={tmp}/test.jsonl"], 1, "holds series; the training "
        "data holds texts"),
    "tags that miss a word": (
        {"tags.jsonl": _tagged_lines(40, 1, {8: {"text": ["a", "b"],
                                                 "label": ["DET"]}})},
        ["--task=tagging", "--data_path={tmp}/tags.jsonl"], 1,
        r"tags.jsonl( \[\w+\])?, line 8: 1 labels for 2 steps; expected "
        r"one label per step"),
    "a tag that is a string": (
        {"tags.jsonl": _tagged_lines(40, 1, {5: {"text": ["a", "b"],
                                                 "label": "hi"}})},
        ["--task=tagging", "--data_path={tmp}/tags.jsonl"], 1,
        r"tags.jsonl( \[\w+\])?, line 5: the label 'hi' is not a list"),
    "word lists split into word pieces": (
        {"tags.jsonl": _tagged_lines(40, 1)},
        ["--task=tagging", "--data_path={tmp}/tags.jsonl",
         "--tokenizer=wordpiece"], 2, "--tokenizer=wordpiece: word lists "
        "need --tokenizer=word"),
    "members of a sequence task": (
        {}, ["--task=seq2seq", "--members=naive_bayes"], 1,
        "--members=naive_bayes: the seq2seq task trains a single network"),
}
# Refusals only a finished run can make: (change to it, flags, status,
# message).
RESUME_REFUSALS = {
    "config deleted, resumed as another model": (
        _delete_config, ["--conv_filters=12"], 1, "does not match this model"),
    "another architecture": (None, ["--embedding_dim=12"], 1,
                             "Cannot resume from"),
    "a vocabulary with two lines swapped": (
        _swap_vocabulary_lines, [], 65, "does not match its checksum"),
    "a config that is not UTF-8": (_config_not_utf8, [], 65,
                                   "is not UTF-8 text"),
    "a config of another version": (_other_version, [], 1, "was written by "
                                    "maskmodels 0.1"),
    "a finished run on other data": (
        None, ["--data_path={tmp}/other.jsonl"], 1, "Cannot resume .* on "
        "other data: its train, validation split\\(s\\) differ from those "
        "it was trained on \\(--data_format=jsonl --data_path=.*reviews.jsonl"),
    "a finished run on the embedded data": (
        None, ["--data_format=default", "--data_path="], 1,
        "Cannot resume .* on other data: its train, validation, test "
        "split\\(s\\)"),
}


@pytest.fixture(scope="module")
def tagged_run(tmp_path_factory):
  """A finished tiny tagging run on JSON Lines word lists."""
  folder = tmp_path_factory.mktemp("tagged")
  path = _write(str(folder), "tags.jsonl", _tagged_lines(40, 1))
  model_dir = str(folder / "run")
  config = training.ExperimentConfig.create(
      task="tagging", data_format="jsonl", data_path=path,
      validation_fraction=0.2, embedding_dim=8, conv_filters=[8],
      kernel_size=[3], gru_units=[4], vocab_size=200, batch_size=16,
      steps_per_loop=2, warmup_steps=1, train_steps=2)
  training.train_and_evaluate(config, model_dir, tf.distribute.get_strategy())
  return model_dir, path


def _flags(flags, tmp):
  return [f.replace("{tmp}", str(tmp)) for f in flags]


@pytest.mark.parametrize("where", ["new", "finished"])
@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_a_refused_run_leaves_its_directory_byte_for_byte(
    refusal, where, trained, tagged_run, data_path, tmp_path, capfd):
  """Every refusal, on a new directory (never made) and on a finished run
  (unchanged, down to its lock file): one error line, its status."""
  files, flags, status, message = REFUSALS[refusal]
  for name, lines in files.items():
    _write(str(tmp_path), name, lines)
  tagged = "tags.jsonl" in files  # a tagger's data: a finished tagger
  finished, data = (tagged_run if tagged else (trained, data_path))
  model_dir = tmp_path / "new" / "nested" / "run"
  if where == "finished":
    model_dir = tmp_path / "run"
    shutil.copytree(finished, model_dir)
  before = snapshot(str(tmp_path / "new")) if where == "new" else snapshot(
      str(model_dir))
  code, _, err = run_train(capfd, *TINY, f"--data_path={data}",
                           f"--model_dir={model_dir}", "--train_steps=8",
                           *_flags(flags, tmp_path))
  assert code == status, err[-3000:]
  assert re.search(message, one_error_line(err)), err[-3000:]
  if where == "new":
    assert not (tmp_path / "new").exists()
  else:
    assert snapshot(str(model_dir)) == before


@pytest.mark.parametrize("refusal", list(RESUME_REFUSALS))
def test_a_refused_resume_leaves_the_directory_byte_for_byte(
    refusal, trained, data_path, tmp_path, capfd):
  change, flags, status, message = RESUME_REFUSALS[refusal]
  write_jsonl(tmp_path / "other.jsonl", 160, seed=12)
  model_dir = str(tmp_path / "run")
  shutil.copytree(trained, model_dir)
  if change:
    change(model_dir)
  before = snapshot(model_dir)
  code, _, err = run_train(capfd, *TINY, f"--data_path={data_path}",
                           f"--model_dir={model_dir}", "--train_steps=8",
                           *_flags(flags, tmp_path))
  assert code == status, err[-3000:]
  assert re.search(message, one_error_line(err)), err[-3000:]
  assert snapshot(model_dir) == before


def test_a_directory_in_use_is_refused_and_left_as_it_was(
    trained, data_path, tmp_path, capfd):
  model_dir = str(tmp_path / "run")
  shutil.copytree(trained, model_dir)
  lock_path = os.path.join(model_dir, ".lock")
  with open(lock_path, "w") as f:
    f.write("pid 1 on elsewhere, since 2026-01-01 00:00:00")
  before = snapshot(model_dir)
  with open(lock_path, "a+") as holder:
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    code, _, err = run_train(capfd, *TINY, f"--data_path={data_path}",
                             f"--model_dir={model_dir}")
  assert code == 1
  assert "is in use by a running training (pid 1 on elsewhere" in (
      one_error_line(err))
  assert snapshot(model_dir) == before


# ---- the machine: a full disk, a read-only folder, a file in the way -----


@contextlib.contextmanager
def mounted(*command):
  """Runs ``mount`` with ``command``'s arguments; yields whether it could
  (and unmounts after)."""
  target = command[-1]
  result = subprocess.run(["mount", *command], capture_output=True)
  try:
    yield result.returncode == 0
  finally:
    if result.returncode == 0:
      subprocess.run(["umount", "-l", target], capture_output=True)


@contextlib.contextmanager
def full_disk(folder, free_bytes, monkeypatch):
  """``folder`` on a file system with about ``free_bytes`` left: a tmpfs
  of that size where one can be mounted; else writes under ``folder`` past
  that many bytes fail with ENOSPC, injected at TensorFlow's file writes."""
  os.makedirs(folder, exist_ok=True)
  size = max(4096, free_bytes // 4096 * 4096)
  with mounted("-t", "tmpfs", "-o", f"size={size}", "tmpfs",
               str(folder)) as real:
    if not real:
      written = {"bytes": 0}
      gfile_write = tf.io.gfile.GFile.write

      def write(self, data):
        if str(self.name).startswith(str(folder)):
          written["bytes"] += len(data)
          if written["bytes"] > free_bytes:
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{self.name}; No space left on device")
        return gfile_write(self, data)

      monkeypatch.setattr(tf.io.gfile.GFile, "write", write)
      save = tf.train.Checkpoint.write

      def checkpoint_write(self, file_prefix, *args, **kwargs):
        if str(file_prefix).startswith(str(folder)):
          raise tf.errors.ResourceExhaustedError(
              None, None, f"{file_prefix}; No space left on device")
        return save(self, file_prefix, *args, **kwargs)

      monkeypatch.setattr(tf.train.Checkpoint, "write", checkpoint_write)
    yield folder


def _debris(folder):
  return [name for name in snapshot(folder) if ".tmp-" in name or
          "_temp" in name]


@pytest.mark.parametrize("free,written", [
    (4096, "vocab.txt"),  # the lock file fills the first page
    (48 * 1024, "ckpt-"),
])
def test_a_full_disk_is_one_line_and_leaves_no_partial_file(
    free, written, data_path, tmp_path, capfd, monkeypatch):
  with full_disk(tmp_path / "disk", free, monkeypatch) as disk:
    model_dir = disk / "run"
    code, _, err = run_train(capfd, *TINY, f"--data_path={data_path}",
                             f"--model_dir={model_dir}", "--train_steps=6")
    line = one_error_line(err)
    assert code == errors.DISK_FULL_EXIT_CODE, err[-3000:]
    assert str(model_dir) in line and "the disk is full" in line, line
    assert written in line, line
    assert not _debris(disk)


def test_a_full_disk_during_export_leaves_no_folder(trained, tmp_path,
                                                     monkeypatch):
  with full_disk(tmp_path / "disk", 64 * 1024, monkeypatch) as disk:
    export_dir = str(disk / "exported")
    with pytest.raises(errors.EnvironmentFault) as fault:
      export.export_saved_model(trained, export_dir)
    assert fault.value.exit_code == errors.DISK_FULL_EXIT_CODE
    assert export_dir in str(fault.value)
    assert os.listdir(disk) == []


def test_a_read_only_directory_serves_but_does_not_train(
    trained, data_path, tmp_path, capfd, monkeypatch):
  model_dir = tmp_path / "run"
  shutil.copytree(trained, model_dir)
  before = snapshot(model_dir)
  with mounted("--bind", "-o", "ro", str(model_dir), str(model_dir)) as real:
    if not real:  # injected: opening a file to write there fails
      opener = open

      def read_only_open(path, mode="r", *args, **kwargs):
        if str(path).startswith(str(model_dir)) and set(mode) & set("wa+"):
          raise OSError(errno.EROFS, "Read-only file system", str(path))
        return opener(path, mode, *args, **kwargs)

      monkeypatch.setattr("builtins.open", read_only_open)
    code, _, err = run_train(capfd, *TINY, f"--data_path={data_path}",
                             f"--model_dir={model_dir}", "--train_steps=6")
    line = one_error_line(err)
    assert code == errors.READ_ONLY_EXIT_CODE
    assert str(model_dir) in line and "read-only" in line, line
    # Evaluation and prediction only read.
    run = training.load_trained(str(model_dir))
    assert len(run.server().predict(["fine", ""])) == 2
  assert snapshot(model_dir) == before


def test_a_file_where_the_model_directory_should_be(data_path, tmp_path,
                                                    capfd):
  path = tmp_path / "a_file"
  path.write_text("not a folder")
  for model_dir in (path, path / "run"):
    code, _, err = run_train(capfd, *TINY, f"--data_path={data_path}",
                             f"--model_dir={model_dir}")
    line = one_error_line(err)
    assert code == errors.NOT_A_DIRECTORY_EXIT_CODE, err[-2000:]
    assert str(path) in line and "a file stands where a folder" in line
  assert path.read_text() == "not a folder"


def test_a_file_that_cannot_be_read_is_named(trained, tmp_path, capsys):
  """Injected (root reads every file): reading config.json fails with
  EACCES; the commands' guard turns it into one line, exit status 66."""
  config = os.path.join(trained, "config.json")

  def load():
    raise errors.environment_fault(
        PermissionError(errno.EACCES, "Permission denied", config),
        reading=True)

  with pytest.raises(SystemExit) as exit_:
    cli.guarded(load)()
  assert exit_.value.code == errors.UNREADABLE_EXIT_CODE
  line = one_error_line(capsys.readouterr().err)
  assert config in line and "cannot be read" in line


def test_a_batch_larger_than_the_training_split_is_cut_to_it(
    data_path, tmp_path, capfd, caplog):
  model_dir = tmp_path / "run"
  with caplog.at_level("WARNING"):
    code, _, err = run_train(capfd, *TINY, f"--data_path={data_path}",
                             f"--model_dir={model_dir}",
                             "--batch_size=100000000", "--train_steps=2")
  assert code == 0, err[-3000:]
  assert ("--batch_size=100000000 is larger than the 128 training examples: "
          "batches of 128 instead") in caplog.text
  config = training.ModelDirectory(str(model_dir)).load_config()
  assert config.data.batch_size == 128
