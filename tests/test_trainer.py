"""The training loop under the default and a 2-replica mirrored strategy."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import maskmodels as mm
from maskmodels import data, training
from maskmodels.data import synthetic

BATCH = 8


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  texts, labels = synthetic.generate_reviews(101, seed=1)  # 101: odd on purpose
  examples = data.Examples(texts, np.array(labels, np.int32), ["neg", "pos"])
  path = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
  data.write_vocabulary(data.learn_vocabulary(texts, "word", 500), path)
  return examples, data.build_tokenizer("word", path)


def _setup(strategy, tokenizer, clip_norm=0.05):
  keras.utils.set_random_seed(3)
  with strategy.scope():
    model = mm.SequenceClassifier(
        tokenizer.vocab_size, 2, 16, pooling="attention",
        encoder_config=dict(conv_filters=[16], kernel_size=3, strides=2,
                            gru_units=[8]))
    model(tf.zeros([1, 1], tf.int32))
    optimizer = training.make_optimizer("adam", 3e-3)
    optimizer.build(model.trainable_variables)
  return training.Trainer(model, optimizer, strategy, clip_norm=clip_norm)


def _train_losses(strategy, corpus, steps=6):
  examples, tokenizer = corpus
  trainer = _setup(strategy, tokenizer)
  # No shuffling and no bucketing: both strategies see the same examples in
  # each step, though each replica pads its half to its own width.
  config = data.PipelineConfig(max_len=120, batch_size=BATCH, shuffle_buffer=0)
  dataset = strategy.distribute_datasets_from_function(
      lambda ctx: data.make_dataset(examples, tokenizer, config, True,
                                    ctx).repeat())
  iterator = iter(dataset)
  losses = []
  for _ in range(steps):
    trainer.reset_train_metrics()
    losses.append(trainer.train(iterator, 1)["loss"])
  eval_dataset = strategy.experimental_distribute_dataset(
      data.make_dataset(examples, tokenizer, config, False))
  return losses, trainer.evaluate(eval_dataset), trainer


def test_mirrored_training_matches_default_strategy(corpus, mirrored):
  default_losses, default_eval, default_trainer = _train_losses(
      tf.distribute.get_strategy(), corpus)
  mirrored_losses, mirrored_eval, mirrored_trainer = _train_losses(
      mirrored, corpus)
  assert mirrored_trainer.strategy.num_replicas_in_sync == 2
  np.testing.assert_allclose(mirrored_losses, default_losses, atol=1e-4)
  assert default_losses[-1] < default_losses[0]  # it learns
  for got, want in zip(mirrored_trainer.model.get_weights(),
                       default_trainer.model.get_weights()):
    np.testing.assert_allclose(got, want, atol=1e-4)
  assert default_eval["examples"] == mirrored_eval["examples"] == 101
  assert mirrored_eval["accuracy"] == pytest.approx(default_eval["accuracy"],
                                                    abs=1e-6)
  assert mirrored_eval["loss"] == pytest.approx(default_eval["loss"], abs=1e-4)


@pytest.mark.parametrize("batch_size", [1, 7, 16, 200])
def test_evaluation_counts_every_example_once(corpus, mirrored, batch_size):
  examples, tokenizer = corpus
  for strategy in (tf.distribute.get_strategy(), mirrored):
    trainer = _setup(strategy, tokenizer)
    config = data.PipelineConfig(max_len=60, batch_size=batch_size,
                                 bucket_boundaries=(20, 40))
    dataset = strategy.experimental_distribute_dataset(
        data.make_dataset(examples, tokenizer, config, False))
    assert trainer.evaluate(dataset)["examples"] == len(examples)


def test_traces_do_not_grow_with_steps_or_bucket_shapes(corpus):
  examples, tokenizer = corpus
  trainer = _setup(tf.distribute.get_strategy(), tokenizer)
  config = data.PipelineConfig(max_len=120, batch_size=BATCH,
                               bucket_boundaries=(30, 60, 90))
  iterator = iter(tf.distribute.get_strategy().distribute_datasets_from_function(
      lambda ctx: data.make_dataset(examples, tokenizer, config, True,
                                    ctx).repeat()))
  trainer.train(iterator, 2)
  for steps in (1, 3, 5, 2):
    trainer.train(iterator, steps)
  assert trainer.trace_counts["train"] == 1


def test_learning_rate_schedules_warm_up_then_decay():
  cosine = training.learning_rate_schedule("cosine", 1.0, 100, 10)
  linear = training.learning_rate_schedule("linear", 1.0, 100, 10)
  constant = training.learning_rate_schedule("constant", 1.0, 100, 10)
  for schedule in (cosine, linear, constant):
    assert float(schedule(0)) == pytest.approx(0.0)
    assert float(schedule(5)) == pytest.approx(0.5)
    assert float(schedule(10)) == pytest.approx(1.0)
  assert float(cosine(100)) == pytest.approx(0.0, abs=1e-6)
  assert float(linear(55)) == pytest.approx(0.5)
  assert float(constant(90)) == pytest.approx(1.0)
  with pytest.raises(ValueError, match="Unknown learning-rate schedule "
                     "'step'.*cosine"):
    training.learning_rate_schedule("step", 1.0, 10)


def test_strategy_names_and_errors():
  assert training.get_strategy("default") is tf.distribute.get_strategy()
  assert isinstance(training.get_strategy("one_device"),
                    tf.distribute.OneDeviceStrategy)
  with pytest.raises(ValueError, match="Unknown strategy 'horovod'; "
                     "available: default, one_device, mirrored"):
    training.get_strategy("horovod")
  with pytest.raises(ValueError, match="needs the cluster in the TF_CONFIG"):
    training.get_strategy("multi_worker_mirrored")
  with pytest.raises(ValueError, match="No TPU found"):
    training.get_strategy("tpu")
