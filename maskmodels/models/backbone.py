"""The backbone: token ids -> mask -> embeddings -> encoder -> steps + mask.

A backbone knows no labels. Its output, a dict, is what every head reads:

* ``steps``: float ``[batch, time', dim]``, the encoder's outputs;
* ``mask``: bool ``[batch, time']``, True at real steps;
* ``ids``, ``token_mask``: the ids ``[batch, time]`` and their mask, in the
  right-padded layout the encoder read;
* ``order``: int32 ``[batch, time]``, the permutation that took the input
  to that layout (``masking.restore_order`` undoes it).
"""

import dataclasses

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.layers.base import ExplicitMask
from maskmodels.layers.dropout import Dropout
from maskmodels.registry import ENCODERS, WORD_FEATURES, register_backbone
from maskmodels.settings import (MAX_WIDTH, Configurable, Settings,
                                 component_settings, setting)


def component(spec, config, registry, dtype):
  """A layer from a registered name (+ its settings), a serialized dict, or
  the layer itself; a named component is built with ``dtype``."""
  if isinstance(spec, str):
    settings = component_settings(registry, spec, dict(config or {}),
                                  f"the {registry.kind} settings")
    return registry.get(spec)(**dict(settings, dtype=dtype))
  if isinstance(spec, dict):
    return keras.saving.deserialize_keras_object(spec)
  if isinstance(spec, keras.layers.Layer):
    return spec
  raise TypeError(f"A {registry.kind} must be a registered name "
                  f"({', '.join(registry.names())}), a Keras layer or a "
                  f"serialized layer dict; got {type(spec).__name__}.")


def features_of(inputs):
  """The feature dict of a model input: ``{"ids": ...}`` for bare ids."""
  if isinstance(inputs, dict):
    return inputs
  return {"ids": tf.convert_to_tensor(inputs)}


@register_backbone("sequence")
class SequenceBackbone(Configurable, ExplicitMask, keras.layers.Layer):
  """Token embeddings (and word features) read by a registered encoder.

  The mask is computed from the ids (``ids != pad_id``), the input is packed
  to the right-padded layout once, and every later layer gets the mask
  explicitly.

  Args:
    vocab_size: embedding rows, including the pad id.
    encoder: a registered encoder name, a Keras layer, or a serialized dict.
    encoder_config: the named encoder's settings.
    word_features: registered word-feature names (or layers): each reads a
      feature of the tokens (a word's characters) and its output is
      concatenated to the token embedding.
    word_features_config: ``{name: settings}`` of named word features.
    pad_id: the id that marks padding.
    embedding_dim, token_dropout: the :class:`Config` settings.

  Call args:
    inputs: int ``[batch, time]`` ids, or a dict of features with ``"ids"``
      and what the word features read (``"chars"``: int ``[batch, time,
      chars]``), in the same layout.

  Returns:
    The dict described in ``maskmodels.models.backbone``.
  """

  @dataclasses.dataclass
  class Config(Settings):
    """The backbone's own settings."""
    embedding_dim: int = setting(64, "Token embedding width.", lower=1,
                                 upper=MAX_WIDTH, resume=True)
    token_dropout: float = setting(
        0.0, "Rate of zeroing whole token embeddings in training.",
        lower=0.0, upper=0.99, resume=True)

  # What maskmodels-tune searches of it by default.
  search_space = {"embedding_dim": {"choices": [32, 64, 128]}}

  def __init__(self, vocab_size, encoder="conv_gru", encoder_config=None,
               word_features=(), word_features_config=None, pad_id=0,
               **kwargs):
    super().__init__(**kwargs)
    if not isinstance(vocab_size, int) or vocab_size < 2:
      raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}.")
    self.vocab_size, self.pad_id = vocab_size, pad_id
    policy = self.dtype_policy
    self.embedding = keras.layers.Embedding(
        vocab_size, self.settings.embedding_dim, dtype=policy,
        name="embedding")
    # noise_shape [batch, time, 1]: a dropped token loses its whole vector.
    self.embedding_dropout = Dropout(
        self.settings.token_dropout, noise_shape=(None, None, 1),
        dtype=policy, name="token_dropout")
    configs = dict(word_features_config or {})
    self.word_features = [
        component(spec, configs.get(spec) if isinstance(spec, str) else None,
                  WORD_FEATURES, policy) for spec in word_features]
    self.encoder = component(encoder, encoder_config, ENCODERS, policy)

  def build(self, input_shape=None):
    if not self.built:
      self.call(self.dummy_features(1, 1), training=False)
      self.built = True

  def dummy_features(self, batch, time):
    """Features of ``[batch, time]`` real tokens, to build weights with."""
    features = {"ids": tf.ones([batch, time], tf.int32)}
    words = tf.RaggedTensor.from_tensor(tf.fill([batch, time], "a"))
    for feature in self.word_features:
      value = feature.featurize(words)
      features[feature.feature] = (value.to_tensor() if isinstance(
          value, tf.RaggedTensor) else value)
    return features

  def pad_rows(self):
    """``[(embedding variable, row)]``: the rows pad positions look up, whose
    gradient must be exactly zero (the checker in ``maskmodels.testing``)."""
    rows = [(self.embedding.embeddings, self.pad_id)]
    for feature in self.word_features:
      rows += feature.pad_rows() if hasattr(feature, "pad_rows") else []
    return rows

  def call(self, inputs, training=None):
    features = features_of(inputs)
    ids = features["ids"]
    mask = masking.mask_from_ids(ids, self.pad_id)
    order = masking.right_padding_permutation(mask)
    # Per-step features to the right-padded layout (``lengths`` and other
    # per-example features stay as they are).
    packed = {name: masking.reorder(value, order) if value.shape.rank >= 2
              else value for name, value in features.items()}
    ids, mask = packed["ids"], masking.reorder(mask, order)
    x = self.embedding_dropout(self.embedding(ids), training=training)
    parts = [x] + [feature(packed, mask=mask, training=training)
                   for feature in self.word_features]
    x = masking.apply_mask(tf.concat([tf.cast(p, x.dtype) for p in parts], -1)
                           if len(parts) > 1 else x, mask)
    steps, steps_mask = self.encoder(x, mask=mask, training=training)
    return {"steps": steps, "mask": steps_mask, "ids": ids,
            "token_mask": mask, "order": order}

  def get_config(self):
    return dict(
        super().get_config(), vocab_size=self.vocab_size, pad_id=self.pad_id,
        encoder=keras.saving.serialize_keras_object(self.encoder),
        word_features=[keras.saving.serialize_keras_object(f)
                       for f in self.word_features])
