import numpy as np
import pytest
import tensorflow as tf
import keras

import maskmodels as mm
from maskmodels import testing

DIM = 5
WIDTH = 12

LAYERS = {
    "conv_same": lambda **kw: mm.MaskedConv1D(4, 3, **kw),
    "conv_even_kernel": lambda **kw: mm.MaskedConv1D(4, 4, **kw),
    "conv_causal_dilated": lambda **kw: mm.MaskedConv1D(
        4, 3, dilation_rate=2, padding="causal", **kw),
    "conv_valid": lambda **kw: mm.MaskedConv1D(4, 3, padding="valid", **kw),
    "conv_strided": lambda **kw: mm.MaskedConv1D(4, 5, strides=2, **kw),
    "conv_strided_dilated_valid": lambda **kw: mm.MaskedConv1D(
        4, 3, strides=3, dilation_rate=2, padding="valid", **kw),
    "max_pool": lambda **kw: mm.MaskedMaxPool1D(2, **kw),
    "max_pool_overlap_valid": lambda **kw: mm.MaskedMaxPool1D(3, 2, "valid",
                                                              **kw),
    "block_batch_norm_pool": lambda **kw: mm.MaskedConvBlock(
        4, 3, pool_size=2, dropout=0.5, **kw),
    "block_layer_norm_strided": lambda **kw: mm.MaskedConvBlock(
        4, 3, strides=2, normalization="layer", **kw),
    "block_no_norm_valid": lambda **kw: mm.MaskedConvBlock(
        4, 3, normalization=None, padding="valid", **kw),
    "batch_norm": lambda **kw: mm.MaskedBatchNormalization(**kw),
    "layer_norm": lambda **kw: mm.MaskedLayerNormalization(**kw),
    "gru_last_state": lambda **kw: mm.MaskedGRU(4, **kw),
    "gru_sequences": lambda **kw: mm.MaskedGRU(4, return_sequences=True,
                                               dropout=0.2, **kw),
    "bigru_last_state": lambda **kw: mm.MaskedGRU(4, bidirectional=True, **kw),
    "bigru_sequences": lambda **kw: mm.MaskedGRU(3, bidirectional=True,
                                                 return_sequences=True, **kw),
    "pool_mean": lambda **kw: mm.MaskedPooling("mean", **kw),
    "pool_max": lambda **kw: mm.MaskedPooling("max", **kw),
    "pool_last": lambda **kw: mm.MaskedPooling("last", **kw),
    "pool_attention": lambda **kw: mm.MaskedPooling("attention", **kw),
    "pool_attention_hidden": lambda **kw: mm.MaskedPooling(
        "attention", attention_units=6, **kw),
}


@pytest.fixture(scope="module")
def sequences():
  return testing.random_sequences(7, WIDTH, dim=DIM, seed=4)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_passes_the_battery(name, sequences):
  """Padding invariance, config round trip, empty sequences, dtype policy."""
  testing.assert_layer(LAYERS[name], sequences, atol=1e-5)
  layer = LAYERS[name]()
  revived = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(layer))
  assert type(revived) is type(layer)


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


def test_gru_keeps_the_input_layout_so_residuals_stay_invariant():
  layer = mm.MaskedGRU(4, bidirectional=True, return_sequences=True)
  x = np.random.default_rng(10).normal(size=(1, 5, DIM)).astype(np.float32)
  pad = np.zeros((1, 3, DIM), np.float32)
  right_mask = tf.sequence_mask([5], 8)
  left_mask = tf.logical_not(tf.sequence_mask([3], 8))
  right, got_right_mask = layer(np.concatenate([x, pad], 1), mask=right_mask)
  left, got_left_mask = layer(np.concatenate([pad, x], 1), mask=left_mask)
  # Each real step's output sits where that step was: the input's layout.
  np.testing.assert_array_equal(got_left_mask, left_mask)
  np.testing.assert_array_equal(got_right_mask, right_mask)
  np.testing.assert_allclose(left[:, 3:], right[:, :5], atol=1e-6)
  np.testing.assert_array_equal(left[:, :3], 0.0)

  class ResidualGRU(mm.Encoder):
    """What research code writes: a residual around a masked GRU."""

    def __init__(self, **kwargs):
      super().__init__(**kwargs)
      self.gru = mm.MaskedGRU(DIM, return_sequences=True)

    def call(self, inputs, mask=None, training=None):
      y, mask = self.gru(inputs, mask=mask)
      return mm.masking.apply_mask(inputs + y, mask), mask

  testing.assert_padding_invariant(
      ResidualGRU(), testing.random_sequences(6, WIDTH, dim=DIM, seed=3))


def test_layer_argument_errors_name_the_value():
  with pytest.raises(ValueError, match="padding must be one of.*'full'"):
    mm.MaskedConv1D(4, 3, padding="full")
  with pytest.raises(ValueError, match="mode must be one of.*'median'"):
    mm.MaskedPooling("median")
  with pytest.raises(ValueError, match="normalization 'group' is not registered; choose one of batch, layer, none"):
    mm.MaskedConvBlock(4, normalization="group")
  with pytest.raises(ValueError, match="units must be a positive int.*0"):
    mm.MaskedGRU(0)


@pytest.mark.parametrize("ratio", [30.0, 1000.0])
def test_masked_batch_norm_variance_keeps_precision_at_large_means(ratio):
  rng = np.random.default_rng(11)
  x = (ratio + rng.normal(size=(8, 50, 3))).astype(np.float32)
  mask = tf.ones([8, 50], tf.bool)
  layer = mm.MaskedBatchNormalization(momentum=0.0)
  layer.build((None, None, 3))
  layer.moving_mean.assign([ratio] * 3)  # a trained layer's shift
  layer(tf.constant(x), mask=mask, training=True)
  want = x.astype(np.float64).reshape(-1, 3).var(0)
  np.testing.assert_allclose(layer.moving_variance.numpy(), want, rtol=1e-4)
  # The first batch, before the moving mean has moved, is still exact
  # enough at a mean/std of 30 (relative error was 2.3e-3).
  _, variance, _ = mm.layers.masked_moments(tf.constant(x), mask,
                                            shift=x[0, 0])
  np.testing.assert_allclose(variance, want, rtol=1e-4)


@pytest.mark.parametrize("kernel_size,time", [(1, 6), (3, 11), (5, 5)])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_tapwise_convolution_equals_tensorflow_s(kernel_size, time, dtype):
  """Outputs and both gradients equal ``tf.nn.conv1d``'s, down to one
  output step (``time == kernel_size``)."""
  from maskmodels.layers import conv  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(kernel_size)
  x = tf.constant(rng.normal(size=(3, time, 6)), dtype)
  kernel = tf.constant(rng.normal(size=(kernel_size, 6, 4)), dtype)
  dy = tf.constant(rng.normal(size=(3, time - kernel_size + 1, 4)), dtype)
  results = []
  for fn in (conv.conv1d_tapwise,
             lambda x, k: tf.nn.conv1d(x, k, 1, "VALID")):
    with tf.GradientTape() as tape:
      tape.watch([x, kernel])
      y = fn(x, kernel)
    results.append([y, *tape.gradient(y, [x, kernel], output_gradients=dy)])
  # Of the largest value: the two sum their products in different orders.
  tolerance = {"float32": 1e-6, "float16": 2e-3, "bfloat16": 2e-2}[dtype]
  for got, want in zip(*results):
    assert got.dtype == want.dtype and got.shape == want.shape
    got, want = (np.asarray(tf.cast(t, tf.float32)) for t in (got, want))
    assert np.abs(got - want).max() <= tolerance * np.abs(want).max()


TAPWISE_LAYERS = {
    "conv_same": LAYERS["conv_same"],
    "conv_valid_relu": lambda **kw: mm.MaskedConv1D(4, 3, padding="valid",
                                                    activation="relu", **kw),
    "block_layer_norm_pool": lambda **kw: mm.MaskedConvBlock(
        4, 5, normalization="layer", pool_size=2, **kw),
}


@pytest.mark.parametrize("name", sorted(TAPWISE_LAYERS))
def test_convolutions_below_avx512_give_the_same_gradients_and_pass_the_battery(
    name, sequences, monkeypatch):
  """Where oneDNN runs below AVX-512 the stride-1 convolutions take the
  tap-wise filter gradient: the same outputs and gradients as elsewhere,
  and the battery passes on that path."""
  # pylint: disable=import-outside-toplevel
  from maskmodels import cpu
  from maskmodels.layers import conv
  calls = []
  tapwise = conv.conv1d_tapwise
  monkeypatch.setattr(conv, "conv1d_tapwise",
                      lambda *args: calls.append(1) or tapwise(*args))
  factory = TAPWISE_LAYERS[name]
  layer = factory()
  batch = keras.utils.pad_sequences(sequences, padding="post",
                                    dtype="float32")
  x = tf.constant(batch)
  mask = tf.constant(np.any(batch != 0, axis=-1))
  results = {}
  for below in (False, True):  # True last: the battery below runs on it
    monkeypatch.setattr(cpu, "onednn_below_avx512", lambda below=below: below)
    with tf.GradientTape() as tape:
      tape.watch(x)
      y, _ = layer(x, mask=mask)
      loss = tf.reduce_sum(tf.square(y))
    results[below] = [y, *tape.gradient(loss, [x, *layer.trainable_weights])]
    assert bool(calls) == below  # the tap-wise path runs only below AVX-512
  for got, want in zip(results[True], results[False]):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  testing.assert_layer(factory, sequences, atol=1e-5)


def test_oneDNN_below_avx512_reads_the_cpu_and_the_isa_cap(monkeypatch):
  from maskmodels import cpu  # pylint: disable=import-outside-toplevel
  cases = [({"avx2"}, None, True), ({"avx2", "avx512f"}, None, False),
           ({"avx2", "avx512f"}, "AVX2", True),
           ({"avx2", "avx512f"}, "avx512_core", False),
           ({"avx2", "avx512f"}, "ALL", False), (None, None, False),
           (None, "SSE41", True)]
  for flags, cap, below in cases:
    monkeypatch.setattr(cpu, "cpu_flags", lambda flags=flags: flags)
    if cap is None:
      monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
      monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert cpu.onednn_below_avx512() is below, (flags, cap)


@pytest.mark.parametrize("normalization", ["batch", "layer", "none"])
@pytest.mark.parametrize("pool_size", [1, 2])
def test_a_block_equals_its_layers_called_in_turn(normalization, pool_size,
                                                  sequences):
  """The block zeroes pad steps once, at its end: its outputs, mask and
  gradients equal those of its public layers called one after the other,
  each zeroing its own, with NaN in the input's pad steps."""
  from maskmodels import masking  # pylint: disable=import-outside-toplevel
  block = mm.MaskedConvBlock(4, 3, normalization=normalization,
                             pool_size=pool_size)
  batch = keras.utils.pad_sequences(sequences, padding="post",
                                    dtype="float32")
  mask = tf.constant(np.any(batch != 0, axis=-1))
  x = tf.constant(np.where(mask.numpy()[..., None], batch, np.nan),
                  tf.float32)

  def in_turn(x):
    y, m = block.conv(x, mask=mask)
    if block.norm is not None:
      y = block.norm(y, mask=m, training=True)
    y = masking.apply_mask(block.drop(block.act(y), training=True), m)
    if block.pool is not None:
      y, m = block.pool(y, mask=m)
    return y, m

  block(x, mask=mask)  # builds
  weights = block.get_weights()
  results = []
  for run in (lambda x: block(x, mask=mask, training=True), in_turn):
    # Each run starts from the same moving statistics (the batch moments are
    # shifted by the moving mean, which a training call updates).
    block.set_weights(weights)
    with tf.GradientTape() as tape:
      tape.watch(x)
      y, m = run(x)
      loss = tf.reduce_sum(tf.sin(y))
    results.append([y, tf.cast(m, tf.float32),
                    *tape.gradient(loss, [x, *block.trainable_weights])])
  for got, want in zip(*results):
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,tapwise", [
    ("conv", False), ("conv", True), ("batch_norm", False),
    ("layer_norm", False)])
def test_the_methods_that_leave_pad_steps_build_an_unbuilt_layer(
    name, tapwise, sequences, monkeypatch):
  """``convolve`` and ``normalize`` called first, as research code may,
  build the layer as ``__call__`` would: zeroed, they equal its call."""
  # pylint: disable=import-outside-toplevel
  from maskmodels import cpu, masking
  monkeypatch.setattr(cpu, "onednn_below_avx512", lambda: tapwise)
  layer = {"conv": lambda: mm.MaskedConv1D(4, 3),
           "batch_norm": mm.MaskedBatchNormalization,
           "layer_norm": mm.MaskedLayerNormalization}[name]()
  batch = keras.utils.pad_sequences(sequences, padding="post",
                                    dtype="float32")
  x = tf.constant(batch)
  mask = tf.constant(np.any(batch != 0, axis=-1))
  if name == "conv":
    y, y_mask = layer.convolve(x, mask=mask)
  else:
    y, y_mask = layer.normalize(x, mask=mask), mask
  assert layer.built and layer.weights
  want, want_mask = (layer(x, mask=mask) if name == "conv"
                     else (layer(x, mask=mask), mask))
  np.testing.assert_array_equal(y_mask, want_mask)
  np.testing.assert_allclose(masking.apply_mask(y, y_mask), want,
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.9])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dropout_drops_its_rate_and_keeps_the_expectation(rate, dtype):
  keras.utils.set_random_seed(round(rate * 10))
  x = tf.ones([200, 501], dtype)  # an odd number of values
  y = np.asarray(tf.cast(mm.Dropout(rate)(x, training=True), tf.float32))
  assert y.shape == (200, 501)
  dropped = np.mean(y == 0)
  assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / y.size)
  kept = y[y != 0]
  # The rate drawn is a multiple of 2^-16; kept values are scaled by the
  # inverse of its keep probability, so the expectation is exact.
  drawn_rate = round(rate * 2**16) / 2**16
  np.testing.assert_allclose(kept, 1 / (1 - drawn_rate),
                             rtol=1e-6 if dtype == "float32" else 1e-2)
  # A noise shape drops whole rows, an odd number of them.
  z = mm.Dropout(rate, noise_shape=(None, 1))(tf.ones([501, 7]),
                                               training=True)
  assert np.all(np.asarray(z) == np.asarray(z)[:, :1])
  assert 0 < np.mean(np.asarray(z)[:, 0] == 0) < 1
