"""The exported SavedModel serves raw strings like the in-memory model."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from helpers import write_jsonl
from maskmodels import export, training
from maskmodels.data import synthetic

TEXTS = ["", "Superb.", "I found the plot dreadful and the pacing boring.",
         "   ", "caf\u00e9 cr\u00e8me " * 3,
         " ".join(synthetic.generate_reviews(1, seed=9)[0]) * 40]  # very long


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("export")
  data_path = write_jsonl(root / "reviews.jsonl", 200, seed=4)
  config = training.ExperimentConfig.create(
      data_format="jsonl", data_path=data_path, validation_fraction=0.2,
      tokenizer="wordpiece", vocab_size=300, max_len=200, embedding_dim=16,
      conv_filters=[16], gru_units=[8], pooling="attention", batch_size=16,
      train_steps=6, steps_per_loop=3, warmup_steps=1,
      naive_bayes_buckets=1009, naive_bayes_weight=2.0)
  path = str(root / "run")
  training.train_and_evaluate(config, path, tf.distribute.get_strategy())
  return path


def test_saved_model_in_a_fresh_process_matches_the_model(model_dir, tmp_path):
  export_dir = str(tmp_path / "exported")
  export.export_saved_model(model_dir, export_dir)
  assert export.is_saved_model(export_dir)
  assert not export.is_saved_model(model_dir)
  config, tokenizer, model = training.load_trained(model_dir)
  expected = training.predict(config, tokenizer, model, TEXTS)
  code = (
      "import json, sys\n"
      "import tensorflow as tf, tensorflow_text\n"
      "serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
      "out = serve(texts=tf.constant(json.loads(sys.stdin.read())))\n"
      "print(json.dumps({'probabilities': out['probabilities'].numpy()"
      ".tolist(), 'labels': [l.decode() for l in out['labels'].numpy()]}))\n")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  result = subprocess.run([sys.executable, "-c", code, export_dir],
                          input=json.dumps(TEXTS), capture_output=True,
                          text=True, env=env, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  served = json.loads(result.stdout.strip().splitlines()[-1])
  np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
  assert served["labels"] == [config.data.class_names[i]
                              for i in expected.argmax(axis=1)]


def test_prediction_runs_as_one_graph_for_any_batch(model_dir):
  config, tokenizer, model = training.load_trained(model_dir)
  predictor = training.Predictor(config, tokenizer, model)
  for texts in (TEXTS, TEXTS[:1], [], TEXTS * 30):
    probabilities = predictor(texts, batch_size=64)
    assert probabilities.shape == (len(texts), 2)
  # One trace for every batch size and width: a [None] string signature.
  assert predictor.probabilities.experimental_get_tracing_count() == 1
