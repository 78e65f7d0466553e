"""SequenceClassifier: token ids -> mask -> embed -> encoder -> pool -> head."""

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.layers.dropout import Dropout
from maskmodels.layers.ngrams import HashedNgramBag, NaiveBayesNgrams
# Imported for its side effect: it registers the built-in poolings by name.
from maskmodels.layers import pooling as _builtin_poolings  # noqa: F401
from maskmodels.registry import ENCODERS, POOLINGS, register_model


def _component(spec, config, registry, dtype):
  """A layer from a registered name (+ config), a serialized dict, or itself.

  A named component is built with the model's dtype policy.
  """
  if isinstance(spec, str):
    return registry.get(spec)(**dict(config or {}, dtype=dtype))
  if isinstance(spec, dict):
    return keras.saving.deserialize_keras_object(spec)
  if isinstance(spec, keras.layers.Layer):
    return spec
  raise TypeError(f"A {registry.kind} must be a registered name "
                  f"({', '.join(registry.names())}), a Keras layer or a "
                  f"serialized layer dict; got {type(spec).__name__}.")


@register_model("classifier")
class SequenceClassifier(keras.Model):
  """Text classifier over token ids with an explicit, threaded mask.

  The mask is computed inside ``call`` from the ids (``ids != pad_id``), the
  ids are packed to the right-padded layout once, and every later layer gets
  the mask explicitly.

  Args:
    vocab_size: embedding rows, including the pad id.
    num_classes: number of classes (>= 2); binary tasks use 2 logits.
    embedding_dim: embedding width.
    encoder: a registered encoder name, a Keras layer, or a serialized dict.
    encoder_config: keyword arguments for a named encoder.
    pooling: a registered pooling name, a Keras layer, or a serialized dict.
    pooling_config: keyword arguments for a named pooling.
    head_units: widths of hidden ReLU layers before the logits.
    dropout: dropout before each head layer.
    token_dropout: rate at which whole token embeddings are zeroed in
      training (a regularizer for small data; the mask is unchanged).
    pad_id: the id that marks padding.
    ngram_buckets: if > 0, a :class:`HashedNgramBag` of this many rows reads
      the ids beside the encoder, and the head sees its output concatenated
      with the pooled encoding.
    ngram_dim: width of the n-gram embeddings.
    ngram_orders: n-gram lengths of the bag.
    naive_bayes_buckets: if > 0, a :class:`NaiveBayesNgrams` linear model of
      this many hash buckets reads the ids too, learns from its own loss
      (:meth:`member_logits`), and its logits add to the head's;
      :meth:`adapt` sets its naive Bayes ratios before training.
    naive_bayes_orders: n-gram lengths of that model.
    naive_bayes_weight: the weight of the naive Bayes model's logits in the
      output (the head's logits weigh 1). Training does not depend on it (each
      member learns from its own loss); choose it on validation data.

  Call args:
    ids: int ``[batch, time]``, ``pad_id`` at pad steps (either side).

  Returns:
    float32 logits ``[batch, num_classes]``.
  """

  def __init__(self, vocab_size, num_classes=2, embedding_dim=128,
               encoder="conv_gru", encoder_config=None, pooling="max",
               pooling_config=None, head_units=(), dropout=0.0,
               token_dropout=0.0, pad_id=0, ngram_buckets=0, ngram_dim=64,
               ngram_orders=(2,), naive_bayes_buckets=0,
               naive_bayes_orders=(1, 2), naive_bayes_weight=1.0, **kwargs):
    super().__init__(**kwargs)
    if not isinstance(vocab_size, int) or vocab_size < 2:
      raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}.")
    if not isinstance(num_classes, int) or num_classes < 2:
      raise ValueError(f"num_classes must be an int >= 2, got "
                       f"{num_classes!r}.")
    self.vocab_size = vocab_size
    self.num_classes = num_classes
    self.embedding_dim = embedding_dim
    self.head_units = list(head_units)
    self.dropout = dropout
    self.token_dropout = token_dropout
    self.pad_id = pad_id
    self.ngram_buckets, self.ngram_dim = ngram_buckets, ngram_dim
    self.ngram_orders = list(ngram_orders)
    self.naive_bayes_buckets = naive_bayes_buckets
    self.naive_bayes_orders = list(naive_bayes_orders)
    self.naive_bayes_weight = float(naive_bayes_weight)
    policy = self.dtype_policy
    self.embedding = keras.layers.Embedding(vocab_size, embedding_dim,
                                            dtype=policy, name="embedding")
    # noise_shape [batch, time, 1]: a dropped token loses its whole vector.
    self.embedding_dropout = Dropout(token_dropout, noise_shape=(None, None, 1),
                                     dtype=policy, name="token_dropout")
    self.encoder = _component(encoder, encoder_config, ENCODERS, policy)
    self.pooling = _component(pooling, pooling_config, POOLINGS, policy)
    self.ngrams = HashedNgramBag(
        ngram_buckets, ngram_dim, ngram_orders, dtype=policy,
        name="ngrams") if ngram_buckets else None
    self.naive_bayes = NaiveBayesNgrams(
        naive_bayes_buckets, num_classes, naive_bayes_orders, dtype="float32",
        name="naive_bayes") if naive_bayes_buckets else None
    self.head = [keras.layers.Dense(units, activation="relu", dtype=policy,
                                    name=f"head_{i}")
                 for i, units in enumerate(self.head_units)]
    self.head_dropout = Dropout(dropout, dtype=policy, name="head_dropout")
    self.logits = keras.layers.Dense(num_classes, dtype="float32",
                                     name="logits")

  def build(self, input_shape=None):
    """Creates every weight by running ``call`` once on a ``[1, 1]`` batch.

    Loading from a ``.keras`` file or ``get_config`` calls this; the weights'
    shapes do not depend on ``input_shape``.
    """
    if not self.built:
      self.call(tf.zeros([1, 1], tf.int32), training=False)
      self.built = True

  def member_logits(self, ids, training=None):
    """The logits of each member of the model, ``[batch, num_classes]`` each.

    The head's, then (with ``naive_bayes_buckets``) the naive Bayes
    model's. ``call`` returns their weighted sum (:meth:`combine`); in
    training each member learns from its own loss (see
    :meth:`maskmodels.training.Task.forward`), so the members are trained
    as an ensemble, not as one model.
    """
    ids = tf.convert_to_tensor(ids)
    mask = masking.mask_from_ids(ids, self.pad_id)
    ids, mask, _ = masking.to_right_padded(ids, mask)
    x = self.embedding_dropout(self.embedding(ids), training=training)
    x, steps = self.encoder(x, mask=mask, training=training)
    x = self.pooling(x, mask=steps, training=training)
    if self.ngrams is not None:
      x = tf.concat([x, tf.cast(self.ngrams(ids, mask=mask), x.dtype)], -1)
    for layer in self.head:
      x = layer(self.head_dropout(x, training=training))
    members = [self.logits(self.head_dropout(x, training=training))]
    if self.naive_bayes is not None:
      members.append(self.naive_bayes(ids, mask=mask))
    return members

  def combine(self, members):
    """The output logits from :meth:`member_logits`: the head's plus
    ``naive_bayes_weight`` times the naive Bayes model's."""
    if len(members) == 1:
      return members[0]
    return members[0] + self.naive_bayes_weight * members[1]

  def call(self, ids, training=None):
    return self.combine(self.member_logits(ids, training=training))

  def adapt(self, batches):
    """Fits the state that comes from the training data, before training.

    Sets the naive Bayes ratios of ``naive_bayes`` (if any); nothing else.
    The training runner calls ``adapt`` on any model that has it when a run
    starts; a resumed run restores that state from its checkpoint.

    Args:
      batches: iterable of ``(ids, labels)``: int ``[batch, time]`` token ids
        (``pad_id`` at pad steps) and int ``[batch]`` class indices.
    """
    if self.naive_bayes is not None:
      self.naive_bayes.adapt(
          (ids, masking.mask_from_ids(ids, self.pad_id), labels)
          for ids, labels in batches)

  def get_config(self):
    return {
        "name": self.name, "vocab_size": self.vocab_size,
        "num_classes": self.num_classes, "embedding_dim": self.embedding_dim,
        "encoder": keras.saving.serialize_keras_object(self.encoder),
        "pooling": keras.saving.serialize_keras_object(self.pooling),
        "head_units": self.head_units, "dropout": self.dropout,
        "token_dropout": self.token_dropout, "pad_id": self.pad_id,
        "ngram_buckets": self.ngram_buckets, "ngram_dim": self.ngram_dim,
        "ngram_orders": self.ngram_orders,
        "naive_bayes_buckets": self.naive_bayes_buckets,
        "naive_bayes_orders": self.naive_bayes_orders,
        "naive_bayes_weight": self.naive_bayes_weight}
