"""Dropout whose masks differ across replicas and workers.

Keras 3 keeps a dropout layer's seed in a variable that every replica
advances in lockstep, so under ``tf.distribute`` each replica draws the same
mask and the global batch repeats one pattern per replica slice. Here each
draw folds the replica's id (global across workers) into that seed: masks
are independent per replica, and still a pure function of the seed state, so
a run is deterministic and resumes with the same masks.
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
    return tf.nn.experimental.stateless_dropout(
        inputs, rate=self.rate, noise_shape=noise_shape,
        seed=replica_seed(self.seed_generator.next()))
