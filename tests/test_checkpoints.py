"""Checkpoints refuse values saved for another variable, by name."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from maskmodels.errors import InputError
from maskmodels.training import checkpoints, optimization


class Scale(keras.layers.Layer):
  """``x * gamma + beta``, creating its two weights in a chosen order."""

  def __init__(self, beta_first=False, **kwargs):
    super().__init__(**kwargs)
    self.beta_first = beta_first

  def build(self, input_shape):
    for name in (("beta", "gamma") if self.beta_first else ("gamma", "beta")):
      setattr(self, name, self.add_weight(
          shape=(input_shape[-1],), name=name, initializer="random_normal"))

  def call(self, x):
    return x * self.gamma + self.beta


def model(beta_first=False):
  net = keras.Sequential([keras.layers.Dense(3, name="dense"),
                          Scale(beta_first, name="norm")], name="net")
  net(tf.ones([1, 2]))
  return net


def test_a_reordered_model_is_refused_naming_the_first_difference(tmp_path):
  saved = model(beta_first=False)
  path = checkpoints.weights_checkpoint(saved).save(str(tmp_path / "c"))
  same_order = model(beta_first=False)  # another instance: other auto names
  checkpoints.restore_weights(same_order, path)
  for got, want in zip(same_order.weights, saved.weights):
    np.testing.assert_array_equal(got, want)
  swapped = model(beta_first=True)
  with pytest.raises(InputError, match=r"model value 2 is 'model/norm/gamma "
                     r"3 float32' there, 'model/norm/beta 3 float32' here"):
    checkpoints.restore_weights(swapped, path)


def test_an_optimizer_of_another_kind_is_refused(tmp_path):
  net = model()
  adam = optimization.make_optimizer("adam", 1e-3)
  adam.build(net.trainable_variables)
  path = checkpoints.weights_checkpoint(net, adam).save(str(tmp_path / "c"))
  for name in ("adamw", "rmsprop"):
    other = optimization.make_optimizer(name, 1e-3)
    other.build(net.trainable_variables)
    with pytest.raises(InputError, match="optimizer value"):
      checkpoints.restore(checkpoints.weights_checkpoint(net, other), path)
  again = optimization.make_optimizer("adam", 1e-3)
  again.build(net.trainable_variables)
  checkpoints.restore(checkpoints.weights_checkpoint(net, again), path)
  # A model-only checkpoint reads the model part of a full one.
  checkpoints.restore_weights(model(), path)


def test_manifest_names_optimizer_slots_after_their_variables():
  net = model()
  adam = optimization.make_optimizer("adam", 1e-3)
  adam.build(net.trainable_variables)
  entries = checkpoints.variable_manifest(net, adam)
  assert "optimizer/Adam/norm/gamma_momentum 3 float32" in entries
  assert "optimizer/Adam/dense/kernel_velocity 2x3 float32" in entries
  assert entries[0] == "model/dense/kernel 2x3 float32"
