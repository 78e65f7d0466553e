"""The fused CPU GRU kernel computes what Keras's GRU computes."""

import importlib

import numpy as np
import pytest
import tensorflow as tf
import keras

import maskmodels as mm
from maskmodels import training
from maskmodels.layers import gru_kernel


def _inputs(batch, time, channels, layout, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(batch, time, channels)).astype(np.float32)
  lengths = rng.integers(0, time + 1, size=batch)
  lengths[:2] = time, 0  # a full row and an empty one
  mask = np.arange(time)[None] < lengths[:, None]
  if layout == "left":
    mask = mask[:, ::-1]
  elif layout == "holes":
    mask = rng.random((batch, time)) < 0.6
    mask[1] = False
  return tf.constant(x), tf.constant(mask)


def _pair(units, bidirectional, return_sequences, channels):
  """The same weights in a fused-kernel layer and a Keras-kernel one."""
  layers = [mm.MaskedGRU(units, bidirectional=bidirectional,
                         return_sequences=return_sequences, kernel=kernel)
            for kernel in ("fused", "keras")]
  for layer in layers:
    layer.build((None, None, channels))
  rng = np.random.default_rng(1)
  layers[0].set_weights([rng.normal(scale=0.5, size=w.shape)
                         for w in layers[0].get_weights()])
  layers[1].set_weights(layers[0].get_weights())
  return layers


def _forward_backward(layer, x, mask, function=False):
  def run(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      outputs = layer(x, mask=mask)
      outputs = outputs[0] if isinstance(outputs, tuple) else outputs
      # A fixed projection (XLA draws other stateless random numbers).
      weights = tf.sin(tf.reshape(tf.range(tf.size(outputs), dtype=tf.float32),
                                  tf.shape(outputs)))
      loss = tf.reduce_sum(tf.cast(outputs, tf.float32) * weights)
    return [outputs] + tape.gradient(loss, [x] + layer.trainable_variables)
  return (tf.function(run) if function else run)(x)


@pytest.mark.parametrize("layout", ["right", "left", "holes"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_outputs_states_and_gradients_equal_keras_s_kernel(
    layout, bidirectional, return_sequences):
  x, mask = _inputs(6, 9, 5, layout)
  fused, reference = _pair(4, bidirectional, return_sequences, 5)
  got = _forward_backward(fused, x, mask)
  want = _forward_backward(reference, x, mask)
  names = ["outputs", "d inputs"] + [v.path for v in fused.trainable_variables]
  for name, a, b in zip(names, got, want):
    np.testing.assert_allclose(tf.convert_to_tensor(a),
                               tf.convert_to_tensor(b), atol=1e-5,
                               err_msg=name)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_matches_keras_s_kernel_to_its_precision(policy):
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(policy)
  try:
    x, mask = _inputs(6, 9, 5, "right")
    fused, reference = _pair(4, True, True, 5)
    got = _forward_backward(fused, x, mask, function=True)
    want = _forward_backward(reference, x, mask, function=True)
  finally:
    keras.mixed_precision.set_global_policy(previous)
  assert got[0].dtype == want[0].dtype == tf.as_dtype(policy[6:])
  # Both compute in the low precision; they agree to its rounding.
  tolerance = 2e-2 if policy == "mixed_bfloat16" else 3e-3
  for a, b in zip(got, want):
    a = tf.cast(tf.convert_to_tensor(a), tf.float32).numpy()
    b = tf.cast(tf.convert_to_tensor(b), tf.float32).numpy()
    np.testing.assert_allclose(a, b, atol=tolerance * max(1, np.abs(b).max()))


def test_one_unit_equals_keras_s_kernel():
  """With one unit, broadcasting cannot tell a step's state width: the
  loops must not lose it."""
  x, mask = _inputs(6, 9, 5, "holes")
  fused, reference = _pair(1, True, True, 5)
  for a, b in zip(_forward_backward(fused, x, mask, function=True),
                  _forward_backward(reference, x, mask)):
    np.testing.assert_allclose(tf.convert_to_tensor(a),
                               tf.convert_to_tensor(b), atol=1e-5)


def test_an_empty_time_axis_and_empty_rows_give_zeros_and_finite_gradients():
  fused, _ = _pair(3, True, True, 2)
  for time in (0, 4):
    x = tf.zeros([3, time, 2])
    mask = tf.zeros([3, time], tf.bool)
    outputs, grad_x, *grads = _forward_backward(fused, x, mask)
    assert outputs.shape == (3, time, 6)
    np.testing.assert_array_equal(outputs, 0.0)
    for grad in [grad_x] + grads:
      assert np.all(np.isfinite(tf.convert_to_tensor(grad)))


def test_a_channel_axis_known_only_at_run_time_is_read():
  """A feature concatenated in the graph may lose its static width."""
  x, mask = _inputs(4, 6, 3, "right")
  fused, reference = _pair(4, True, True, 3)
  run = tf.function(lambda x, mask: fused(x, mask=mask)[0], input_signature=[
      tf.TensorSpec([None, None, None]), tf.TensorSpec([None, None], tf.bool)])
  np.testing.assert_allclose(run(x, mask), reference(x, mask=mask)[0],
                             atol=1e-5)


def test_a_mask_known_when_traced_runs_the_same_kernel():
  """A constant mask gives the packed loop static first and last rows."""
  x, mask = _inputs(5, 6, 3, "left")
  fused, reference = _pair(4, True, True, 3)
  run = tf.function(lambda x: gru_kernel.gru_sequences(
      x, tf.constant(mask.numpy()), fused._cells())[0])
  np.testing.assert_allclose(run(x), reference(x, mask=mask)[0], atol=1e-5)


def test_xla_compiles_the_fused_kernel():
  x, mask = _inputs(4, 7, 3, "left")
  fused, reference = _pair(4, True, True, 3)
  got = tf.function(lambda x: _forward_backward(fused, x, mask),
                    jit_compile=True)(x)
  want = _forward_backward(reference, x, mask)
  for a, b in zip(got, want):
    np.testing.assert_allclose(tf.convert_to_tensor(a),
                               tf.convert_to_tensor(b), atol=1e-5)


def test_the_kernel_is_chosen_by_the_layer_and_the_gpu_path_keeps_keras(
    monkeypatch):
  layer = mm.MaskedGRU(3, bidirectional=True, return_sequences=True)
  layer.build((None, None, 2))
  assert not layer._keras_kernel()  # the fused kernel on a CPU host
  keras_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")
  monkeypatch.setattr(keras_rnn, "_is_gpu_available", lambda: True)
  assert layer._keras_kernel()  # cuDNN on a GPU host
  training.set_precision("float32")
  mm.layers.set_use_cudnn(layer, False)
  assert not layer._keras_kernel()  # export and XLA: never cuDNN
  assert mm.MaskedGRU(3, recurrent_dropout=0.1)._keras_kernel()
  with pytest.raises(ValueError, match="kernel must be one of"):
    mm.MaskedGRU(3, kernel="cudnn")


@pytest.mark.parametrize("xla", [False, True], ids=["packed", "xla"])
def test_an_initial_state_runs_and_learns_as_keras_s_rnn(xla):
  """From given initial states (a decoder's, from its source): the same
  states, and the same gradients to the inputs, the weights and the
  initial states, as Keras's RNN over right-padded rows."""
  x, mask = _inputs(6, 9, 5, "right", seed=4)
  mask = tf.constant(np.arange(9)[None] < np.array([[9], [1], [4], [9], [2],
                                                    [6]]))  # every row runs
  initial = tf.constant(np.random.default_rng(5).normal(
      size=(6, 4)).astype(np.float32))
  cell = keras.layers.GRUCell(4)
  rnn = keras.layers.RNN(cell, return_sequences=True)
  rnn.build((None, None, 5))
  cell.set_weights([np.random.default_rng(6).normal(scale=0.5, size=w.shape)
                    for w in cell.get_weights()])

  def run(fused):
    with tf.GradientTape() as tape:
      tape.watch([x, initial])
      if fused:
        outputs, _ = gru_kernel.gru_sequences(x, mask, [cell], [initial])
      else:
        outputs = rnn(x, mask=mask, initial_state=[initial])
      outputs = tf.where(mask[:, :, None], outputs, 0.0)
      weights = tf.sin(tf.reshape(tf.range(tf.size(outputs),
                                           dtype=tf.float32),
                                  tf.shape(outputs)))
      loss = tf.reduce_sum(outputs * weights)
    return [outputs] + tape.gradient(loss, [x, initial] +
                                     cell.trainable_variables)

  got = (tf.function(lambda: run(True), jit_compile=True) if xla else
         lambda: run(True))()
  want = run(False)
  for name, a, b in zip(["outputs", "d inputs", "d initial", "d kernel",
                         "d recurrent kernel", "d bias"], got, want):
    np.testing.assert_allclose(tf.convert_to_tensor(a),
                               tf.convert_to_tensor(b), atol=1e-5,
                               err_msg=name)
