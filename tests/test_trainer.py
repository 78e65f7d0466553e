"""The training loop under the default and a 2-replica mirrored strategy."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import maskmodels as mm
from maskmodels import data, testing, training
from maskmodels.data import synthetic

BATCH = 8


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  texts, labels = synthetic.generate_reviews(101, seed=1)  # 101: odd on purpose
  examples = data.Examples(texts, np.array(labels, np.int32))
  path = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
  data.write_vocabulary(data.learn_vocabulary(texts, "word", 500, verbose=0),
                        path)
  return examples, data.Featurizer(data.build_tokenizer("word", path))


TASK = mm.ClassificationTask(label_names=["neg", "pos"])


def _trainer(strategy, featurizer, clip_norm=0.05, dropout=0.0, seed=3,
             normalization="batch", naive_bayes=None):
  """A trainer of a small classifier; ``naive_bayes``: examples to adapt a
  naive Bayes member to (none if None)."""
  keras.utils.set_random_seed(seed)
  with strategy.scope():
    model = mm.SequenceModel.classifier(
        featurizer.tokenizer.vocab_size, 2, embedding_dim=16,
        pooling="attention", head_dropout=dropout,
        encoder_config=dict(conv_filters=[16], kernel_size=[3], strides=[2],
                            gru_units=[8], dropout=dropout,
                            normalization=normalization))
    if naive_bayes:
      model = mm.Ensemble({"network": model, "naive_bayes":
                           mm.NaiveBayesClassifier(
                               2, naive_bayes_buckets=997)})
    model.build()
  if naive_bayes:
    model.adapt(data.labelled_batches(naive_bayes, featurizer, 120))
    model.member_weights.assign([1.0, 2.5])  # weighs outputs, not training
  with strategy.scope():
    optimizer = training.make_optimizer("adam", 3e-3)
    optimizer.build(model.trainable_variables)
  return training.Trainer(TASK, model, optimizer, strategy,
                          clip_norm=clip_norm)


def _train_losses(strategy, corpus, steps=6, dropout=0.0, naive_bayes=False):
  examples, featurizer = corpus
  trainer = _trainer(strategy, featurizer, dropout=dropout,
                     naive_bayes=examples if naive_bayes else None)
  # No shuffling and no bucketing: both strategies see the same global
  # batches; each replica gets its half of every batch.
  config = data.PipelineConfig(max_len=120, batch_size=BATCH, shuffle=False)
  trainer.set_train_data(lambda ctx, start: data.make_dataset(
      examples, featurizer, config, True, ctx, start))

  def evaluate():
    return trainer.evaluate(lambda ctx: data.make_dataset(
        examples, featurizer, config, False, ctx))

  trainer.untrained = evaluate()
  losses = [trainer.train(1)["loss"] for _ in range(steps)]
  results = evaluate()
  trainer.close()
  return losses, results, trainer


def test_mirrored_training_matches_default_strategy(corpus, mirrored):
  """An ensemble (a network and a naive Bayes member) on 1 and 2 replicas."""
  naive_bayes = True
  default_losses, default_eval, default_trainer = _train_losses(
      tf.distribute.get_strategy(), corpus, naive_bayes=naive_bayes)
  mirrored_losses, mirrored_eval, mirrored_trainer = _train_losses(
      mirrored, corpus, naive_bayes=naive_bayes)
  assert mirrored_trainer.strategy.num_replicas_in_sync == 2
  np.testing.assert_allclose(mirrored_losses, default_losses, atol=1e-4)
  assert default_eval["loss"] < default_trainer.untrained["loss"]  # learns
  for got, want in zip(mirrored_trainer.model.get_weights(),
                       default_trainer.model.get_weights()):
    np.testing.assert_allclose(got, want, atol=1e-4)
  assert default_eval["examples"] == mirrored_eval["examples"] == 101
  assert mirrored_eval["accuracy"] == pytest.approx(default_eval["accuracy"],
                                                    abs=1e-6)
  assert mirrored_eval["loss"] == pytest.approx(default_eval["loss"], abs=1e-4)
  assert mirrored_trainer.step == default_trainer.step == 6


def test_each_member_of_an_ensemble_learns_from_its_own_loss(corpus):
  examples, featurizer = corpus
  trainer = _trainer(tf.distribute.get_strategy(), featurizer,
                     naive_bayes=examples)
  model, nb = trainer.model, trainer.model.member("naive_bayes").ngrams
  nb.kernel.assign(tf.random.normal(nb.kernel.shape, seed=2))
  ids = featurizer.tokenizer.encode(examples.texts[:6], 80).to_tensor()
  labels = tf.constant(examples.labels[:6])
  grads, state = trainer.forward_backward(
      ({"ids": ids}, labels, tf.ones([6])), tf.ones([6]), 6.0)
  losses, output = state["losses"], state["output"].outputs
  members = model({"ids": ids}, training=True).members
  head, naive = members["network"].outputs, members["naive_bayes"].outputs
  np.testing.assert_allclose(output, head + 2.5 * naive, atol=1e-5)
  own = [keras.losses.sparse_categorical_crossentropy(labels, member,
                                                      from_logits=True)
         for member in (head, naive)]
  np.testing.assert_allclose(losses["loss/network"], own[0], rtol=1e-5)
  np.testing.assert_allclose(losses["loss/naive_bayes"], own[1], rtol=1e-5)
  # The reported loss is the combined output's, comparable with evaluation.
  np.testing.assert_allclose(losses["loss"], TASK.compute_loss(
      labels, mm.outputs.ModelOutputs(head + 2.5 * naive), False), rtol=1e-5)
  # The naive Bayes member's gradient is that of its own loss alone, and the
  # network's is that of the network's loss alone.
  with tf.GradientTape(persistent=True) as tape:
    members = model({"ids": ids}, training=True).members
    mean_own = [tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
        labels, members[name].outputs, from_logits=True))
                for name in ("network", "naive_bayes")]
  names = [v.path for v in model.trainable_variables]
  for name, grad, variable in zip(names, grads, model.trainable_variables):
    member = 1 if "naive_bayes" in name else 0
    want = tape.gradient(mean_own[member], variable)
    np.testing.assert_allclose(tf.convert_to_tensor(grad),
                               tf.convert_to_tensor(want), atol=1e-6,
                               err_msg=name)
  assert any("naive_bayes" in name for name in names)


def test_dropout_curve_with_two_replicas_stays_close_to_one(corpus,
                                                            mirrored):
  one, _, _ = _train_losses(tf.distribute.get_strategy(), corpus, 16, 0.3)
  two, _, _ = _train_losses(mirrored, corpus, 16, 0.3)
  assert np.mean(one[-5:]) < np.mean(one[:5])
  assert np.mean(two[-5:]) < np.mean(two[:5])
  assert abs(np.mean(one[-5:]) - np.mean(two[-5:])) < 0.1
  assert one != two  # the replicas drew masks of their own


def test_dropout_masks_differ_across_replicas(mirrored):
  with mirrored.scope():
    layers = [mm.Dropout(0.5), mm.MaskedGRU(4, dropout=0.5).input_dropout]
  for layer in layers:
    step = tf.function(lambda: mirrored.run(
        lambda: layer(tf.ones([4, 3, 16]), training=True)))
    first, second = mirrored.experimental_local_results(step())
    assert not np.array_equal(first, second)
  # The same seed state draws the same masks again (resume, determinism).
  keras.utils.set_random_seed(1)
  a = mm.Dropout(0.5)(tf.ones([4, 16]), training=True)
  keras.utils.set_random_seed(1)
  b = mm.Dropout(0.5)(tf.ones([4, 16]), training=True)
  np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("normalization", ["batch", "none"])
def test_a_step_holds_one_gradient_all_reduce(corpus, mirrored,
                                              normalization):
  examples, featurizer = corpus
  trainer = _trainer(mirrored, featurizer, normalization=normalization)
  config = data.PipelineConfig(max_len=60, batch_size=BATCH)
  trainer.set_train_data(lambda ctx, start: data.make_dataset(
      examples, featurizer, config, True, ctx, start))
  with testing.CollectiveCounter(mirrored, trainer) as counter:
    trainer.train(2)
  batch_norm = 1 if normalization == "batch" else 0
  # The example count, the gradients, and per batch-norm layer its moments
  # forward and their gradient backward; Keras broadcasts its iteration
  # counter. No moving-statistic or second gradient reduction.
  assert counter.gradient_all_reduces() == 1
  assert [c for c in counter.calls if c[0] == "reduce_to"] == []
  assert len([c for c in counter.calls if c[0] == "batch_reduce_to"]) == (
      2 + 2 * batch_norm)


@pytest.mark.parametrize("batch_size", [7, 200])
def test_evaluation_counts_every_example_once(corpus, mirrored, batch_size):
  examples, featurizer = corpus
  for strategy in (tf.distribute.get_strategy(), mirrored):
    if batch_size % strategy.num_replicas_in_sync:
      continue
    trainer = _trainer(strategy, featurizer)
    config = data.PipelineConfig(max_len=60, batch_size=batch_size,
                                 bucket_boundaries=(20, 40))
    results = trainer.evaluate(lambda ctx: data.make_dataset(
        examples, featurizer, config, False, ctx), steps_per_call=2)
    assert results["examples"] == len(examples)


def test_traces_do_not_grow_with_steps_or_bucket_shapes(corpus):
  examples, featurizer = corpus
  trainer = _trainer(tf.distribute.get_strategy(), featurizer)
  config = data.PipelineConfig(max_len=120, batch_size=BATCH,
                               bucket_boundaries=(30, 60, 90))
  trainer.set_train_data(lambda ctx, start: data.make_dataset(
      examples, featurizer, config, True, ctx, start))
  for steps in (2, 1, 3, 5, 2):
    trainer.train(steps)
  for _ in range(2):
    trainer.evaluate(lambda ctx: data.make_dataset(examples, featurizer,
                                                   config, False, ctx))
  assert trainer.trace_counts == {"train": 1, "eval": 1}


def test_learning_rate_schedules_warm_up_then_decay():
  cosine = training.learning_rate_schedule("cosine", 1.0, 100, 10)
  linear = training.learning_rate_schedule("linear", 1.0, 100, 10)
  constant = training.learning_rate_schedule("constant", 1.0, 100, 10)
  for schedule in (cosine, linear, constant):
    assert float(schedule(0)) == pytest.approx(0.1)  # the first step learns
    assert float(schedule(4)) == pytest.approx(0.5)
    assert float(schedule(9)) == pytest.approx(1.0)
    assert float(schedule(10)) == pytest.approx(1.0)
    assert float(schedule(99)) > 0.0  # so does the last
  assert float(cosine(100)) == pytest.approx(0.0, abs=1e-6)
  assert float(linear(55)) == pytest.approx(0.5)
  assert float(constant(90)) == pytest.approx(1.0)
  assert float(training.learning_rate_schedule("cosine", 1.0, 10)(0)) == 1.0
  with pytest.raises(ValueError, match="learning-rate schedule 'step' is not "
                     "registered; choose one of constant, cosine, linear"):
    training.learning_rate_schedule("step", 1.0, 10)


def test_strategy_names_and_errors():
  assert training.get_strategy("default") is tf.distribute.get_strategy()
  assert isinstance(training.get_strategy("one_device"),
                    tf.distribute.OneDeviceStrategy)
  with pytest.raises(ValueError, match="strategy 'horovod' is not "
                     "registered; choose one of default, mirrored"):
    training.get_strategy("horovod")
  with pytest.raises(ValueError, match="needs the cluster in the TF_CONFIG"):
    training.get_strategy("multi_worker_mirrored")
  with pytest.raises(ValueError, match="No TPU found"):
    training.get_strategy("tpu")


def test_bfloat16_on_a_cpu_without_it_is_warned_once_with_the_slowdown(
    tmp_path, caplog):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("flags\t\t: fpu avx2 avx512f\n")
  assert training.optimization.cpu_has_native_bfloat16(str(cpuinfo)) is False
  cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
  assert training.optimization.cpu_has_native_bfloat16(str(cpuinfo)) is True
  assert training.optimization.cpu_has_native_bfloat16(
      str(tmp_path / "none")) is None
