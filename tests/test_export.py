"""The exported SavedModel serves raw inputs like the in-memory model, in a
fresh process that imports only TensorFlow and tensorflow-text."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from helpers import ROOT, write_jsonl
from maskmodels import export, training
from maskmodels.data import synthetic

TEXTS = ["", "Superb.", "I found the plot dreadful and the pacing boring.",
         "   ", "caf\u00e9 cr\u00e8me " * 3,
         " ".join(synthetic.generate_reviews(1, seed=9)[0]) * 40]  # very long
SENTENCES = ["", "Hello", "The cat sat on the mat .",
             " ".join(["word", "Über", "naïve", "x" * 90, "."] * 100)]  # 500
SERVE = """
import json, sys
import tensorflow as tf, tensorflow_text
loaded = tf.saved_model.load(sys.argv[1])
outputs = {}
for name, fn in loaded.signatures.items():
  args = {k: tf.constant(v) for k, v in json.loads(sys.argv[2])[name].items()}
  outputs[name] = {k: v.numpy().tolist() for k, v in fn(**args).items()}
print(json.dumps({"outputs": outputs, "meta": loaded.metadata().numpy().decode(),
                  "modules": sorted(m.split(".")[0] for m in sys.modules
                                    if m.startswith("maskmodels"))},
                 default=lambda b: b.decode()))
"""


def serve_in_fresh_process(export_dir, inputs, prelude=""):
  """Every signature's outputs, run in a new process with TF + tf-text
  (after ``prelude``, code run first in that process; its output is
  ``served["printed"]``)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  result = subprocess.run([sys.executable, "-c", prelude + "\n" + SERVE,
                           export_dir, json.dumps(inputs)],
                          capture_output=True, text=True, env=env,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  served = json.loads(lines[-1])
  assert served["modules"] == []  # maskmodels was never imported there
  served["printed"] = "\n".join(lines[:-1])
  return served


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("export")
  data_path = write_jsonl(root / "reviews.jsonl", 200, seed=4)
  config = training.ExperimentConfig.create(
      data_format="jsonl", data_path=data_path, validation_fraction=0.2,
      tokenizer="wordpiece", vocab_size=300, max_len=200, embedding_dim=16,
      conv_filters=[16], gru_units=[8], pooling="attention", batch_size=16,
      train_steps=6, steps_per_loop=3, warmup_steps=1,
      members=["naive_bayes"], naive_bayes_buckets=1009)
  path = str(root / "run")
  training.train_and_evaluate(config, path, tf.distribute.get_strategy())
  return path


def test_classifier_saved_model_in_a_fresh_process_matches_the_model(
    classifier_dir, tmp_path):
  """The SavedModel in a process with TensorFlow and tensorflow-text only:
  every signature as the in-process server, and docs/serving.md's loading
  snippet as a user pastes it; its own metadata says what a loader needs."""
  import re  # pylint: disable=import-outside-toplevel
  export_dir = str(tmp_path / "exported")
  export.export_saved_model(classifier_dir, export_dir)
  assert export.is_saved_model(export_dir)
  assert not export.is_saved_model(classifier_dir)
  run = training.load_trained(classifier_dir)
  server = run.server()
  expected = server.predict(TEXTS)
  page = open(os.path.join(ROOT, "docs", "serving.md")).read()
  snippet = re.search(r"<!-- serving-snippet: run by tests/test_export.py -->"
                      r"\s*```python\n(.*?)```", page, re.S).group(1)
  served = serve_in_fresh_process(export_dir, {"serving_default": {
      "texts": TEXTS}}, prelude="import sys\n" + snippet.replace(
          '"runs/exported"', "sys.argv[1]"))
  documented = server.predict(["A superb film.", ""])
  assert served["printed"].startswith(str(np.array(
      [row["labels"] for row in documented])))
  meta = json.loads(export.load_saved_model(export_dir).metadata().numpy())
  assert meta["requires"] == ["tensorflow", "tensorflow_text"]
  assert "import tensorflow as tf, tensorflow_text" in meta["load"]
  assert meta["signatures"]["serving_default"]["inputs"] == {
      "texts": "string [batch]"}
  outputs = served["outputs"]["serving_default"]
  np.testing.assert_allclose(outputs["probabilities"],
                             [row["probabilities"] for row in expected],
                             atol=1e-5)
  assert outputs["labels"] == [row["labels"].decode() for row in expected]
  assert json.loads(served["meta"])["label_names"] == ["neg", "pos"]
  # One trace for every batch size and width: a [None] string signature.
  for texts in (TEXTS[:1], [], TEXTS * 30):
    assert len(server.predict(texts)) == len(texts)
  assert server.serving_functions["serving_default"
                                 ].experimental_get_tracing_count() == 1


LOAD_WITHOUT_TENSORFLOW_TEXT = """
import json, sys
import tensorflow as tf
try:
  tf.saved_model.load(sys.argv[1])
  plain = "loaded"
except Exception as error:
  plain = type(error).__name__ + ": " + str(error).splitlines()[0]
sys.modules["tensorflow_text"] = None  # as if the package were missing
from maskmodels import errors, export
try:
  export.load_saved_model(sys.argv[1])
  helper = "loaded"
except errors.InputError as error:
  helper = str(error)
print(json.dumps([plain, helper]))
"""


def test_a_text_saved_model_says_what_to_import_to_load_it(classifier_dir,
                                                           tmp_path):
  """Plain TensorFlow cannot load a text model without tensorflow-text
  (the error docs/serving.md shows); maskmodels' loader reads what the
  export needs from a file beside the graph and names the package."""
  export_dir = str(tmp_path / "exported")
  export.export_saved_model(classifier_dir, export_dir)
  assert export.required_modules(export_dir) == ["tensorflow",
                                                 "tensorflow_text"]
  result = subprocess.run(
      [sys.executable, "-c", LOAD_WITHOUT_TENSORFLOW_TEXT, export_dir],
      capture_output=True, text=True, timeout=300, env=dict(
          os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
  assert result.returncode == 0, result.stderr[-3000:]
  plain, helper = json.loads(result.stdout.strip().splitlines()[-1])
  assert "Op type not registered 'NormalizeUTF8'" in plain
  page = open(os.path.join(ROOT, "docs", "serving.md")).read()
  assert "Op type not registered 'NormalizeUTF8'" in page
  assert helper.startswith(f"{export_dir} needs the module tensorflow_text")
  assert "pip install tensorflow-text" in helper


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory):
  """A tagger with character features, on the embedded tagged data."""
  path = str(tmp_path_factory.mktemp("tagger") / "run")
  config = training.ExperimentConfig.create(
      task="tagging", vocab_size=2000, embedding_dim=16, conv_filters=[16],
      kernel_size=[3], gru_units=[8], batch_size=32, train_steps=6,
      steps_per_loop=3, warmup_steps=1, word_features=["chars"],
      char_dim=8, char_filters=8, max_chars=12)
  training.train_and_evaluate(config, path, tf.distribute.get_strategy())
  return path


def test_tagger_saved_model_gives_one_tag_per_word_in_a_fresh_process(
    tagger_dir, tmp_path):
  export_dir = str(tmp_path / "exported")
  export.export_saved_model(tagger_dir, export_dir)
  run = training.load_trained(tagger_dir)
  expected = run.server().predict(SENTENCES)
  words = [s.split() for s in SENTENCES]
  width = max(len(w) for w in words)
  served = serve_in_fresh_process(export_dir, {
      "serving_default": {"texts": SENTENCES},
      "words": {"words": [w + [""] * (width - len(w)) for w in words],
                "lengths": [len(w) for w in words]}})
  for signature in ("serving_default", "words"):
    outputs = served["outputs"][signature]
    assert outputs["lengths"] == [0, 1, 7, 500]
    for row, sentence in enumerate(words):
      tags = outputs["tags"][row][:len(sentence)]
      assert tags == [t.decode() for t in
                      expected[row]["tags"][:len(sentence)]]
      assert all(tag in run.task.label_names for tag in tags)
      # Past the sentence nothing reads as a word's tag.
      assert set(outputs["tags"][row][len(sentence):]) <= {""}
      assert set(outputs["tag_ids"][row][len(sentence):]) <= {-1}
      past = np.asarray(outputs["probabilities"][row])[len(sentence):]
      assert past.size == 0 or not past.any()
      assert len(outputs["tags"][row]) == 500
  # The in-process server and the task's line agree on alignment.
  line = run.task.describe(SENTENCES[2], expected[2])
  assert [pair.rsplit("/", 1)[0] for pair in line.split()] == words[2]
  with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
    assert b"CudnnRNN" not in f.read()


# Every built-in task with each kind of input it reads: (task settings, a
# description). A new task or input kind joins this list.
KINDS = {
    "classification, text (wordpiece), naive Bayes member": None,
    "tagging, words and characters": None,  # tagger_dir
    "classification, frames": dict(data_format="ts"),
    "tagging, frames": dict(task="tagging", data_format="jsonl"),
}


@pytest.fixture(scope="module")
def kind_dirs(classifier_dir, tagger_dir, tmp_path_factory):
  """A tiny trained model directory of every kind in KINDS."""
  from test_frames import synthetic_series, write_ts  # pylint: disable=import-outside-toplevel
  root = tmp_path_factory.mktemp("kinds")
  data_path = write_jsonl(root / "reviews.jsonl", 120, seed=5)
  series, labels = synthetic_series(40, seed=8, max_len=12)
  ts_path = write_ts(root / "series.ts", series, labels)
  with open(root / "tagged.jsonl", "w") as f:
    for s in series:
      f.write(json.dumps({"frames": s.tolist(), "label": [
          "hi" if v > 0 else "lo" for v in s[:, 0]]}) + "\n")
  paths = {"ts": ts_path, "jsonl": str(root / "tagged.jsonl")}
  dirs = {"classification, text (wordpiece), naive Bayes member":
          classifier_dir, "tagging, words and characters": tagger_dir}
  for index, (kind, settings) in enumerate(KINDS.items()):
    if settings is None:
      continue
    if "data_format" in settings:  # frames
      data = dict(data_path=paths[settings["data_format"]],
                  validation_fraction=0.2)
    else:
      data = ({} if settings.get("task") == "tagging" else dict(
          data_format="jsonl", data_path=data_path, validation_fraction=0.2))
      data["vocab_size"] = 300
      data["embedding_dim"] = 8
    config = training.ExperimentConfig.create(
        conv_filters=[8], kernel_size=[3], gru_units=[4], batch_size=16,
        train_steps=2, steps_per_loop=2, warmup_steps=1, **data,
        **settings)
    dirs[kind] = str(root / f"run{index}")
    training.train_and_evaluate(config, dirs[kind],
                                tf.distribute.get_strategy())
  return dirs


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_task_and_input_kind_serves_empty_inputs(kind, kind_dirs,
                                                       tmp_path):
  """A batch of only empty inputs, and a batch of none, through predict and
  through the SavedModel: finite outputs, one row per input, nothing past
  an input's (zero) length."""
  model_dir = kind_dirs[kind]
  run = training.load_trained(model_dir)
  server = run.server()
  export_dir = str(tmp_path / "exported")
  export.export_saved_model(model_dir, export_dir)
  loaded = export.load_saved_model(export_dir)
  if run.kind.name == "frames":
    empty = np.zeros([0, run.assets.channels], np.float32)
    batches = ([], [empty], [empty] * 3)
  else:
    batches = ([], [""], ["", "   ", "\t"]) + (
        ([[]], [[], []]) if run.kind.name == "words" else ())
  for inputs in batches:
    rows = server.predict(inputs)
    assert len(rows) == len(inputs)
    name, arguments = (run.kind.arguments(inputs, run.assets.channels)
                       if run.kind.name == "frames" else
                       run.kind.arguments(inputs))
    calls = [loaded.signatures[name](**arguments)]
    for outputs in calls + [{k: np.stack([r[k] for r in rows]) if rows else
                             None for k in (rows[0] if rows else {})}]:
      for name, value in outputs.items():
        value = np.asarray(value)
        assert value.shape[0] == len(inputs), (kind, name, value.shape)
        if value.dtype.kind == "f":
          assert np.all(np.isfinite(value)), (kind, name)
      if "tags" in outputs:  # no word, so no tag
        assert np.asarray(outputs["tags"]).size == 0 or set(
            np.asarray(outputs["tags"]).ravel().tolist()) <= {b"", ""}
        assert not np.asarray(outputs["lengths"]).any()
