import numpy as np
import pytest
import tensorflow as tf
import keras

import maskmodels as mm
from maskmodels import testing

VOCAB = 40
WIDTH = 14

SMALL_ENCODER = dict(conv_filters=[6, 6], kernel_size=[3, 5], strides=[1, 2],
                     pool_size=[2, 1], gru_units=[5, 4], dropout=0.3)


@pytest.fixture(scope="module")
def ids():
  return testing.random_sequences(7, WIDTH, vocab_size=VOCAB, seed=11)


@pytest.mark.parametrize("pooling", mm.MaskedPooling.MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_classifier_is_padding_invariant(ids, pooling, bidirectional):
  model = mm.SequenceClassifier(
      VOCAB, num_classes=3, embedding_dim=8, pooling=pooling,
      encoder_config=dict(SMALL_ENCODER, bidirectional=bidirectional),
      head_units=[6], dropout=0.2)
  testing.assert_padding_invariant(model, ids, atol=1e-5)


@pytest.mark.parametrize("config", [
    dict(conv_filters=[], gru_units=[4]),            # GRU only
    dict(conv_filters=[4], gru_units=[]),            # conv only
    dict(conv_filters=[4, 4], kernel_size=3, strides=2, dilation_rate=1,
         padding="valid", normalization="layer", gru_units=[3]),
    dict(conv_filters=[4], dilation_rate=2, padding="causal", gru_units=[3]),
    dict(conv_filters=[4], strides=2, gru_units=[3], bidirectional=True,
         concat_conv=True),                          # conv features beside GRU
])
def test_encoder_variants_are_padding_invariant(config):
  encoder = mm.ConvGRUEncoder(**config)
  testing.assert_padding_invariant(
      encoder, testing.random_sequences(6, WIDTH, dim=5, seed=12))


def test_binary_classifier_with_nonzero_pad_id(ids):
  shifted = [np.where(s == 7, 1, s) for s in ids]  # 7 is now the pad id
  model = mm.SequenceClassifier(VOCAB, num_classes=2, embedding_dim=8,
                                encoder_config=SMALL_ENCODER, pad_id=7)
  assert model(tf.constant([[1, 2, 7]])).shape == (1, 2)
  testing.assert_padding_invariant(model, shifted, pad_id=7)


def test_classifier_empty_texts_have_finite_outputs_and_gradients():
  model = mm.SequenceClassifier(VOCAB, 2, 8, encoder_config=SMALL_ENCODER,
                                pooling="attention")
  ids = tf.zeros([3, 9], tf.int32)
  with tf.GradientTape() as tape:
    logits = model(ids, training=True)
    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
        tf.constant([0, 1, 1]), logits, from_logits=True))
  grads = tape.gradient(loss, model.trainable_variables)
  assert np.all(np.isfinite(logits.numpy()))
  for grad in grads:
    assert np.all(np.isfinite(tf.convert_to_tensor(grad).numpy()))


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_classifier_with_an_ngram_bag_is_padding_invariant(ids, pooling):
  model = mm.SequenceClassifier(
      VOCAB, num_classes=2, embedding_dim=8, pooling=pooling,
      encoder_config=SMALL_ENCODER, ngram_buckets=101, ngram_dim=6,
      ngram_orders=[1, 2, 3], dropout=0.2)
  testing.assert_padding_invariant(model, ids, atol=1e-5)
  empty = model(tf.zeros([2, 4], tf.int32))
  assert np.all(np.isfinite(empty.numpy()))


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
  for ids in ([[5, 6, 5, 6, 5]], [[0, 0, 5, 6, 5, 6, 5]],
              [[5, 6, 5, 6, 5, 0, 0, 0]]):
    ids = tf.constant(ids)
    np.testing.assert_allclose(layer(ids, mask=ids != 0).numpy()[0],
                               want + [0.5, -0.5], rtol=1e-5)
  np.testing.assert_allclose(layer(tf.zeros([2, 3], tf.int32),
                                   mask=tf.zeros([2, 3], tf.bool)),
                             [[0.5, -0.5]] * 2)
  with pytest.raises(ValueError, match="smoothing must be > 0, got 0"):
    mm.NaiveBayesNgrams(10, 2, smoothing=0)


def test_classifier_with_naive_bayes_ngrams_is_padding_invariant(ids):
  model = mm.SequenceClassifier(
      VOCAB, num_classes=3, embedding_dim=8, pooling="attention",
      encoder_config=SMALL_ENCODER, naive_bayes_buckets=211,
      naive_bayes_orders=[1, 2, 3])
  batch = keras.utils.pad_sequences(ids, padding="pre")
  model.adapt([(tf.constant(batch), tf.constant([0, 1, 2, 0, 1, 2, 0]))])
  ratios = model.naive_bayes.ratios.numpy()
  assert np.abs(ratios).max() > 0.1
  model.naive_bayes.kernel.assign(tf.ones_like(model.naive_bayes.kernel))
  testing.assert_padding_invariant(model, ids, atol=1e-5)
  clone = mm.SequenceClassifier.from_config(model.get_config())
  clone.build()
  clone.set_weights(model.get_weights())
  np.testing.assert_allclose(clone(batch), model(batch), atol=1e-6)


def _trained_classifier():
  model = mm.SequenceClassifier(VOCAB, 3, 8, encoder_config=SMALL_ENCODER,
                                pooling="attention", head_units=[4],
                                ngram_buckets=97, ngram_dim=4,
                                ngram_orders=[2, 3])
  model(tf.ones([1, 3], tf.int32))
  # Move the batch-norm moving statistics away from their initial values so
  # the round trip is shown to keep non-trainable state too.
  model(tf.constant([[1, 2, 3, 0], [4, 5, 0, 0]]), training=True)
  return model


def test_keras_file_round_trip_gives_identical_outputs(tmp_path, ids):
  model = _trained_classifier()
  batch = tf.keras.preprocessing.sequence.pad_sequences(ids, padding="post")
  expected = model(batch).numpy()
  path = str(tmp_path / "model.keras")
  model.save(path)
  loaded = keras.models.load_model(path, safe_mode=True)
  assert isinstance(loaded, mm.SequenceClassifier)
  np.testing.assert_array_equal(loaded(batch), expected)


def test_get_config_round_trip_gives_identical_outputs(ids):
  model = _trained_classifier()
  batch = tf.keras.preprocessing.sequence.pad_sequences(ids, padding="pre")
  clone = mm.SequenceClassifier.from_config(model.get_config())
  clone.build()
  clone.set_weights(model.get_weights())
  np.testing.assert_array_equal(clone(batch), model(batch))


def test_registry_finds_builtins_and_reports_unknown_names():
  assert mm.ENCODERS.get("conv_gru") is mm.ConvGRUEncoder
  assert mm.MODELS.get("classifier") is mm.SequenceClassifier
  assert set(mm.MaskedPooling.MODES) <= set(mm.POOLINGS.names())
  with pytest.raises(ValueError, match="encoder 'transformer' is not registered; choose one of conv_gru"):
    mm.SequenceClassifier(VOCAB, encoder="transformer")
  with pytest.raises(ValueError, match="already registered"):
    mm.register_encoder("conv_gru")(type("Other", (mm.Encoder,), {}))


def test_classifier_argument_errors_name_the_value():
  with pytest.raises(ValueError, match="num_classes must be an int >= 2.*1"):
    mm.SequenceClassifier(VOCAB, num_classes=1)
  with pytest.raises(ValueError, match="kernel_size must be an int or a list "
                     "of 2 ints"):
    mm.ConvGRUEncoder(conv_filters=[4, 4], kernel_size=[3])


def test_valid_convolutions_with_last_step_pooling_build_and_are_invariant(
    ids):
  # The build batch [1, 1] is emptied by the "valid" convolution.
  model = mm.SequenceClassifier(
      VOCAB, 2, 8, pooling="last", encoder_config=dict(
          conv_filters=[6, 6], kernel_size=3, padding="valid",
          gru_units=[4]))
  model.build()
  assert model(tf.zeros([2, 0], tf.int32)).shape == (2, 2)
  testing.assert_padding_invariant(model, ids, atol=1e-5)
