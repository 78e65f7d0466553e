"""The composed models: backbone + head, ensembles, their defaults."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import maskmodels as mm
from maskmodels import testing, training
from maskmodels.errors import InputError

VOCAB = 40
WIDTH = 14

SMALL_ENCODER = dict(conv_filters=[6, 6], kernel_size=[3, 5], strides=[1, 2],
                     pool_size=[2, 1], gru_units=[5, 4], dropout=0.3)
KEEPS_TIME = dict(conv_filters=[6], kernel_size=[3], gru_units=[5],
                  dropout=0.3)


@pytest.fixture(scope="module")
def ids():
  return testing.random_sequences(7, WIDTH, vocab_size=VOCAB, seed=11)


def classifier(**overrides):
  settings = dict(encoder_config=SMALL_ENCODER, pooling="attention",
                  head_units=[6], head_dropout=0.2, embedding_dim=8)
  settings.update(overrides)
  return lambda **kw: mm.SequenceModel.classifier(VOCAB, 3, **settings, **kw)


def ensemble(member, member_settings, adapt_on=None):
  def build(**kw):
    network = classifier()(**kw)
    model = mm.Ensemble({"network": network,
                         "side": mm.MEMBERS.get(member)(3, **member_settings,
                                                        **kw)},
                        **kw)
    model.build()
    if adapt_on is not None:
      batch = keras.utils.pad_sequences(adapt_on, padding="pre")
      model.adapt([(tf.constant(batch), tf.constant(np.arange(len(batch)) %
                                                    3))])
      side = model.member("side")
      side.ngrams.kernel.assign(tf.ones_like(side.ngrams.kernel))
    model.member_weights.assign([1.0, 2.5])
    return model
  return build


MODELS = {
    "classifier_attention": classifier(),
    "classifier_max_unidirectional": classifier(
        pooling="max", encoder_config=dict(SMALL_ENCODER,
                                           bidirectional=False)),
    "classifier_last": classifier(pooling="last"),
    "classifier_valid_convolutions_last": classifier(
        pooling="last", encoder_config=dict(
            conv_filters=[6, 6], kernel_size=[3], padding="valid",
            gru_units=[4])),
    "tagger": lambda **kw: mm.SequenceModel.tagger(
        VOCAB, 4, encoder_config=KEEPS_TIME, head_units=[5], embedding_dim=8,
        **kw),
    "ensemble_with_ngram_bag": ensemble("ngram_bag", dict(
        ngram_buckets=101, ngram_dim=6, ngram_orders=[1, 2, 3])),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_passes_the_battery(name, ids):
  """Padding invariance (values and pad-row gradients), config round trip,
  empty texts, the dtype policy of every sublayer."""
  testing.assert_layer(MODELS[name], ids, atol=1e-5)


def test_ensemble_with_naive_bayes_passes_the_battery(ids):
  factory = ensemble("naive_bayes", dict(naive_bayes_buckets=211,
                                         naive_bayes_orders=[1, 2, 3]),
                     adapt_on=ids)
  model = factory()
  ratios = model.member("side").ngrams.ratios.numpy()
  assert np.abs(ratios).max() > 0.1  # adapted
  testing.assert_layer(factory, ids, atol=1e-5)


def test_model_with_nonzero_pad_id_is_padding_invariant(ids):
  shifted = [np.where(s == 7, 1, s) for s in ids]  # 7 is now the pad id
  model = mm.SequenceModel.classifier(VOCAB, 2, encoder_config=SMALL_ENCODER,
                                      pad_id=7, embedding_dim=8)
  assert model(tf.constant([[1, 2, 7]])).outputs.shape == (1, 2)
  testing.assert_padding_invariant(model, shifted, pad_id=7)


@pytest.mark.parametrize("component,flags", [
    ("encoder_config", lambda c: c.model.encoder_config),
    ("backbone_config", lambda c: c.model.backbone_config),
    ("head_config", lambda c: c.model.head_config)])
def test_a_component_s_defaults_are_the_command_line_s(component, flags):
  default = training.ExperimentConfig.create().with_input_kind(
      mm.INPUT_KINDS.get("text"))  # the backbone follows the input kind
  built = {"encoder_config": mm.ConvGRUEncoder(),
           "backbone_config": mm.SequenceBackbone(VOCAB),
           "head_config": mm.PooledHead(2)}[component]
  assert built.settings.to_dict() == flags(default)
  # The config round trip keeps every setting.
  assert type(built).from_config(built.get_config()).settings == (
      built.settings)


def test_a_per_step_head_refuses_an_encoder_that_changes_the_time_axis():
  for config, named in ((dict(pool_size=[2]), "pool_size=2"),
                        (dict(strides=[3]), "strides=3"),
                        (dict(padding="valid"), "padding=valid")):
    with pytest.raises(InputError, match=f"per-step head needs an encoder "
                       f"that keeps the time axis.*{named}"):
      mm.SequenceModel.tagger(VOCAB, 3, encoder_config=dict(
          KEEPS_TIME, **config))
  with pytest.raises(InputError, match="head .pooled. gives per-sequence "
                     "outputs; this task labels tokens"):
    training.builders.model_in_scope(
        training.ExperimentConfig.create(task="tagging", head="pooled",
                                         label_names=["A", "B"]),
        mm.tasks.build_task("tagging", {}, ["A", "B"]), VOCAB)


def test_overriding_call_changes_training_and_serving(ids):
  class Doubled(mm.SequenceModel):
    def call(self, inputs, training=None):
      outputs = super().call(inputs, training=training)
      return outputs._replace(outputs=2.0 * outputs.outputs)

  model = classifier(head_dropout=0.0, encoder_config=dict(
      SMALL_ENCODER, dropout=0.0))()
  doubled = Doubled(model.backbone, model.head)
  batch = tf.constant(keras.utils.pad_sequences(ids, padding="post"))
  np.testing.assert_allclose(doubled(batch).outputs,
                             2 * model(batch).outputs, atol=1e-6)
  task = mm.tasks.build_task("classification", {}, ["a", "b", "c"])
  trainer = training.Trainer(task, doubled, training.make_optimizer(
      "sgd", 0.0), tf.distribute.get_strategy())
  _, state = trainer.forward_backward(
      ({"ids": batch}, tf.zeros([len(ids)], tf.int32), tf.ones([len(ids)])),
      tf.ones([len(ids)]), float(len(ids)))
  np.testing.assert_allclose(state["output"].outputs,
                             2 * model(batch, training=True).outputs,
                             atol=1e-6)


def test_keras_file_round_trip_gives_identical_outputs(tmp_path, ids):
  model = ensemble("ngram_bag", dict(ngram_buckets=97, ngram_dim=4,
                                     ngram_orders=[2, 3]))()
  # Move the batch-norm moving statistics away from their initial values so
  # the round trip is shown to keep non-trainable state too.
  model(tf.constant([[1, 2, 3, 0], [4, 5, 0, 0]]), training=True)
  batch = keras.utils.pad_sequences(ids, padding="post")
  expected = model(batch).outputs.numpy()
  path = str(tmp_path / "model.keras")
  model.save(path)
  loaded = keras.models.load_model(path, safe_mode=True)
  assert isinstance(loaded, mm.Ensemble)
  np.testing.assert_array_equal(loaded(batch).outputs, expected)
  np.testing.assert_array_equal(loaded.member_weights, [1.0, 2.5])


def test_ngram_bag_reads_the_ngrams_of_real_steps_in_order():
  bag = mm.HashedNgramBag(buckets=1009, dim=5, orders=[2])
  text = tf.constant([[5, 6, 7]])
  padded = tf.constant([[0, 0, 5, 6, 7, 0]])
  alone = bag(text).numpy()
  np.testing.assert_allclose(bag(padded, mask=padded != 0), alone,
                             atol=1e-6)
  assert not np.allclose(bag(tf.constant([[7, 6, 5]])), alone)  # order counts
  np.testing.assert_array_equal(bag(tf.constant([[5, 0]]),  # no bigram
                                    mask=tf.constant([[True, False]])), 0.0)
  with pytest.raises(ValueError, match="orders must be positive ints"):
    mm.HashedNgramBag(10, 2, orders=[0])


def _ngram_set(ids, orders):
  """The distinct n-grams (tuples) of a list of ids."""
  return {tuple(ids[i:i + n]) for n in orders for i in range(len(ids) - n + 1)}


def test_naive_bayes_ratios_count_each_text_once_per_ngram():
  texts = [[5, 6, 5, 6, 5], [5, 7], [6, 6, 6], [7, 8, 9]]
  labels = [1, 1, 0, 0]
  layer = mm.NaiveBayesNgrams(buckets=100_003, num_classes=2, orders=[1, 2],
                              smoothing=0.5)
  batch = keras.utils.pad_sequences(texts, padding="post")
  layer.adapt([(batch, batch != 0, labels)])
  # The reference: naive Bayes over sets of n-grams, without hashing (no
  # collisions among these few codes).
  counts = {}
  for text, label in zip(texts, labels):
    for gram in _ngram_set(text, [1, 2]):
      counts.setdefault(gram, np.zeros(2))[label] += 1
  totals = sum(counts.values()) + 0.5 * 100_003
  codes, _ = mm.layers.ngrams.ngram_codes(
      tf.constant([[5, 6]]), tf.constant([[True, True]]), [1, 2], 100_003)
  for gram, code in zip([(5,), (6,), (5, 6)], codes.numpy()[0]):
    log_p = np.log((counts[gram] + 0.5) / totals)
    np.testing.assert_allclose(layer.ratios.numpy()[code],
                               log_p - log_p.mean(), rtol=1e-5)
  # Logits: each distinct n-gram of real steps once, on either padding side.
  layer.kernel.assign(tf.random.normal(layer.kernel.shape, seed=1))
  layer.bias.assign([0.5, -0.5])
  want = 0.0
  for gram in _ngram_set([5, 6, 5, 6, 5], [1, 2]):
    code = mm.layers.ngrams.ngram_codes(
        tf.constant([gram]), tf.ones([1, len(gram)], tf.bool), [len(gram)],
        100_003)[0].numpy()[0, 0]
    want += layer.ratios.numpy()[code] * layer.kernel.numpy()[code]
  for batch in ([[5, 6, 5, 6, 5]], [[0, 0, 5, 6, 5, 6, 5]],
                [[5, 6, 5, 6, 5, 0, 0, 0]]):
    batch = tf.constant(batch)
    np.testing.assert_allclose(layer(batch, mask=batch != 0).numpy()[0],
                               want + [0.5, -0.5], rtol=1e-5)
  np.testing.assert_allclose(layer(tf.zeros([2, 3], tf.int32),
                                   mask=tf.zeros([2, 3], tf.bool)),
                             [[0.5, -0.5]] * 2)
  with pytest.raises(ValueError, match="smoothing must be > 0, got 0"):
    mm.NaiveBayesNgrams(10, 2, smoothing=0)


def test_member_weights_minimize_the_held_out_loss():
  """Three members, one right, one wrong and one noise: the fitted weights
  give a loss no point of a grid around them beats, weigh the right member
  most, and are what the result reports."""
  rng = np.random.default_rng(3)
  labels = rng.integers(0, 2, size=60)

  class Fixed(keras.Model):
    def __init__(self, logits, **kwargs):
      super().__init__(**kwargs)
      self.fixed = tf.constant(logits, tf.float32)

    def call(self, inputs, training=None):
      return tf.gather(self.fixed, tf.cast(inputs[:, 0], tf.int32))

  right = np.eye(2)[labels] * 0.3 + rng.normal(scale=0.2, size=(60, 2))
  wrong = np.eye(2)[1 - labels] * 0.2
  noise = rng.normal(size=(60, 2))
  model = mm.Ensemble({"a": Fixed(noise), "b": Fixed(right),
                       "c": Fixed(wrong)})
  model(tf.zeros([1, 1], tf.int32))
  task = mm.tasks.build_task("classification", {}, ["0", "1"])
  batches = [(tf.constant(np.arange(60)[i:i + 16, None]),
              tf.constant(labels[i:i + 16], tf.int32), tf.ones(
                  [len(labels[i:i + 16])])) for i in range(0, 60, 16)]
  result = mm.models.fit_member_weights(model, task, batches)
  chosen = model.member_weights.numpy()
  assert result["member_weights"] == dict(zip("abc", map(float, chosen)))

  def loss_and_accuracy(weights):
    combined = weights[0] * noise + weights[1] * right + weights[2] * wrong
    log_softmax = combined - np.log(np.exp(combined).sum(1, keepdims=True))
    return (-log_softmax[np.arange(60), labels].mean(),
            (combined.argmax(1) == labels).mean())

  fitted_loss, fitted_accuracy = loss_and_accuracy(chosen)
  assert result["loss"] == pytest.approx(fitted_loss, rel=1e-5)
  assert result["accuracy"] == pytest.approx(fitted_accuracy)
  assert chosen[1] > max(chosen[0], chosen[2]) and np.all(chosen >= 0)
  grid = [np.maximum(chosen + step, 0.0) for step in np.stack(np.meshgrid(
      *[[-0.2, 0.0, 0.2]] * 3), -1).reshape(-1, 3)]
  assert fitted_loss <= min(loss_and_accuracy(w)[0] for w in grid) + 1e-4
  assert fitted_loss < loss_and_accuracy(np.ones(3))[0]
  # Tied (alike members, copies of a network): the hook fits one scale of
  # their mean, the best of any scale.
  alike = rng.normal(scale=0.1, size=(60, 2))
  copies = mm.Ensemble({"x": Fixed(right), "y": Fixed(right + alike)},
                       tied=True)
  copies(tf.zeros([1, 1], tf.int32))
  tied = copies.fit_held_out(task, batches)
  weights = copies.member_weights.numpy()
  assert weights[0] == weights[1] > 0.5  # sharper than the plain mean

  def tied_loss(scale):
    combined = scale * (right + (right + alike)) / 2
    log_softmax = combined - np.log(np.exp(combined).sum(1, keepdims=True))
    return -log_softmax[np.arange(60), labels].mean()

  assert tied["loss"] == pytest.approx(tied_loss(2 * weights[0]), rel=1e-5)
  assert tied["loss"] <= min(tied_loss(scale) for scale in np.linspace(
      0.0, 20.0, 401)) + 1e-4


def test_registry_finds_builtins_and_reports_unknown_names():
  assert mm.ENCODERS.get("conv_gru") is mm.ConvGRUEncoder
  assert mm.MODELS.get("sequence") is mm.SequenceModel
  assert mm.HEADS.get("per_step") is mm.PerStepHead
  assert mm.MEMBERS.get("naive_bayes") is mm.NaiveBayesClassifier
  assert set(mm.MaskedPooling.MODES) <= set(mm.POOLINGS.names())
  # Other test files register encoders of their own in this process, so
  # the list is checked for the built-in name, not for its first entry.
  with pytest.raises(ValueError, match=r"encoder 'transformer' is not "
                     r"registered; choose one of (\w+, )*conv_gru\b"):
    mm.SequenceBackbone(VOCAB, encoder="transformer")
  with pytest.raises(ValueError, match="already registered"):
    mm.register_encoder("conv_gru")(type("Other", (mm.Encoder,), {}))


def test_model_argument_errors_name_the_value():
  with pytest.raises(ValueError, match="output_size must be a positive int"):
    mm.PooledHead(0)
  with pytest.raises(InputError, match=r"kernel_size=\[3, 5, 7\]: give one "
                     r"value for every conv block or one per block \(2\)"):
    mm.ConvGRUEncoder(conv_filters=[4, 4], kernel_size=[3, 5, 7])
  with pytest.raises(InputError, match=r"--dropout=1.5: expected a number in \[0, 0.99\]"):
    mm.ConvGRUEncoder(dropout=1.5)
