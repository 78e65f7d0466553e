import itertools

import numpy as np
import pytest
import tensorflow as tf

from maskmodels import masking


def _random_masks(rng, batch=6, time=11):
  """Right-padded, left-padded and holey masks, with empty and full rows."""
  lengths = rng.integers(0, time + 1, size=batch)
  lengths[0], lengths[1] = 0, time
  right = np.arange(time)[None] < lengths[:, None]
  left = right[:, ::-1]
  holes = rng.random((batch, time)) < 0.6
  return [right, left, holes]


def test_mask_from_ids_and_lengths():
  ids = tf.constant([[5, 3, 0, 0], [0, 0, 0, 0], [7, 7, 7, 7]])
  mask = masking.mask_from_ids(ids)
  np.testing.assert_array_equal(masking.lengths_from_mask(mask), [2, 0, 4])
  mask9 = masking.mask_from_ids(tf.constant([[9, 1, 9]]), pad_id=9)
  np.testing.assert_array_equal(mask9, [[False, True, False]])


def test_right_padding_round_trip_keeps_order():
  rng = np.random.default_rng(0)
  for mask in _random_masks(rng):
    x = tf.constant(rng.normal(size=mask.shape + (3,)), tf.float32)
    packed, packed_mask, perm = masking.to_right_padded(x, tf.constant(mask))
    lengths = mask.sum(1)
    for row in range(mask.shape[0]):
      n = lengths[row]
      assert packed_mask[row, :n].numpy().all()
      assert not packed_mask[row, n:].numpy().any()
      np.testing.assert_array_equal(packed[row, :n], x.numpy()[row][mask[row]])
    np.testing.assert_array_equal(masking.restore_order(packed, perm), x)
    left, left_mask = masking.to_left_padded(x, tf.constant(mask))
    for row in range(mask.shape[0]):
      n = lengths[row]
      assert left_mask[row].numpy().sum() == n
      assert left_mask[row, mask.shape[1] - n:].numpy().all()
      np.testing.assert_array_equal(left[row][left_mask[row]],
                                    x.numpy()[row][mask[row]])


def _enumerated_output_mask(mask, k, s, d, padding):
  """The rule, by explicit enumeration of each output's input taps."""
  left, right = masking.conv_padding(k, d, padding)
  batch, time = mask.shape
  padded_time = time + left + right
  out_time = max(0, (padded_time - (k - 1) * d - 1) // s + 1)
  out = np.zeros((batch, out_time), bool)
  for b, t in itertools.product(range(batch), range(out_time)):
    taps = [t * s - left + j * d for j in range(k)]
    real = [0 <= i < time and mask[b, i] for i in taps]
    if padding == "valid":
      out[b, t] = all(real)
    else:  # the anchor tap sits at input step t * s
      anchor = taps.index(t * s)
      out[b, t] = real[anchor]
  return out


@pytest.mark.parametrize("padding", masking.PADDING_MODES)
def test_conv_output_mask_matches_enumeration(padding):
  rng = np.random.default_rng(1)
  masks = _random_masks(rng, time=13) + _random_masks(rng, time=3)
  for k, s, d in itertools.product(range(1, 8), range(1, 4), range(1, 4)):
    for mask in masks:
      got = masking.conv_output_mask(tf.constant(mask), k, s, d, padding)
      want = _enumerated_output_mask(mask, k, s, d, padding)
      np.testing.assert_array_equal(
          got, want, err_msg=f"k={k} s={s} d={d} padding={padding}")
      assert got.shape[1] == masking.conv_output_length(mask.shape[1], k, s,
                                                        d, padding)


@pytest.mark.parametrize("padding", masking.PADDING_MODES)
def test_real_output_count_equals_unpadded_output_length(padding):
  # On a right-padded sequence the real outputs are exactly the outputs of
  # the unpadded sequence.
  for k, s, d, length in itertools.product(range(1, 8), range(1, 4),
                                           range(1, 4), range(0, 12)):
    mask = np.arange(15)[None] < length
    got = masking.conv_output_mask(tf.constant(mask), k, s, d, padding)
    assert got.numpy().sum() == masking.conv_output_length(length, k, s, d,
                                                           padding)


def test_conv_rule_rejects_bad_arguments():
  with pytest.raises(ValueError, match="padding must be one of"):
    masking.conv_padding(3, 1, "full")
  with pytest.raises(ValueError, match="kernel_size must be a positive int"):
    masking.conv_output_mask(tf.ones([1, 3], tf.bool), 0)


def test_masked_reductions_match_numpy_and_are_zero_when_empty():
  rng = np.random.default_rng(2)
  for mask in _random_masks(rng):
    x = rng.normal(size=mask.shape + (4,)).astype(np.float32)
    x[~mask] = np.nan  # pad steps must never be read
    tx, tm = tf.constant(x), tf.constant(mask)
    results = {name: fn(tx, tm).numpy() for name, fn in (
        ("sum", masking.masked_sum), ("mean", masking.masked_mean),
        ("max", masking.masked_max), ("last", masking.masked_last))}
    for row in range(mask.shape[0]):
      real = x[row][mask[row]]
      if real.shape[0] == 0:
        for name, value in results.items():
          np.testing.assert_array_equal(value[row], 0.0, err_msg=name)
        continue
      np.testing.assert_allclose(results["sum"][row], real.sum(0), rtol=1e-5)
      np.testing.assert_allclose(results["mean"][row], real.mean(0), rtol=1e-5)
      np.testing.assert_array_equal(results["max"][row], real.max(0))
      np.testing.assert_array_equal(results["last"][row], real[-1])


def test_masked_softmax_zero_on_pads_and_empty_rows():
  scores = tf.constant([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
  mask = tf.constant([[True, True, False], [False, False, False]])
  weights = masking.masked_softmax(scores, mask).numpy()
  np.testing.assert_allclose(weights[0], [1 / (1 + np.e), np.e / (1 + np.e), 0])
  np.testing.assert_array_equal(weights[1], 0.0)


@pytest.mark.parametrize("reduce", [masking.masked_mean, masking.masked_max,
                                    masking.masked_last, masking.masked_sum])
def test_reduction_gradients_finite_and_zero_on_pads(reduce):
  x = tf.constant(np.random.default_rng(3).normal(size=(2, 5, 3)), tf.float32)
  mask = tf.constant([[True, True, False, False, False], [False] * 5])
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = tf.reduce_sum(reduce(x, mask))
  grad = tape.gradient(y, x).numpy()
  assert np.all(np.isfinite(grad))
  np.testing.assert_array_equal(grad[~mask.numpy()], 0.0)


@pytest.mark.parametrize("mode", ["mean", "max", "last", "attention"])
def test_every_pooling_is_zero_on_an_empty_time_axis(mode):
  import maskmodels as mm
  layer = mm.MaskedPooling(mode)
  for mask in (None, tf.zeros([3, 0], tf.bool)):
    pooled = layer(tf.zeros([3, 0, 5]), mask=mask)
    np.testing.assert_array_equal(pooled, np.zeros((3, 5)))
  np.testing.assert_array_equal(
      masking.masked_last(tf.zeros([2, 0, 4]), tf.zeros([2, 0], tf.bool)),
      np.zeros((2, 4)))
