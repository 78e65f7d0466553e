"""End-to-end runs: train_and_evaluate, interruption, resume and its checks."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from helpers import checkpoint_values, summary_scalars, tiny_config
from helpers import write_jsonl
import maskmodels as mm
from maskmodels import training
from maskmodels.data import pipeline
from maskmodels.errors import InputError
from maskmodels.training import checkpoints

DEFAULT = tf.distribute.get_strategy()


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory):
  return write_jsonl(tmp_path_factory.mktemp("data") / "reviews.jsonl", 240,
                     seed=2)


@pytest.fixture(scope="module")
def trained(jsonl, tmp_path_factory):
  """A 2-epoch run with GLUE-style files (train, a dev file with other
  columns, test), shared by the tests that only read its directory or
  start from a copy of it."""
  root = tmp_path_factory.mktemp("trained")
  dev = write_jsonl(root / "dev.jsonl", 30, seed=3, text_key="content",
                    label_key="sentiment")
  test = write_jsonl(root / "test.jsonl", 40, seed=4)
  settings = dict(deterministic=False, train_steps=None, epochs=2,
                  validation_path=dev, validation_text_column="content",
                  validation_label_column="sentiment", test_path=test)
  model_dir = str(root / "run")
  summary = training.train_and_evaluate(tiny_config(jsonl, **settings),
                                        model_dir, DEFAULT)
  return model_dir, summary, tiny_config(jsonl, **settings), settings


def test_an_epoch_is_one_pass_and_the_directory_holds_what_later_steps_need(
    trained):
  model_dir, summary = trained[:2]
  names = set(os.listdir(model_dir))
  assert {"config.json", "vocab.txt", "checkpoint", "best", "train", "eval",
          "history.json", "summary.json", "curves.png"} <= names
  # Each file counted once, the dev file read with its own columns.
  assert (summary["train_examples"], summary["validation_examples"],
          summary["test_examples"]) == (240, 30, 40)
  # One epoch is one pass: every training example once, then evaluation.
  per_epoch = summary["steps_per_epoch"]
  assert summary["steps"] == 2 * per_epoch and summary["epochs"] == 2.0
  history = json.load(open(os.path.join(model_dir, "history.json")))
  assert [step for step, _ in history["validation"]] == [per_epoch,
                                                         2 * per_epoch]
  for epoch in (1, 2):
    seen = sum(values["examples"] for step, values in history["train"]
               if (epoch - 1) * per_epoch < step <= epoch * per_epoch)
    assert seen == summary["train_examples"] == 240
  assert 0.0 <= summary["best_validation_accuracy"] <= 1.0
  # TensorBoard holds every evaluation's metrics, as history.json does.
  scalars = summary_scalars(os.path.join(model_dir, "eval"))
  for step, values in history["validation"]:
    for name in ("loss", "accuracy", "examples"):
      assert scalars[(name, step)] == pytest.approx(values[name])
  train_scalars = summary_scalars(os.path.join(model_dir, "train"))
  for step, values in history["train"]:
    assert train_scalars[("loss", step)] == pytest.approx(values["loss"])


def test_a_file_without_the_column_it_is_read_by_is_named(trained):
  config = trained[2]
  with pytest.raises(InputError, match="field 'text' missing in .*dev.jsonl"):
    training.read_splits(config.replace(validation_text_column=None).data)


def test_serving_reads_the_run_s_weights_and_eval_max_len(trained):
  model_dir = trained[0]
  run = training.load_trained(model_dir)
  rows = run.server().predict(["", "a superb film"])
  np.testing.assert_allclose([r["probabilities"].sum() for r in rows], 1.0,
                             rtol=1e-5)
  # --eval_max_len: serving reads more of a long text.
  long_text = " ".join(["the plot was dull"] * 20 + ["superb"] * 60)
  for eval_max_len, width in ((None, 96), (400, 400)):
    run.config = run.config.replace(eval_max_len=eval_max_len)
    ids = run.tokenizer.encode([long_text], width, run.config.data.truncation)
    want = tf.nn.softmax(run.model(ids.to_tensor(),
                                   training=False).outputs).numpy()
    np.testing.assert_allclose(
        run.server().predict([long_text])[0]["probabilities"], want[0],
        atol=1e-6)


def test_evaluate_checkpoint_picks_the_weights_later_steps_load(trained,
                                                                tmp_path):
  model_dir = str(tmp_path / "run")
  shutil.copytree(trained[0], model_dir)
  directory = training.ModelDirectory(model_dir)
  model = training.load_trained(model_dir).model
  for variable in model.trainable_variables:  # a best checkpoint unlike the
    variable.assign(variable + 1.0)           # final one
  directory.best_saver(model)(999)
  for choice, path in (("best", directory.best_checkpoint()),
                       ("final", directory.latest_checkpoint())):
    directory.save_config(directory.load_config().replace(
        evaluate_checkpoint=choice))
    loaded = training.load_trained(model_dir).model
    reader = tf.train.load_checkpoint(path)
    for i, variable in enumerate(loaded.variables):
      np.testing.assert_array_equal(
          variable.numpy(),
          reader.get_tensor(f"model/{i}/.ATTRIBUTES/VARIABLE_VALUE"))


def test_checkpoint_restores_are_checked_against_the_manifest(trained):
  model_dir = trained[0]
  run = training.load_trained(model_dir)
  config = run.config.replace(head_config=dict(run.config.model.head_config,
                                               head_units=[4]))
  other = training.builders.model_in_scope(config, run.task,
                                        run.tokenizer.vocab_size)
  with pytest.raises(InputError, match="does not match this model: model "
                     "value \\d+ is .* there, '.*pooled_head/hidden/kernel "
                     "16x4"):
    checkpoints.restore_weights(other, tf.train.latest_checkpoint(model_dir))


@pytest.mark.parametrize("change,message", [
    (dict(gru_units=[12]), r"encoder_config.gru_units: \[8\] in the model "
     r"directory, \[12\] now"),
    (dict(optimizer="rmsprop"), "optimizer: 'adam' in the model directory, "
     "'rmsprop' now"),
    (dict(precision="mixed_bfloat16"), "precision: 'float32' in the model "
     "directory, 'mixed_bfloat16' now"),
    (dict(head_units=[4]), r"head_config.head_units: \[\] in the model "
     r"directory, \[4\] now"),
])
def test_resuming_with_other_settings_is_a_clear_error(jsonl, trained,
                                                       tmp_path, change,
                                                       message):
  model_dir = str(tmp_path / "run")
  shutil.copytree(trained[0], model_dir)
  with pytest.raises(InputError, match="Cannot resume from .*" + message):
    training.train_and_evaluate(
        tiny_config(jsonl, **dict(trained[3], epochs=3, **change)),
        model_dir, DEFAULT)
  training.set_precision("float32")


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


@pytest.fixture
def restore_float32():
  yield
  training.set_precision("float32")


@pytest.mark.parametrize("options", [
    dict(precision="mixed_float16", optimizer="sgd", lr_schedule="constant",
         clip_norm=0.0),
    dict(precision="mixed_bfloat16", optimizer="adamw", lr_schedule="linear",
         batch_tokens=600)])  # XLA: test_gpu_path.py, on a GPU host
def test_precisions_optimizers_and_token_budgets_train(
    jsonl, tmp_path, options, restore_float32):
  config = tiny_config(jsonl, deterministic=False, train_steps=4,
                       steps_per_loop=2, **options)
  summary = training.train_and_evaluate(config, str(tmp_path / "run"),
                                        DEFAULT)
  assert summary["steps"] == 4
  assert np.isfinite(summary["best_validation_accuracy"])
  if "precision" in options:
    model = training.load_trained(str(tmp_path / "run")).model
    assert model.dtype_policy.name == options["precision"]


def test_deterministic_xla_is_a_clear_error(jsonl, tmp_path):
  with pytest.raises(InputError, match="--deterministic and --jit_compile "
                     "cannot be combined"):
    training.train_and_evaluate(tiny_config(jsonl, jit_compile=True),
                                str(tmp_path / "run"), DEFAULT)


def test_divergence_stops_with_the_step_and_keeps_finite_checkpoints(
    trained, tmp_path):
  model_dir = str(tmp_path / "run")
  shutil.copytree(trained[0], model_dir)
  good_step = trained[1]["steps"]
  diverging = trained[2].replace(learning_rate=1e30, clip_norm=0.0,
                                 epochs=8, checkpoint_every_steps=1)
  with pytest.raises(training.NonFiniteLossError,
                     match=r"Non-finite .* in steps \d+-\d+: training stopped"):
    training.train_and_evaluate(diverging, model_dir, DEFAULT)
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
  assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") >= good_step
  names = [n for n in reader.get_variable_to_shape_map()
           if n.startswith("model/")]
  assert names
  for name in names:
    assert np.all(np.isfinite(reader.get_tensor(name))), name


def test_ensemble_members_train_on_their_losses_and_weights_are_fitted(
    jsonl, tmp_path, monkeypatch):
  """The naive Bayes ratios come from the training split and are kept on
  resume; the member weights are fitted on validation at the end of the
  run and are what serving reads."""
  model_dir = str(tmp_path / "run")
  config = tiny_config(jsonl, deterministic=False, train_steps=6,
                       members=["naive_bayes"], naive_bayes_buckets=4099,
                       naive_bayes_orders=[1, 2])
  summary = training.train_and_evaluate(config, model_dir, DEFAULT)
  run = training.load_trained(model_dir)
  weights = summary["held_out_fit"]["member_weights"]
  assert list(weights) == ["network", "naive_bayes"]
  np.testing.assert_allclose(run.model.member_weights,
                             list(weights.values()))
  # The fitted weights minimize the validation loss: fitting them again on
  # the validation split (other batches) finds them again.
  task = run.task
  splits = training.prepare(config, task, training.ModelDirectory(
      model_dir)).splits  # pure: the run's splits, read again
  batches = list(pipeline.make_dataset(
      splits.validation, run.featurizer, pipeline.PipelineConfig(
          max_len=96, batch_size=16, bucket_boundaries=None, shuffle=False),
      False))
  refit = mm.models.fit_member_weights(run.model, task, batches)
  np.testing.assert_allclose(list(refit["member_weights"].values()),
                             list(weights.values()), rtol=1e-3)
  assert summary["held_out_fit"]["loss"] == pytest.approx(refit["loss"],
                                                      rel=1e-4)
  # Each member trained on its own loss; history keeps their losses.
  history = json.load(open(os.path.join(model_dir, "history.json")))
  assert {"loss/network", "loss/naive_bayes", "loss"} <= set(
      history["train"][-1][1])

  reference = mm.NaiveBayesNgrams(4099, 2, orders=[1, 2])
  reference.adapt((f["ids"], f["ids"] != 0, labels) for f, labels in
                  pipeline.labelled_batches(splits.train, run.featurizer, 96))
  nb = run.model.member("naive_bayes").ngrams
  np.testing.assert_allclose(nb.ratios.numpy(), reference.ratios.numpy(),
                             rtol=1e-6)
  assert np.abs(nb.kernel.numpy()).max() > 0  # trained
  assert len(splits.train) < 240  # validation texts were not counted

  # Resuming restores the ratios from the checkpoint; it does not count the
  # training split again.
  def no_second_count(self, batches):
    raise AssertionError("adapt called on a resumed run")
  monkeypatch.setattr(mm.Ensemble, "adapt", no_second_count)
  summary = training.train_and_evaluate(config.replace(train_steps=9),
                                        model_dir, DEFAULT)
  assert summary["steps"] == 9
  resumed = training.load_trained(model_dir).model
  np.testing.assert_allclose(
      resumed.member("naive_bayes").ngrams.ratios.numpy(),
      reference.ratios.numpy(), rtol=1e-6)
