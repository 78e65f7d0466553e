"""Dropout whose masks differ across replicas and workers.

Keras 3 keeps a dropout layer's seed in a variable that every replica
advances in lockstep, so under ``tf.distribute`` each replica draws the same
mask and the global batch repeats one pattern per replica slice. Here each
draw folds the replica's id (global across workers) into that seed: masks
are independent per replica, and still a pure function of the seed state, so
a run is deterministic and resumes with the same masks.

Each draw takes 16 random bits per value, two values per 32-bit word of
TensorFlow's stateless generator: half the generator's work of
``tf.nn.experimental.stateless_dropout``, which draws a float per value
(the generator was 4% of a training step of the IMDb model on a CPU). The
rate is then a multiple of 2^-16 (0.3 is 0.300003), and kept values are
scaled by the inverse of that rate's keep probability, so the expectation
is exact.
"""

import keras
import tensorflow as tf


def replica_seed(seed):
  """``seed`` (int ``[2]``) made distinct per replica in sync.

  Returns an int32 ``[2]`` seed for ``tf.random.stateless_*`` ops; outside a
  multi-replica context the seed is only cast.
  """
  seed = tf.cast(tf.math.floormod(tf.cast(seed, tf.int64), tf.int32.max - 1),
                 tf.int32)
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return seed
  replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
  return tf.random.experimental.stateless_fold_in(seed, replica)


_BITS = 16


def stateless_dropout(inputs, rate, seed, noise_shape=None):
  """Zeroes each value of ``inputs`` with probability ``rate`` (to
  2^-16) and scales the rest so the expectation is kept.

  Args:
    inputs: float tensor of any shape.
    rate: python float in ``[0, 1)``.
    seed: int32 ``[2]``, for ``tf.random.stateless_*``.
    noise_shape: int ``[rank]`` tensor broadcastable to ``inputs``' shape,
      or None for ``inputs``' shape.

  Returns:
    a tensor like ``inputs``.
  """
  shape = tf.shape(inputs) if noise_shape is None else noise_shape
  size = tf.reduce_prod(shape)
  words = tf.random.stateless_uniform([(size + 1) // 2], seed,
                                      dtype=tf.uint32, minval=None,
                                      maxval=None)
  bits = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
  dropped = min(round(rate * 2**_BITS), 2**_BITS - 1)  # values below drop
  keep = tf.reshape(bits >= tf.constant(dropped, tf.uint16), shape)
  scale = tf.cast(2**_BITS / (2**_BITS - dropped), inputs.dtype)
  return tf.where(keep, inputs * scale, tf.zeros((), inputs.dtype))


@keras.saving.register_keras_serializable(package="maskmodels")
class Dropout(keras.layers.Dropout):
  """``keras.layers.Dropout`` with an independent mask on every replica.

  Same arguments and config as Keras's layer. ``noise_shape`` may hold None
  for dimensions taken from the input (e.g. ``(None, None, 1)`` drops whole
  token vectors of ``[batch, time, dim]``).
  """

  def call(self, inputs, training=False):
    if not training or self.rate <= 0:
      return inputs
    shape = tf.shape(inputs)
    noise_shape = None
    if self.noise_shape is not None:
      noise_shape = tf.stack([shape[i] if dim is None else dim
                              for i, dim in enumerate(self.noise_shape)])
    return stateless_dropout(inputs, self.rate,
                             replica_seed(self.seed_generator.next()),
                             noise_shape)
