"""Building a run's parts from its ExperimentConfig: model and tokenizer.

Shared by training, evaluation, prediction and export, so each builds the
same model from the same settings.
"""

import tensorflow as tf

from maskmodels.data import text
from maskmodels.registry import MODELS


def build_model(config, vocab_size, strategy=None):
  """The run's model, with its weights created under ``strategy``.

  The registered model class receives the model settings by name:
  ``vocab_size``, ``num_classes``, ``embedding_dim``, ``encoder``,
  ``encoder_config``, ``pooling``, ``pooling_config``, ``head_units``,
  ``dropout`` (``--head_dropout``) and ``token_dropout``; with
  ``--ngram_buckets`` > 0 also ``ngram_buckets``, ``ngram_dim`` and
  ``ngram_orders``; with ``--naive_bayes_buckets`` > 0 also
  ``naive_bayes_buckets``, ``naive_bayes_orders`` and ``naive_bayes_weight``.
  """
  settings = config.model
  ngrams = dict(ngram_buckets=settings.ngram_buckets,
                ngram_dim=settings.ngram_dim,
                ngram_orders=settings.ngram_orders
                ) if settings.ngram_buckets else {}
  if settings.naive_bayes_buckets:
    ngrams.update(naive_bayes_buckets=settings.naive_bayes_buckets,
                  naive_bayes_orders=settings.naive_bayes_orders,
                  naive_bayes_weight=settings.naive_bayes_weight)
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    model = MODELS.get(settings.model)(
        vocab_size=vocab_size, num_classes=len(config.data.class_names),
        embedding_dim=settings.embedding_dim, encoder=settings.encoder,
        encoder_config=settings.encoder_config, pooling=settings.pooling,
        pooling_config=settings.pooling_config,
        head_units=settings.head_units, dropout=settings.head_dropout,
        token_dropout=settings.token_dropout, **ngrams)
    model(tf.zeros([1, 1], tf.int32), training=False)
  return model


def load_tokenizer(config, vocab_path):
  """The run's tokenizer over the vocabulary file at ``vocab_path``."""
  return text.build_tokenizer(config.data.tokenizer, vocab_path,
                              config.data.num_oov_buckets)
