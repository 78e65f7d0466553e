import numpy as np
import pytest
import tensorflow as tf
import keras

import maskmodels as mm
from maskmodels import testing

DIM = 5
WIDTH = 12

LAYERS = {
    "conv_same": lambda: mm.MaskedConv1D(4, 3),
    "conv_even_kernel": lambda: mm.MaskedConv1D(4, 4),
    "conv_causal_dilated": lambda: mm.MaskedConv1D(4, 3, dilation_rate=2,
                                                   padding="causal"),
    "conv_valid": lambda: mm.MaskedConv1D(4, 3, padding="valid"),
    "conv_strided": lambda: mm.MaskedConv1D(4, 5, strides=2),
    "conv_strided_dilated_valid": lambda: mm.MaskedConv1D(
        4, 3, strides=3, dilation_rate=2, padding="valid"),
    "max_pool": lambda: mm.MaskedMaxPool1D(2),
    "max_pool_overlap_valid": lambda: mm.MaskedMaxPool1D(3, 2, "valid"),
    "block_batch_norm_pool": lambda: mm.MaskedConvBlock(4, 3, pool_size=2,
                                                        dropout=0.5),
    "block_layer_norm_strided": lambda: mm.MaskedConvBlock(
        4, 3, strides=2, normalization="layer"),
    "block_no_norm_valid": lambda: mm.MaskedConvBlock(
        4, 3, normalization=None, padding="valid"),
    "batch_norm": lambda: mm.MaskedBatchNormalization(),
    "layer_norm": lambda: mm.MaskedLayerNormalization(),
    "gru_last_state": lambda: mm.MaskedGRU(4),
    "gru_sequences": lambda: mm.MaskedGRU(4, return_sequences=True),
    "bigru_last_state": lambda: mm.MaskedGRU(4, bidirectional=True),
    "bigru_sequences": lambda: mm.MaskedGRU(3, bidirectional=True,
                                            return_sequences=True),
    "pool_mean": lambda: mm.MaskedPooling("mean"),
    "pool_max": lambda: mm.MaskedPooling("max"),
    "pool_last": lambda: mm.MaskedPooling("last"),
    "pool_attention": lambda: mm.MaskedPooling("attention"),
    "pool_attention_hidden": lambda: mm.MaskedPooling("attention",
                                                      attention_units=6),
}


@pytest.fixture(scope="module")
def sequences():
  return testing.random_sequences(7, WIDTH, dim=DIM, seed=4)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_is_padding_invariant(name, sequences):
  testing.assert_padding_invariant(LAYERS[name](), sequences, atol=1e-5)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_config_round_trip(name):
  layer = LAYERS[name]()
  x = tf.constant(np.random.default_rng(5).normal(size=(3, 7, DIM)),
                  tf.float32)
  mask = tf.sequence_mask([7, 3, 0], 7)
  y = layer(x, mask=mask)
  clone = type(layer).from_config(layer.get_config())
  clone(x, mask=mask)
  clone.set_weights(layer.get_weights())
  for got, want in zip(tf.nest.flatten(clone(x, mask=mask)),
                       tf.nest.flatten(y)):
    np.testing.assert_array_equal(got, want)
  revived = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(layer))
  assert type(revived) is type(layer)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_empty_sequences_give_finite_outputs_and_gradients(name):
  layer = LAYERS[name]()
  x = tf.constant(np.random.default_rng(6).normal(size=(2, 6, DIM)),
                  tf.float32)
  mask = tf.zeros([2, 6], tf.bool)
  with tf.GradientTape() as tape:
    tape.watch(x)
    outputs = layer(x, mask=mask, training=True)
    loss = sum(tf.reduce_sum(tf.cast(t, tf.float32))
               for t in tf.nest.flatten(outputs) if t.dtype.is_floating)
  grads = tape.gradient(loss, [x] + layer.trainable_variables)
  for t in tf.nest.flatten(outputs):
    assert np.all(np.isfinite(t.numpy()))
  for g in grads:
    if g is not None:
      assert np.all(np.isfinite(tf.convert_to_tensor(g).numpy()))


@pytest.mark.parametrize("kernel_size,dilation", [(1, 1), (3, 1), (5, 2),
                                                  (7, 3)])
def test_same_conv_equals_keras_same_conv_on_unpadded_sequence(kernel_size,
                                                               dilation):
  # For odd kernels at stride 1, maskmodels' "same" is Keras's "same" applied
  # to the sequence without its padding.
  layer = mm.MaskedConv1D(3, kernel_size, dilation_rate=dilation)
  reference = keras.layers.Conv1D(3, kernel_size, dilation_rate=dilation,
                                  padding="same")
  x = np.random.default_rng(7).normal(size=(1, 9, DIM)).astype(np.float32)
  layer(x)
  reference(x)
  reference.set_weights(layer.get_weights())
  padded = np.concatenate([x, np.full((1, 4, DIM), 99.0, np.float32)], 1)
  y, mask = layer(padded, mask=tf.sequence_mask([9], 13))
  np.testing.assert_allclose(y[0, :9], reference(x)[0], atol=1e-5)
  assert mask.numpy().sum() == 9
  np.testing.assert_array_equal(y[0, 9:], 0.0)


def test_masked_batch_norm_statistics_use_real_steps_only():
  rng = np.random.default_rng(8)
  x = rng.normal(loc=3.0, scale=2.0, size=(4, 9, DIM)).astype(np.float32)
  mask = np.arange(9)[None] < np.array([[9], [4], [0], [1]])
  x[~mask] = 1e4  # would dominate any statistic that read them
  mean, variance, count = mm.layers.masked_moments(tf.constant(x),
                                                  tf.constant(mask))
  real = x[mask]
  np.testing.assert_allclose(mean, real.mean(0), rtol=1e-5)
  np.testing.assert_allclose(variance, real.var(0), rtol=1e-4)
  assert count.numpy() == mask.sum()
  layer = mm.MaskedBatchNormalization(momentum=0.0)
  y = layer(tf.constant(x), mask=tf.constant(mask), training=True).numpy()
  np.testing.assert_allclose(layer.moving_mean, real.mean(0), rtol=1e-5)
  np.testing.assert_allclose(layer.moving_variance, real.var(0), rtol=1e-4)
  np.testing.assert_allclose(y[mask].mean(0), 0.0, atol=1e-4)
  np.testing.assert_array_equal(y[~mask], 0.0)


def test_masked_batch_norm_keeps_moving_stats_on_an_empty_batch():
  layer = mm.MaskedBatchNormalization(momentum=0.5)
  x = tf.ones([2, 3, DIM])
  layer(x, mask=tf.zeros([2, 3], tf.bool), training=True)
  np.testing.assert_array_equal(layer.moving_mean, 0.0)
  np.testing.assert_array_equal(layer.moving_variance, 1.0)


def test_masked_batch_norm_statistics_are_global_across_replicas(mirrored):
  strategy = mirrored
  rng = np.random.default_rng(9)
  x = rng.normal(size=(4, 6, DIM)).astype(np.float32)
  mask = np.arange(6)[None] < np.array([[6], [2], [5], [0]])
  dataset = tf.data.Dataset.from_tensor_slices((x, mask)).batch(4)
  with strategy.scope():
    layer = mm.MaskedBatchNormalization(momentum=0.0)
    layer.build((None, None, DIM))
  step = tf.function(lambda a, m: layer(a, mask=m, training=True))
  for batch in strategy.experimental_distribute_dataset(dataset):
    strategy.run(step, args=batch)
  np.testing.assert_allclose(layer.moving_mean.numpy(), x[mask].mean(0),
                             rtol=1e-5)


def test_gru_left_and_right_padding_agree_on_sequences():
  layer = mm.MaskedGRU(4, bidirectional=True, return_sequences=True)
  x = np.random.default_rng(10).normal(size=(1, 5, DIM)).astype(np.float32)
  pad = np.zeros((1, 3, DIM), np.float32)
  right, right_mask = layer(np.concatenate([x, pad], 1),
                            mask=tf.sequence_mask([5], 8))
  left, left_mask = layer(np.concatenate([pad, x], 1),
                          mask=tf.logical_not(tf.sequence_mask([3], 8)))
  # Both come back right-padded: the internal layout.
  np.testing.assert_array_equal(left_mask, right_mask)
  np.testing.assert_allclose(left, right, atol=1e-6)


def test_layer_argument_errors_name_the_value():
  with pytest.raises(ValueError, match="padding must be one of.*'full'"):
    mm.MaskedConv1D(4, 3, padding="full")
  with pytest.raises(ValueError, match="mode must be one of.*'median'"):
    mm.MaskedPooling("median")
  with pytest.raises(ValueError, match="normalization must be one of.*'group'"):
    mm.MaskedConvBlock(4, normalization="group")
  with pytest.raises(ValueError, match="units must be a positive int.*0"):
    mm.MaskedGRU(0)
