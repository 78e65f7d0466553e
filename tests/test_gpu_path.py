"""What Keras does on a GPU host, simulated on the CPU.

Keras 3 picks the cuDNN GRU when it traces on a host with a GPU: it asks
``_is_gpu_available()``, checks the mask (right-padded, no fully masked row)
with a ``tf.Assert``, and calls ``tf.raw_ops.CudnnRNNV3``. The fixture makes
Keras believe a GPU is present and puts a shape-correct stand-in in place of
the cuDNN op: a GRU computed with TensorFlow ops in cuDNN's parameter layout,
gate order and sequence-length semantics. Everything Keras does around the
op, its assertion included, runs as it would on a GPU.
"""

import importlib
import os

import numpy as np
import pytest
import tensorflow as tf
import keras

from helpers import tiny_config, write_jsonl
import maskmodels as mm
from maskmodels import data, export, training

# The module (its package exports a function of the same name).
keras_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")


def _cudnn_gru_stand_in(calls):
  """A CudnnRNNV3 for GRUs (batch-major) built from TensorFlow ops."""

  def cudnn_rnn_v3(input, input_h, input_c, params, is_training, rnn_mode,  # pylint: disable=redefined-builtin
                   sequence_lengths, time_major):
    del input_c, is_training
    assert rnn_mode == "gru" and not time_major
    calls.append("eager" if tf.executing_eagerly() else "traced")
    units, dim = input_h.shape[-1], input.shape[-1]
    sizes = [units * dim] * 3 + [units * units] * 3 + [units] * 6
    parts = tf.split(params, sizes)
    kernels = [tf.transpose(tf.reshape(p, [units, dim])) for p in parts[:3]]
    recurrent = [tf.transpose(tf.reshape(p, [units, units]))
                 for p in parts[3:6]]
    biases, recurrent_biases = parts[6:9], parts[9:]
    # cuDNN's gate order is [r, z, h]; Keras swaps to it on CUDA builds.
    r, z, h = (0, 1, 2) if tf.sysconfig.get_build_info()["is_cuda_build"] \
        else (1, 0, 2)
    steps = tf.transpose(input, [1, 0, 2])
    valid = tf.transpose(tf.sequence_mask(sequence_lengths, tf.shape(input)[1]))

    def step(carry, inputs):
      state, _ = carry
      x, real = inputs
      def gate(i):
        return (tf.matmul(x, kernels[i]) + biases[i],
                tf.matmul(state, recurrent[i]) + recurrent_biases[i])
      (xz, hz), (xr, hr), (xh, hh) = gate(z), gate(r), gate(h)
      update, reset = tf.sigmoid(xz + hz), tf.sigmoid(xr + hr)
      new = update * state + (1 - update) * tf.tanh(xh + reset * hh)
      real = real[:, tf.newaxis]
      return (tf.where(real, new, state), tf.where(real, new, 0.0))

    initial = input_h[:, 0, :]
    states, outputs = tf.scan(step, (steps, valid),
                              initializer=(initial, tf.zeros_like(initial)))
    final = states[-1] if input.shape[1] != 0 else initial
    return (tf.transpose(outputs, [1, 0, 2]), final[:, tf.newaxis, :],
            tf.zeros([]), tf.zeros([]), tf.zeros([]))

  return cudnn_rnn_v3


@pytest.fixture(scope="module", autouse=True)
def _grappler():
  """The stand-in's ``tf.scan`` runs several times slower without Grappler
  (which ``conftest.py`` turns off for the other in-process tests)."""
  options = tf.config.optimizer.get_experimental_options()
  tf.config.optimizer.set_experimental_options(
      {"disable_meta_optimizer": False})
  yield
  tf.config.optimizer.set_experimental_options(options)


@pytest.fixture
def gpu_host(monkeypatch):
  """Keras sees a GPU; returns the list of calls to the cuDNN stand-in."""
  calls = []
  monkeypatch.setattr(keras_rnn, "_is_gpu_available", lambda: True)
  monkeypatch.setattr(tf.raw_ops, "CudnnRNNV3", _cudnn_gru_stand_in(calls))
  return calls


def _inputs_with_empty_rows():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, 6, 5)).astype(np.float32)
  mask = np.arange(6)[None] < np.array([[6], [0], [3], [0]])  # 2 empty rows
  return tf.constant(x), tf.constant(mask)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_masked_gru_on_the_cudnn_path_takes_empty_rows_in_a_graph(
    gpu_host, bidirectional, return_sequences):
  layer = mm.MaskedGRU(4, bidirectional=bidirectional,
                       return_sequences=return_sequences)
  x, mask = _inputs_with_empty_rows()
  mm.layers.set_use_cudnn(layer, False)
  on_cpu = layer(x, mask=mask)  # the fused kernel, as on a CPU host
  mm.layers.set_use_cudnn(layer, "auto")
  gpu_host.clear()
  on_gpu = tf.function(lambda a, m: layer(a, mask=m))(x, mask)
  assert gpu_host  # the cuDNN path ran, its mask assertion included
  for got, want in zip(tf.nest.flatten(on_gpu), tf.nest.flatten(on_cpu)):
    np.testing.assert_allclose(got, want, atol=1e-5)
  empty = ~mask.numpy().any(axis=1)
  values = tf.nest.flatten(on_gpu)[0].numpy()
  np.testing.assert_array_equal(values[empty], 0.0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  texts = ["a fine film", "", "dull", "   ", "a fine dull film " * 5, ""] * 4
  labels = np.array([1, 0, 0, 1, 1, 0] * 4, np.int32)
  examples = data.Examples(texts, labels, "corpus")
  path = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
  data.write_vocabulary(data.learn_vocabulary(texts, "word", 50, verbose=0),
                        path)
  return examples, data.Featurizer(data.build_tokenizer("word", path))


def _trainer(featurizer):
  keras.utils.set_random_seed(7)
  model = mm.SequenceModel.classifier(
      featurizer.tokenizer.vocab_size, 2, embedding_dim=8, pooling="last",
      encoder_config=dict(conv_filters=[8], kernel_size=3, padding="valid",
                          pool_size=2, gru_units=[6],
                          normalization="layer"))
  model.build()
  optimizer = training.make_optimizer("adam", 1e-2)
  optimizer.build(model.trainable_variables)
  return training.Trainer(mm.ClassificationTask(label_names=["neg", "pos"]),
                          model, optimizer,
                          tf.distribute.get_strategy(), clip_norm=1.0)


def _steps(trainer, examples, featurizer):
  # Batches of 4 sorted by length: whole batches of empty texts, and texts
  # that the "valid" convolution empties.
  config = data.PipelineConfig(max_len=40, batch_size=4, shuffle=False,
                               bucket_boundaries=(1, 3))
  trainer.set_train_data(lambda ctx, start: data.make_dataset(
      examples, featurizer, config, True, ctx, start))
  losses = [trainer.train(2)["loss"] for _ in range(3)]
  results = trainer.evaluate(lambda ctx: data.make_dataset(
      examples, featurizer, config, False, ctx))
  return losses, results


def test_train_and_eval_steps_with_empty_rows_on_the_cudnn_path(
    corpus, monkeypatch):
  examples, featurizer = corpus
  cpu_losses, cpu_results = _steps(_trainer(featurizer), examples, featurizer)
  calls = []
  monkeypatch.setattr(keras_rnn, "_is_gpu_available", lambda: True)
  monkeypatch.setattr(tf.raw_ops, "CudnnRNNV3", _cudnn_gru_stand_in(calls))
  gpu_losses, gpu_results = _steps(_trainer(featurizer), examples, featurizer)
  assert calls
  np.testing.assert_allclose(gpu_losses, cpu_losses, atol=1e-5)
  assert gpu_results["examples"] == len(examples)
  assert gpu_results["loss"] == pytest.approx(cpu_results["loss"], abs=1e-5)


def test_an_xla_run_uses_the_generic_gru_kernel(gpu_host, tmp_path):
  """A whole run under XLA (``--jit_compile``) on a GPU host: it trains
  and evaluates, and no step traces cuDNN, which XLA cannot compile."""
  jsonl = write_jsonl(tmp_path / "reviews.jsonl", 240, seed=2)
  # Without max-pooling: a test earlier in the process may have turned on
  # op determinism, and XLA has no deterministic max-pool gradient.
  summary = training.train_and_evaluate(
      tiny_config(jsonl, deterministic=False, train_steps=4,
                  steps_per_loop=2, jit_compile=True, pool_size=1),
      str(tmp_path / "run"), tf.distribute.get_strategy())
  assert summary["steps"] == 4
  assert np.isfinite(summary["best_validation_accuracy"])
  assert "eager" in gpu_host  # the model was built on the cuDNN path
  assert "traced" not in gpu_host


def test_a_model_exported_on_a_gpu_host_serves_without_cudnn(gpu_host,
                                                             tmp_path):
  jsonl = write_jsonl(tmp_path / "reviews.jsonl", 60, seed=3)
  model_dir = str(tmp_path / "run")
  training.train_and_evaluate(
      tiny_config(jsonl, deterministic=False, train_steps=2, pooling="last"),
      model_dir, tf.distribute.get_strategy())
  export_dir = export.export_saved_model(model_dir, str(tmp_path / "export"))
  with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
    assert b"CudnnRNN" not in f.read()
  serve = export.load_serving_function(export_dir)
  texts = ["", "   ", "a superb film", ""]
  probabilities = serve(texts=tf.constant(texts))["probabilities"].numpy()
  run = training.load_trained(model_dir)
  np.testing.assert_allclose(
      probabilities, [row["probabilities"] for row in
                      run.server().predict(texts)], atol=1e-5)
  everything_empty = serve(texts=tf.constant(["", ""]))["probabilities"]
  assert np.isfinite(everything_empty.numpy()).all()
