"""End-to-end runs: train_and_evaluate, interruption, resume and its checks."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from helpers import checkpoint_values, tiny_config, write_jsonl
from maskmodels import training
from maskmodels.data import pipeline
from maskmodels.errors import InputError
from maskmodels.layers.ngrams import NaiveBayesNgrams
from maskmodels.training import checkpoints
from maskmodels.training.runner import read_splits

DEFAULT = tf.distribute.get_strategy()


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory):
  return write_jsonl(tmp_path_factory.mktemp("data") / "reviews.jsonl", 240,
                     seed=2)


def test_interrupted_run_resumes_to_the_same_weights(jsonl, tmp_path,
                                                     monkeypatch):
  config = tiny_config(jsonl)
  straight = str(tmp_path / "straight")
  training.train_and_evaluate(config, straight, DEFAULT)

  interrupted = str(tmp_path / "interrupted")
  original = training.Trainer.train
  calls = {"n": 0}

  def train_then_die(self, steps):
    calls["n"] += 1
    if calls["n"] == 3:  # steps 1-6 done and checkpointed
      raise KeyboardInterrupt("simulated interruption")
    return original(self, steps)

  monkeypatch.setattr(training.Trainer, "train", train_then_die)
  with pytest.raises(KeyboardInterrupt):
    training.train_and_evaluate(config, interrupted, DEFAULT)
  monkeypatch.setattr(training.Trainer, "train", original)
  assert checkpoint_values(interrupted)["step/.ATTRIBUTES/VARIABLE_VALUE"] == 6
  summary = training.train_and_evaluate(config, interrupted, DEFAULT)
  assert summary["steps"] == 12

  want, got = checkpoint_values(straight), checkpoint_values(interrupted)
  assert want.keys() == got.keys() and len(want) > 20
  for name in want:
    np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)


def test_an_epoch_is_one_pass_and_the_directory_holds_what_later_steps_need(
    jsonl, tmp_path):
  model_dir = str(tmp_path / "run")
  summary = training.train_and_evaluate(
      tiny_config(jsonl, deterministic=False, train_steps=0, epochs=2),
      model_dir, DEFAULT)
  names = set(os.listdir(model_dir))
  assert {"config.json", "vocab.txt", "checkpoint", "best", "train", "eval",
          "history.json", "summary.json", "curves.png"} <= names
  # One epoch is one pass: every training example once, then evaluation.
  per_epoch = summary["steps_per_epoch"]
  assert summary["steps"] == 2 * per_epoch and summary["epochs"] == 2.0
  history = json.load(open(os.path.join(model_dir, "history.json")))
  assert [step for step, _ in history["validation"]] == [per_epoch,
                                                         2 * per_epoch]
  for epoch in (1, 2):
    seen = sum(values["examples"] for step, values in history["train"]
               if (epoch - 1) * per_epoch < step <= epoch * per_epoch)
    assert seen == summary["train_examples"] == 192
  assert 0.0 <= summary["best_validation_accuracy"] <= 1.0
  assert os.listdir(os.path.join(model_dir, "eval"))  # TensorBoard events

  config, tokenizer, model = training.load_trained(model_dir)
  probs = training.predict(config, tokenizer, model, ["", "a superb film"])
  np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
  # --eval_max_len: prediction reads more of a long text.
  long_text = " ".join(["the plot was dull"] * 20 + ["superb"] * 60)
  for eval_max_len, width in ((0, 96), (400, 400)):
    config = config.replace(eval_max_len=eval_max_len)
    ids = tokenizer.encode([long_text], width, config.data.truncation)
    want = tf.nn.softmax(model(ids.to_tensor(), training=False)).numpy()
    np.testing.assert_allclose(
        training.predict(config, tokenizer, model, [long_text]), want,
        atol=1e-6)


def test_evaluate_checkpoint_picks_the_weights_later_steps_load(jsonl,
                                                                tmp_path):
  model_dir = str(tmp_path / "run")
  config = tiny_config(jsonl, deterministic=False, train_steps=6)
  training.train_and_evaluate(config, model_dir, DEFAULT)
  directory = training.ModelDirectory(model_dir)
  _, _, model = training.load_trained(model_dir)
  for variable in model.trainable_variables:  # a best checkpoint unlike the
    variable.assign(variable + 1.0)           # final one
  directory.best_saver(model)(999)
  for choice, path in (("best", directory.best_checkpoint()),
                       ("final", directory.latest_checkpoint())):
    directory.save_config(directory.load_config().replace(
        evaluate_checkpoint=choice))
    _, _, loaded = training.load_trained(model_dir)
    reader = tf.train.load_checkpoint(path)
    for i, variable in enumerate(loaded.variables):
      np.testing.assert_array_equal(
          variable.numpy(),
          reader.get_tensor(f"model/{i}/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.mark.parametrize("change,message", [
    (dict(gru_units=[12]), r"encoder_config.gru_units: \[8\] in the model "
     r"directory, \[12\] now"),
    (dict(optimizer="rmsprop"), "optimizer: 'adam' in the model directory, "
     "'rmsprop' now"),
    (dict(optimizer="adamw"), "optimizer: 'adam' in the model directory"),
    (dict(precision="mixed_bfloat16"), "precision: 'float32' in the model "
     "directory, 'mixed_bfloat16' now"),
])
def test_resuming_with_other_settings_is_a_clear_error(jsonl, tmp_path,
                                                       change, message):
  model_dir = str(tmp_path / "run")
  config = tiny_config(jsonl, deterministic=False, train_steps=3)
  training.train_and_evaluate(config, model_dir, DEFAULT)
  with pytest.raises(InputError, match="Cannot resume from .*" + message):
    training.train_and_evaluate(
        tiny_config(jsonl, deterministic=False, train_steps=6, **change),
        model_dir, DEFAULT)
  training.set_precision("float32")


@pytest.fixture
def restore_float32():
  yield
  training.set_precision("float32")


@pytest.mark.parametrize("options", [
    dict(precision="mixed_float16"), dict(precision="mixed_bfloat16"),
    # Without max-pooling: an earlier test turned on op determinism for the
    # whole process, and XLA has no deterministic max-pool gradient.
    dict(jit_compile=True, pool_size=1),
    dict(optimizer="adamw", lr_schedule="linear", batch_tokens=600),
    dict(optimizer="sgd", lr_schedule="constant", clip_norm=0.0)])
def test_precisions_xla_optimizers_and_token_budgets_train(
    jsonl, tmp_path, options, restore_float32):
  config = tiny_config(jsonl, deterministic=False, train_steps=6, **options)
  summary = training.train_and_evaluate(config, str(tmp_path / "run"),
                                        DEFAULT)
  assert summary["steps"] == 6
  assert np.isfinite(summary["best_validation_accuracy"])
  if "precision" in options:
    _, _, model = training.load_trained(str(tmp_path / "run"))
    assert model.dtype_policy.name == options["precision"]


def test_deterministic_xla_is_a_clear_error(jsonl, tmp_path):
  with pytest.raises(InputError, match="--deterministic and --jit_compile "
                     "cannot be combined"):
    training.train_and_evaluate(tiny_config(jsonl, jit_compile=True),
                                str(tmp_path / "run"), DEFAULT)


def test_divergence_stops_with_the_step_and_keeps_finite_checkpoints(
    jsonl, tmp_path):
  model_dir = str(tmp_path / "run")
  good = tiny_config(jsonl, deterministic=False, optimizer="sgd",
                     lr_schedule="constant", warmup_steps=0, train_steps=3,
                     checkpoint_every_steps=1)
  training.train_and_evaluate(good, model_dir, DEFAULT)
  diverging = good.replace(learning_rate=1e30, clip_norm=0.0, train_steps=60)
  with pytest.raises(training.NonFiniteLossError,
                     match=r"Non-finite .* in steps \d+-\d+: training stopped"):
    training.train_and_evaluate(diverging, model_dir, DEFAULT)
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
  assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") >= 3
  names = [n for n in reader.get_variable_to_shape_map()
           if n.startswith("model/")]
  assert names
  for name in names:
    assert np.all(np.isfinite(reader.get_tensor(name))), name


def test_validation_and_test_files_with_their_own_columns(tmp_path):
  """GLUE-style train/dev/test files, the dev file with other columns."""
  train = write_jsonl(tmp_path / "train.jsonl", 120, seed=1)
  dev = write_jsonl(tmp_path / "dev.jsonl", 30, seed=2, text_key="content",
                    label_key="sentiment")
  test = write_jsonl(tmp_path / "test.jsonl", 40, seed=3)
  config = tiny_config(train, deterministic=False, train_steps=4,
                       validation_path=dev, validation_text_column="content",
                       validation_label_column="sentiment", test_path=test)
  summary = training.train_and_evaluate(config, str(tmp_path / "run"),
                                        DEFAULT)
  assert (summary["train_examples"], summary["validation_examples"],
          summary["test_examples"]) == (120, 30, 40)
  with pytest.raises(InputError, match="Field 'text' missing in .*dev.jsonl"):
    training.read_splits(config.replace(validation_text_column="").data)


def test_checkpoint_restores_are_checked_against_the_manifest(jsonl,
                                                              tmp_path):
  model_dir = str(tmp_path / "run")
  training.train_and_evaluate(tiny_config(jsonl, deterministic=False,
                                          train_steps=3), model_dir, DEFAULT)
  _, _, model = training.load_trained(model_dir)
  path = tf.train.latest_checkpoint(model_dir)
  other = training.builders.build_model(
      training.ModelDirectory(model_dir).load_config().replace(
          head_units=[4]), model.embedding.input_dim)
  with pytest.raises(InputError, match="does not match this model: model "
                     "value 16 is 'model/seed_generator.* there, 'model/head/kernel 16x4"):
    checkpoints.restore_weights(other, path)


def test_naive_bayes_ratios_come_from_the_training_split_and_are_kept(
    jsonl, tmp_path, monkeypatch):
  model_dir = str(tmp_path / "run")
  config = tiny_config(jsonl, deterministic=False, train_steps=6,
                       naive_bayes_buckets=4099, naive_bayes_orders=[1, 2])
  training.train_and_evaluate(config, model_dir, DEFAULT)
  _, tokenizer, model = training.load_trained(model_dir)
  reference = NaiveBayesNgrams(4099, 2, orders=[1, 2])
  train = read_splits(config.data, config.train.seed).train
  reference.adapt((ids, ids != 0, labels) for ids, labels in
                  pipeline.labelled_batches(train, tokenizer,
                                            config.data.max_len,
                                            config.data.truncation))
  np.testing.assert_allclose(model.naive_bayes.ratios.numpy(),
                             reference.ratios.numpy(), rtol=1e-6)
  assert np.abs(model.naive_bayes.kernel.numpy()).max() > 0  # trained
  assert len(train) < 240  # validation texts were not counted

  # Resuming restores the ratios from the checkpoint; it does not count the
  # training split again.
  def no_second_count(self, batches):
    raise AssertionError("adapt called on a resumed run")
  monkeypatch.setattr(type(model), "adapt", no_second_count)
  summary = training.train_and_evaluate(
      config.replace(train_steps=9), model_dir, DEFAULT)
  assert summary["steps"] == 9
  _, _, resumed = training.load_trained(model_dir)
  np.testing.assert_allclose(resumed.naive_bayes.ratios.numpy(),
                             reference.ratios.numpy(), rtol=1e-6)
