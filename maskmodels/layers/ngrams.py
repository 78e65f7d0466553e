"""Hashed n-grams of real steps, read beside an encoder.

:class:`HashedNgramBag` embeds them (``[batch, dim]``);
:class:`NaiveBayesNgrams` is a linear model over the set of them, scaled by
naive Bayes log-count ratios (``[batch, classes]`` logits).
"""

import keras
import numpy as np
import tensorflow as tf

from maskmodels import masking
from maskmodels.layers.base import ExplicitMask

# Multiplier of the polynomial hash over token ids (a prime above any
# vocabulary size in use, so distinct short n-grams rarely share a code).
_HASH_BASE = 1_000_003


def _check_buckets_and_orders(buckets, orders):
  if not isinstance(buckets, int) or buckets < 1:
    raise ValueError(f"buckets must be a positive int, got {buckets!r}.")
  if not orders or any(not isinstance(n, int) or n < 1 for n in orders):
    raise ValueError(f"orders must be positive ints, got {orders!r}.")


def ngram_codes(ids, mask, orders, buckets):
  """Hashed codes of every n-gram, and whether all its steps are real.

  Args:
    ids: int ``[batch, time]`` token ids.
    mask: bool ``[batch, time]``, True = real step.
    orders: n-gram lengths, e.g. ``(1, 2)``.
    buckets: codes lie in ``[0, buckets)``.

  Returns:
    ``(codes, real)``: int64 and bool ``[batch, ngrams]``, the n-grams of each
    order in turn (n-grams of different orders never share a code on
    purpose: the order starts the hash).
  """
  ids = tf.cast(ids, tf.int64)
  codes, reals = [], []
  for order in orders:
    width = tf.maximum(tf.shape(ids)[1] - order + 1, 0)
    code = tf.fill(tf.shape(ids[:, :width]), tf.constant(order, tf.int64))
    real = tf.ones_like(mask[:, :width])
    for offset in range(order):
      code = code * _HASH_BASE + ids[:, offset:offset + width]
      real = real & mask[:, offset:offset + width]
    codes.append(tf.math.floormod(code, buckets))
    reals.append(real)
  return tf.concat(codes, 1), tf.concat(reals, 1)


def distinct_ngram_codes(ids, mask, orders, buckets):
  """The set of hashed n-grams of real steps in each row.

  Returns:
    ``(codes, first)``: int64 ``[batch, ngrams]`` codes sorted in each row
    (0 where not real) and bool ``[batch, ngrams]``, True at the first
    occurrence of each real code, so each distinct n-gram counts once.
  """
  codes, real = ngram_codes(ids, mask, orders, buckets)
  codes = tf.sort(tf.where(real, codes, -1), axis=1)
  new = tf.concat([tf.ones_like(codes[:, :1], tf.bool),
                   codes[:, 1:] != codes[:, :-1]], axis=1)
  return tf.maximum(codes, 0), new & (codes >= 0)


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
    _check_buckets_and_orders(buckets, orders)
    self.buckets, self.dim, self.orders = buckets, dim, list(orders)
    self.table = keras.layers.Embedding(buckets, dim, dtype=self.dtype_policy,
                                        name="table")

  def build(self, input_shape=None):
    self.table.build((None, None))
    self.built = True

  def call(self, ids, mask=None):
    mask = tf.ones_like(ids, tf.bool) if mask is None else mask
    codes, real = ngram_codes(ids, mask, self.orders, self.buckets)
    return masking.masked_mean(self.table(codes), real)

  def get_config(self):
    return dict(super().get_config(), buckets=self.buckets, dim=self.dim,
                orders=self.orders)


@keras.saving.register_keras_serializable(package="maskmodels")
class NaiveBayesNgrams(ExplicitMask, keras.layers.Layer):
  """Logits of a linear model over naive-Bayes-scaled n-grams (NBSVM).

  The features of a text are the set of its hashed n-grams of real steps
  (each counted once), scaled by their naive Bayes log-count ratios: for
  class ``c``, ``log p(n-gram | c)`` minus its mean over classes, estimated
  from labelled texts by :meth:`adapt` with add-``smoothing`` counts. The
  trained ``kernel`` (zeros at the start) and ``bias`` turn them into
  logits. This is Wang & Manning's (2012) NBSVM trained by gradient descent
  with a logistic loss; next to an encoder, its logits add to the encoder's.

  Args:
    buckets: hash buckets of the n-grams (rows of the ratio table).
    num_classes: logits per text.
    orders: n-gram lengths, e.g. ``(1, 2)``.
    smoothing: the count added to every bucket and class by :meth:`adapt`.

  Call args:
    ids: int ``[batch, time]`` token ids.
    mask: bool ``[batch, time]``, True = real step.

  Returns:
    float32 logits ``[batch, num_classes]``; the bias for a text with no
    complete n-gram. All zeros until :meth:`adapt` and training.
  """

  def __init__(self, buckets, num_classes, orders=(1, 2), smoothing=1.0,
               **kwargs):
    super().__init__(**kwargs)
    _check_buckets_and_orders(buckets, orders)
    if not isinstance(num_classes, int) or num_classes < 2:
      raise ValueError(f"num_classes must be an int >= 2, got "
                       f"{num_classes!r}.")
    if not smoothing > 0:
      raise ValueError(f"smoothing must be > 0, got {smoothing!r}.")
    self.buckets, self.num_classes = buckets, num_classes
    self.orders, self.smoothing = list(orders), float(smoothing)

  def build(self, input_shape=None):
    shape = (self.buckets, self.num_classes)
    self.ratios = self.add_weight(shape=shape, initializer="zeros",
                                  trainable=False, name="ratios")
    self.kernel = self.add_weight(shape=shape, initializer="zeros",
                                  name="kernel")
    self.bias = self.add_weight(shape=(self.num_classes,),
                                initializer="zeros", name="bias")
    self.built = True

  def call(self, ids, mask=None):
    mask = tf.ones_like(ids, tf.bool) if mask is None else mask
    codes, first = distinct_ngram_codes(ids, mask, self.orders, self.buckets)
    scaled = (tf.gather(tf.cast(self.ratios, tf.float32), codes) *
              tf.gather(tf.cast(self.kernel, tf.float32), codes))
    first = tf.cast(first, tf.float32)[..., tf.newaxis]
    return tf.reduce_sum(scaled * first, axis=1) + tf.cast(self.bias,
                                                           tf.float32)

  def count(self, batches):
    """Texts of each class holding each bucket's n-grams.

    Args:
      batches: iterable of ``(ids, mask, labels)``: int ``[batch, time]``,
        bool ``[batch, time]`` and int ``[batch]`` class indices.

    Returns:
      float64 array ``[buckets, num_classes]``.
    """
    counts = np.zeros((self.buckets, self.num_classes))
    for ids, mask, labels in batches:
      codes, first = distinct_ngram_codes(tf.convert_to_tensor(ids),
                                          tf.convert_to_tensor(mask),
                                          self.orders, self.buckets)
      labels = tf.broadcast_to(tf.cast(labels, tf.int64)[:, tf.newaxis],
                               tf.shape(codes))
      cells = codes[first] * self.num_classes + labels[first]
      counts += np.bincount(cells.numpy(), minlength=counts.size).reshape(
          counts.shape)
    return counts

  def adapt(self, batches):
    """Sets the log-count ratios from labelled batches (see :meth:`count`).

    Call it once before training, outside any replica context; the kernel
    and bias are left as they are.
    """
    if not self.built:
      self.build()
    counts = self.count(batches) + self.smoothing
    log_p = np.log(counts / counts.sum(axis=0, keepdims=True))
    self.ratios.assign(log_p - log_p.mean(axis=1, keepdims=True))

  def get_config(self):
    return dict(super().get_config(), buckets=self.buckets,
                num_classes=self.num_classes, orders=self.orders,
                smoothing=self.smoothing)
