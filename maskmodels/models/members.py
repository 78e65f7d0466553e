"""Ensemble members beside the network: linear models over hashed n-grams.

Each is a registered member (``--members=naive_bayes``) with its own
``Config``; it reads the token ids and returns ``[batch, output_size]``
logits, so it serves sequence-level tasks.
"""

import dataclasses

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.layers.ngrams import HashedNgramBag, NaiveBayesNgrams
from maskmodels.models.backbone import features_of
from maskmodels.outputs import ModelOutputs
from maskmodels.registry import register_member
from maskmodels.settings import (MAX_BUCKETS, MAX_WIDTH, MAX_WINDOW,
                                 Configurable, Settings, setting)


class Member(Configurable, keras.Model):
  """Base of members: ``call(inputs, training=None)`` -> ``ModelOutputs``
  of logits ``[batch, output_size]`` (a bare tensor is read as them).

  Args:
    output_size: logits per example (the task's).
    pad_id: the id that marks padding.
  """

  per_token = False

  def __init__(self, output_size, pad_id=0, **kwargs):
    super().__init__(**kwargs)
    self.output_size, self.pad_id = output_size, pad_id

  def ids_and_mask(self, inputs):
    ids = features_of(inputs)["ids"]
    return ids, masking.mask_from_ids(ids, self.pad_id)

  def build(self, input_shape=None):
    if not self.built:
      self.call(tf.ones([1, 1], tf.int32))
      self.built = True

  def get_config(self):
    return dict(super().get_config(), output_size=self.output_size,
                pad_id=self.pad_id)


@register_member("naive_bayes")
class NaiveBayesClassifier(Member):
  """NBSVM (Wang & Manning 2012): a linear model over the set of a text's
  hashed n-grams of real steps, each scaled by its naive Bayes log-count
  ratio, which :meth:`adapt` counts on the training split before the first
  step (``maskmodels.layers.NaiveBayesNgrams``)."""

  @dataclasses.dataclass
  class Config(Settings):
    """The n-grams and the counts' smoothing."""
    naive_bayes_buckets: int = setting(
        1_048_576, "naive_bayes: hash buckets of the n-grams.", lower=1,
        upper=MAX_BUCKETS, resume=True)
    naive_bayes_orders: list[int] = setting(
        [1, 2], "naive_bayes: n-gram lengths.", lower=1, upper=MAX_WINDOW,
        resume=True)
    naive_bayes_smoothing: float = setting(
        1.0, "naive_bayes: count added to every bucket and class.",
        lower=1e-6, resume=True)

  def __init__(self, output_size, pad_id=0, **kwargs):
    super().__init__(output_size, pad_id, **kwargs)
    config = self.settings
    self.ngrams = NaiveBayesNgrams(
        config.naive_bayes_buckets, max(output_size, 2),
        config.naive_bayes_orders, config.naive_bayes_smoothing,
        dtype="float32", name="naive_bayes")

  def call(self, inputs, training=None):
    ids, mask = self.ids_and_mask(inputs)
    return ModelOutputs(self.ngrams(ids, mask=mask)[:, :self.output_size])

  def adapt(self, batches):
    """Counts the ratios from ``(features, labels)`` batches: int ``[batch]``
    class labels."""
    self.ngrams.adapt((*self.ids_and_mask(features), labels)
                      for features, labels in batches)


@register_member("ngram_bag")
class NgramBagClassifier(Member):
  """fastText-style: the mean embedding of a text's hashed n-grams of real
  steps (``maskmodels.layers.HashedNgramBag``), then logits."""

  @dataclasses.dataclass
  class Config(Settings):
    """The n-gram table."""
    ngram_buckets: int = setting(262_144, "ngram_bag: rows of the n-gram "
                                 "table.", lower=1, upper=MAX_BUCKETS,
                                 resume=True)
    ngram_dim: int = setting(64, "ngram_bag: width of its embeddings.",
                             lower=1, upper=MAX_WIDTH, resume=True)
    ngram_orders: list[int] = setting([2], "ngram_bag: n-gram lengths.",
                                      lower=1, upper=MAX_WINDOW, resume=True)

  def __init__(self, output_size, pad_id=0, **kwargs):
    super().__init__(output_size, pad_id, **kwargs)
    config = self.settings
    self.bag = HashedNgramBag(config.ngram_buckets, config.ngram_dim,
                              config.ngram_orders, dtype=self.dtype_policy,
                              name="bag")
    self.logits = keras.layers.Dense(output_size, dtype="float32",
                                     name="logits")

  def call(self, inputs, training=None):
    ids, mask = self.ids_and_mask(inputs)
    return ModelOutputs(self.logits(self.bag(ids, mask=mask)))
