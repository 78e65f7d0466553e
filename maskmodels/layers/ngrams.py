"""A bag of hashed n-grams over real steps: token ids -> ``[batch, dim]``."""

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.layers.base import ExplicitMask

# Multiplier of the polynomial hash over token ids (a prime above any
# vocabulary size in use, so distinct short n-grams rarely share a code).
_HASH_BASE = 1_000_003


@keras.saving.register_keras_serializable(package="maskmodels")
class HashedNgramBag(ExplicitMask, keras.layers.Layer):
  """Mean embedding of the n-grams made of real steps only.

  Each n-gram of consecutive token ids (for every order in ``orders``) is
  hashed into one of ``buckets`` rows of an embedding table; the output is
  the mean of the rows of the n-grams whose every step is real. It sees the
  bigrams a bag-of-n-grams model (NBSVM, fastText) sees, beside what an
  encoder reads.

  Args:
    buckets: rows of the n-gram embedding table.
    dim: embedding width.
    orders: n-gram lengths, e.g. ``(2,)`` for bigrams or ``(2, 3)``.

  Call args:
    ids: int ``[batch, time]`` token ids.
    mask: bool ``[batch, time]``, True = real step.

  Returns:
    float ``[batch, dim]``; zeros for a text with no complete n-gram.
  """

  def __init__(self, buckets, dim, orders=(2,), **kwargs):
    super().__init__(**kwargs)
    if not isinstance(buckets, int) or buckets < 1:
      raise ValueError(f"buckets must be a positive int, got {buckets!r}.")
    if not orders or any(not isinstance(n, int) or n < 1 for n in orders):
      raise ValueError(f"orders must be positive ints, got {orders!r}.")
    self.buckets, self.dim, self.orders = buckets, dim, list(orders)
    self.table = keras.layers.Embedding(buckets, dim, dtype=self.dtype_policy,
                                        name="table")

  def build(self, input_shape=None):
    self.table.build((None, None))
    self.built = True

  def call(self, ids, mask=None):
    ids = tf.cast(ids, tf.int64)
    mask = tf.ones_like(ids, tf.bool) if mask is None else mask
    codes, reals = [], []
    for order in self.orders:
      width = tf.maximum(tf.shape(ids)[1] - order + 1, 0)
      code = tf.fill(tf.shape(ids[:, :width]), tf.constant(order, tf.int64))
      real = tf.ones_like(mask[:, :width])
      for offset in range(order):
        code = code * _HASH_BASE + ids[:, offset:offset + width]
        real = real & mask[:, offset:offset + width]
      codes.append(tf.math.floormod(code, self.buckets))
      reals.append(real)
    return masking.masked_mean(self.table(tf.concat(codes, 1)),
                               tf.concat(reals, 1))

  def get_config(self):
    return dict(super().get_config(), buckets=self.buckets, dim=self.dim,
                orders=self.orders)
