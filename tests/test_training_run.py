"""End-to-end runs: train_and_evaluate, interruption and resume."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from maskmodels import training
from maskmodels.data import synthetic


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory):
  texts, labels = synthetic.generate_reviews(240, seed=2)
  path = str(tmp_path_factory.mktemp("data") / "reviews.jsonl")
  with open(path, "w") as f:
    for text, label in zip(texts, labels):
      f.write(json.dumps({"text": text, "label": ["neg", "pos"][label]}) + "\n")
  return path


def tiny_config(data_path, **overrides):
  values = dict(
      data_format="jsonl", data_path=data_path, validation_fraction=0.2,
      vocab_size=400, max_len=96, num_buckets=3, embedding_dim=16,
      conv_filters=[16], kernel_size=3, pool_size=2, gru_units=[8],
      dropout=0.1, batch_size=16, train_steps=12, steps_per_loop=3,
      warmup_steps=2, checkpoint_every_steps=3, deterministic=True, seed=5)
  values.update(overrides)
  return training.RunConfig(**values)


def checkpoint_values(model_dir):
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
  names = sorted(name for name in reader.get_variable_to_shape_map()
                 if name.startswith(("model/", "optimizer/", "step")))
  return {name: reader.get_tensor(name) for name in names}


def test_interrupted_run_resumes_to_the_same_weights(jsonl, tmp_path,
                                                     monkeypatch):
  config = tiny_config(jsonl)
  strategy = tf.distribute.get_strategy()
  straight = str(tmp_path / "straight")
  training.train_and_evaluate(config, straight, strategy)

  interrupted = str(tmp_path / "interrupted")
  original = training.Trainer.train
  calls = {"n": 0}

  def train_then_die(self, iterator, steps):
    calls["n"] += 1
    if calls["n"] == 3:  # steps 1-6 done and checkpointed
      raise KeyboardInterrupt("simulated interruption")
    return original(self, iterator, steps)

  monkeypatch.setattr(training.Trainer, "train", train_then_die)
  with pytest.raises(KeyboardInterrupt):
    training.train_and_evaluate(config, interrupted, strategy)
  monkeypatch.setattr(training.Trainer, "train", original)
  assert checkpoint_values(interrupted)["step/.ATTRIBUTES/VARIABLE_VALUE"] == 6
  summary = training.train_and_evaluate(config, interrupted, strategy)
  assert summary["steps"] == 12

  want, got = checkpoint_values(straight), checkpoint_values(interrupted)
  assert want.keys() == got.keys() and len(want) > 20
  for name in want:
    np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)


def test_model_directory_holds_what_later_steps_need(jsonl, tmp_path):
  model_dir = str(tmp_path / "run")
  summary = training.train_and_evaluate(
      tiny_config(jsonl, deterministic=False, train_steps=0, epochs=2),
      model_dir, tf.distribute.get_strategy())
  names = set(os.listdir(model_dir))
  assert {"config.json", "vocab.txt", "checkpoint", "best", "train", "eval",
          "history.json", "summary.json", "curves.png"} <= names
  assert summary["steps"] == 2 * 12  # 192 training examples / 16
  assert 0.0 <= summary["best_validation_accuracy"] <= 1.0
  assert os.listdir(os.path.join(model_dir, "eval"))  # TensorBoard events
  png = tf.io.decode_png(tf.io.read_file(os.path.join(model_dir,
                                                      "curves.png")))
  assert png.shape[0] > 100 and png.shape[1] > 300
  config, tokenizer, model = training.load_trained(model_dir)
  probs = training.predict(config, tokenizer, model, ["", "a superb film"])
  np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)

  # --eval_max_len: evaluation and prediction read more of a long text.
  long_text = " ".join(["the plot was dull"] * 20 + ["superb"] * 60)
  for eval_max_len, width in ((0, 96), (400, 400)):
    config = dataclasses.replace(config, eval_max_len=eval_max_len)
    assert config.pipeline_config(evaluation=True).max_len == width
    assert config.pipeline_config().max_len == 96
    ids = tokenizer.encode([long_text], width, config.truncation).to_tensor()
    want = tf.nn.softmax(model(ids, training=False)).numpy()
    np.testing.assert_allclose(
        training.predict(config, tokenizer, model, [long_text]), want,
        atol=1e-6)

  # --evaluate_checkpoint picks the weights later steps load. Make the best
  # checkpoint differ from the final one first.
  for variable in model.trainable_variables:
    variable.assign(variable + 1.0)
  tf.train.CheckpointManager(
      training.controller.weights_checkpoint(model),
      os.path.join(model_dir, "best"), max_to_keep=1).save(999)
  paths = {"best": tf.train.latest_checkpoint(os.path.join(model_dir, "best")),
           "final": tf.train.latest_checkpoint(model_dir)}
  for choice, path in paths.items():
    dataclasses.replace(config, evaluate_checkpoint=choice).save(model_dir)
    _, _, model = training.load_trained(model_dir)
    reader = tf.train.load_checkpoint(path)
    for i, variable in enumerate(model.variables):
      np.testing.assert_array_equal(
          variable.numpy(),
          reader.get_tensor(f"model/{i}/.ATTRIBUTES/VARIABLE_VALUE"))


def test_resuming_with_another_architecture_is_a_clear_error(jsonl, tmp_path):
  model_dir = str(tmp_path / "run")
  config = tiny_config(jsonl, deterministic=False, train_steps=3)
  training.train_and_evaluate(config, model_dir, tf.distribute.get_strategy())
  changed = dataclasses.replace(config, gru_units=[12], train_steps=6)
  with pytest.raises(ValueError, match="Cannot resume from .*gru_units: "
                     "\\[8\\] in the model directory, \\[12\\] now"):
    training.train_and_evaluate(changed, model_dir,
                                tf.distribute.get_strategy())


@pytest.fixture
def restore_float32():
  yield
  training.set_precision("float32")


@pytest.mark.parametrize("options", [
    dict(precision="mixed_float16"), dict(precision="mixed_bfloat16"),
    # Without max-pooling: an earlier test turned on op determinism for the
    # whole process, and XLA has no deterministic max-pool gradient.
    dict(jit_compile=True, pool_size=1),
    dict(optimizer="adamw", lr_schedule="linear"),
    dict(optimizer="sgd", lr_schedule="constant", clip_norm=None)])
def test_precisions_xla_and_optimizers_train(jsonl, tmp_path, options,
                                             restore_float32):
  config = tiny_config(jsonl, deterministic=False, train_steps=6, **options)
  summary = training.train_and_evaluate(config, str(tmp_path / "run"),
                                        tf.distribute.get_strategy())
  assert summary["steps"] == 6
  assert np.isfinite(summary["best_validation_accuracy"])
  if "precision" in options:
    _, _, model = training.load_trained(str(tmp_path / "run"))
    assert model.dtype_policy.name == options["precision"]


def test_deterministic_xla_is_a_clear_error(jsonl, tmp_path):
  with pytest.raises(ValueError, match="--deterministic and --jit_compile "
                     "cannot be combined"):
    training.train_and_evaluate(tiny_config(jsonl, jit_compile=True),
                                str(tmp_path / "run"),
                                tf.distribute.get_strategy())


def test_divergence_stops_with_the_step_and_keeps_finite_checkpoints(
    jsonl, tmp_path):
  model_dir = str(tmp_path / "run")
  strategy = tf.distribute.get_strategy()
  good = tiny_config(jsonl, deterministic=False, optimizer="sgd",
                     lr_schedule="constant", warmup_steps=0, train_steps=3,
                     checkpoint_every_steps=1)
  training.train_and_evaluate(good, model_dir, strategy)
  diverging = dataclasses.replace(good, learning_rate=1e30, clip_norm=None,
                                  train_steps=60)
  with pytest.raises(training.NonFiniteLossError,
                     match=r"Non-finite .* in steps \d+-\d+: training stopped"):
    training.train_and_evaluate(diverging, model_dir, strategy)
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
  assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") >= 3
  names = [n for n in reader.get_variable_to_shape_map()
           if n.startswith("model/")]
  assert names
  for name in names:
    assert np.all(np.isfinite(reader.get_tensor(name))), name
