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
  with pytest.raises(testing.PaddingInvarianceError) as error:
    testing.assert_padding_invariant(model, ids)
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
  # A leak far below atol still sends gradient to pad steps.
  failures = testing.check_padding_invariance(_LeakyMean(1e-30), sequences)
  assert [f.check for f in failures] == ["gradient at pad steps"]
  assert testing.check_padding_invariance(_LeakyMean(0.0), sequences) == []


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
