import numpy as np
import pytest
import tensorflow as tf
import keras

import maskmodels as mm
from maskmodels import masking, testing


def test_checker_fails_on_a_mask_ignoring_conv_gru_model():
  # The textbook mistake: Conv1D drops the mask, so the GRU reads padding.
  model = keras.Sequential([
      keras.layers.Embedding(30, 8, mask_zero=True),
      keras.layers.Conv1D(8, 3, padding="same"),
      keras.layers.GRU(8),
      keras.layers.Dense(2)])
  ids = testing.random_sequences(5, 10, vocab_size=30, seed=1)
  model(tf.constant([[1, 2]]))
  with pytest.raises(testing.PaddingInvarianceError) as error:
    testing.assert_padding_invariant(
        model, ids, pad_rows=[(model.layers[0].embeddings, 0)])
  message = str(error.value)
  assert "is not padding invariant" in message
  for check in ("alone, extra right padding", "batched, left padding",
                "gradient at pad steps"):
    assert f"[{check}]" in message
  assert "max |diff| = " in message and "exceeds atol 1e-05" in message


class _LeakyMean(keras.layers.Layer):
  """Mean pooling with a leak from pad steps of size ``scale``."""

  def __init__(self, scale, **kwargs):
    super().__init__(**kwargs)
    self.scale = scale

  def call(self, inputs, mask=None, training=None):
    leak = tf.reduce_sum(tf.where(mask[..., None], 0.0, inputs), axis=1)
    return masking.masked_mean(inputs, mask) + self.scale * leak


def test_checker_measures_value_leaks_and_catches_gradient_only_leaks():
  sequences = testing.random_sequences(4, 6, dim=3, seed=2)
  failures = testing.check_padding_invariance(_LeakyMean(1.0), sequences)
  assert any(f.check == "batched, right padding" for f in failures)
  # A leak far below atol still sends gradient to pad steps, and NaN in
  # pad steps reaches its outputs.
  nan_checks = {"batched, NaN padding", "batched, NaN left padding"}
  failures = testing.check_padding_invariance(_LeakyMean(1e-30), sequences)
  assert {f.check for f in failures} == nan_checks | {"gradient at pad steps"}
  # Reading pad steps only to multiply them by 0 is caught by NaN alone.
  failures = testing.check_padding_invariance(_LeakyMean(0.0), sequences)
  assert {f.check for f in failures} == nan_checks
  assert all("non-finite" in f.detail for f in failures)
  assert testing.check_padding_invariance(mm.MaskedPooling("mean"),
                                          sequences) == []


def test_checker_requires_a_mask_when_the_time_axis_changes():
  layer = keras.layers.Lambda(lambda x, mask=None: x[:, ::2])
  with pytest.raises(ValueError, match="return \\(outputs, mask\\)"):
    testing.check_padding_invariance(
        layer, testing.random_sequences(3, 6, dim=2), check_gradients=False)


def test_random_sequences_cover_empty_and_full_width():
  ids = testing.random_sequences(10, 9, vocab_size=5, seed=3)
  lengths = [len(s) for s in ids]
  assert min(lengths) == 0 and max(lengths) == 9
  assert all(np.all(s != 0) for s in ids)
  feats = testing.random_sequences(3, 4, dim=2)
  assert feats[1].shape == (4, 2) and feats[1].dtype == np.float32
  with pytest.raises(ValueError, match="exactly one of"):
    testing.random_sequences(3, 4)


def test_checker_argument_errors():
  with pytest.raises(ValueError, match="sequences is empty"):
    testing.check_padding_invariance(mm.MaskedPooling(), [])


class _Block(mm.Encoder):
  """conv -> (maybe leaky) pooling-free stage -> conv, for leak location."""

  def __init__(self, leaky=False, **kwargs):
    super().__init__(**kwargs)
    self.leaky = leaky
    self.first = mm.MaskedConv1D(4, 3, name="first", dtype=self.dtype_policy)
    self.middle = _LeakyStage(leaky, name="middle", dtype=self.dtype_policy)
    self.last = mm.MaskedConv1D(4, 3, name="last", dtype=self.dtype_policy)

  def call(self, inputs, mask=None, training=None):
    x, mask = self.first(inputs, mask=mask)
    x = self.middle(x, mask=mask)
    return self.last(x, mask=mask)

  def get_config(self):
    return dict(super().get_config(), leaky=self.leaky)


class _LeakyStage(keras.layers.Layer):
  """Adds the number of steps, pads included, when ``leaky``."""

  def __init__(self, leaky, **kwargs):
    super().__init__(**kwargs)
    self.leaky = leaky

  def call(self, inputs, mask=None):
    total = tf.reduce_sum(inputs + 1.0, axis=1, keepdims=True)
    return masking.apply_mask(inputs + (0.1 * total if self.leaky else 0.0),
                              mask)


def test_a_failure_names_the_first_sublayer_that_leaks():
  ids = testing.random_sequences(6, 10, vocab_size=30, seed=4)
  model = mm.SequenceModel.classifier(30, 2, encoder=_Block(leaky=True),
                                      pooling="mean")
  with pytest.raises(testing.PaddingInvarianceError,
                     match=r"first leaking sublayer: \S*_block\S*/middle "
                     r"\(max \|diff\| = "):
    testing.assert_padding_invariant(model, ids)
  assert testing.locate_leak(mm.SequenceModel.classifier(
      30, 2, encoder=_Block(leaky=False), pooling="mean"), ids) is None


def test_the_battery_passes_library_layers_and_catches_each_fault():
  features = testing.random_sequences(5, 8, dim=3, seed=5)
  for factory in (lambda **kw: mm.MaskedConvBlock(4, 3, pool_size=2, **kw),
                  lambda **kw: mm.MaskedGRU(4, bidirectional=True,
                                            return_sequences=True, **kw),
                  lambda **kw: mm.MaskedPooling("attention",
                                                attention_units=4, **kw),
                  lambda **kw: mm.ConvGRUEncoder(
                      conv_filters=[4], gru_units=[3], **kw)):
    testing.assert_layer(factory, features)
  testing.assert_layer(
      lambda **kw: mm.SequenceModel.classifier(
          30, 2, embedding_dim=8, pooling="attention", token_dropout=0.1,
          head_dropout=0.1, **kw),
      testing.random_sequences(5, 8, vocab_size=30))

  class NoConfig(mm.Pooling):  # takes an argument get_config does not save
    def __init__(self, scale=2.0, **kwargs):
      super().__init__(**kwargs)
      self.scale = scale

    def call(self, inputs, mask=None, training=None):
      return self.scale * masking.masked_max(inputs, mask)

    def get_config(self):
      return {"name": self.name}  # forgets scale

  failures = testing.check_layer(lambda **kw: NoConfig(scale=3.0, **kw),
                                 features)
  assert [f.check for f in failures] == ["config round trip"]

  class ForgetsPolicy(mm.Pooling):  # creates a sublayer without its policy
    def __init__(self, **kwargs):
      super().__init__(**kwargs)
      self.dense = keras.layers.Dense(2, name="dense")

    def call(self, inputs, mask=None, training=None):
      return self.dense(masking.masked_mean(inputs, mask))

  failures = testing.check_layer(ForgetsPolicy, features)
  assert [f.check for f in failures] == ["dtype policy"]
  assert "dense computes in mixed_float16, not mixed_bfloat16" in str(
      failures[0])

  class NaNOnEmpty(mm.Pooling):  # divides by the length
    def call(self, inputs, mask=None, training=None):
      lengths = tf.reduce_sum(tf.cast(mask, inputs.dtype), 1, keepdims=True)
      return masking.masked_sum(inputs, mask) / lengths

  failures = testing.check_layer(NaNOnEmpty, features)
  assert {"empty sequences, 3 rows of width 8",
          "empty sequences, 3 rows of width 0"} <= {f.check for f in failures}


def test_the_gradient_check_reads_only_the_rows_the_model_names():
  """A leak from pad steps far below atol is caught by the gradient at the
  pad row the model names, and only there: an n-gram member's hash bucket
  0 (hit by real n-grams) is not taken for padding."""
  ids = testing.random_sequences(6, 10, vocab_size=30, seed=6)

  class Leaky(keras.Model):
    def __init__(self, **kwargs):
      super().__init__(**kwargs)
      self.embedding = keras.layers.Embedding(30, 4)
      self.pool = _LeakyMean(1e-30)

    def pad_rows(self):
      return [(self.embedding.embeddings, 0)]

    def call(self, inputs, training=None):
      return self.pool(self.embedding(inputs), mask=inputs != 0)

  failures = testing.check_padding_invariance(Leaky(), ids)
  assert [f.check for f in failures] == ["gradient at pad steps"]
  network = mm.SequenceModel.classifier(30, 2, embedding_dim=6,
                                        pooling="mean")
  network.build()
  assert network.pad_rows() == [(network.backbone.embedding.embeddings, 0)]

  # Bucket 0 of a bag's table is read by every real bigram here (one bucket).
  bag = mm.NgramBagClassifier(2, ngram_buckets=1, ngram_dim=3)
  model = mm.Ensemble({"network": network, "bag": bag})
  model.build()
  assert testing.check_padding_invariance(model, ids) == []
  with pytest.raises(ValueError, match="names no embedding rows"):
    testing.check_padding_invariance(bag, ids)
