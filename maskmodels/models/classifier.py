"""SequenceClassifier: token ids -> mask -> embed -> encoder -> pool -> head."""

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.layers.dropout import Dropout
from maskmodels.layers.ngrams import HashedNgramBag
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

  Call args:
    ids: int ``[batch, time]``, ``pad_id`` at pad steps (either side).

  Returns:
    float32 logits ``[batch, num_classes]``.
  """

  def __init__(self, vocab_size, num_classes=2, embedding_dim=128,
               encoder="conv_gru", encoder_config=None, pooling="max",
               pooling_config=None, head_units=(), dropout=0.0,
               token_dropout=0.0, pad_id=0, ngram_buckets=0, ngram_dim=64,
               ngram_orders=(2,), **kwargs):
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

  def call(self, ids, training=None):
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
    return self.logits(self.head_dropout(x, training=training))

  def get_config(self):
    return {
        "name": self.name, "vocab_size": self.vocab_size,
        "num_classes": self.num_classes, "embedding_dim": self.embedding_dim,
        "encoder": keras.saving.serialize_keras_object(self.encoder),
        "pooling": keras.saving.serialize_keras_object(self.pooling),
        "head_units": self.head_units, "dropout": self.dropout,
        "token_dropout": self.token_dropout, "pad_id": self.pad_id,
        "ngram_buckets": self.ngram_buckets, "ngram_dim": self.ngram_dim,
        "ngram_orders": self.ngram_orders}
