"""Word features: what a token's word spells, beside its embedding.

Characters inside words are a second level of padding: ``[batch, words,
chars]`` holds padded words, and padded characters inside each word. Keras's
``TimeDistributed(Embedding(mask_zero=True))`` loses the inner mask (keras
#3651, #4786, tensorflow #31684); here both masks are explicit. The word
mask comes from the token ids, the character mask from the character ids
(0 = pad) within real words. The words are flattened to ``[batch * words,
chars]`` for the character encoder, whose masked convolution reads real
characters only (an all-padding row gives zeros), the real characters are
pooled, and the result is reshaped back and masked by the word mask.
"""

import dataclasses

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.layers.base import ExplicitMask
from maskmodels.layers.conv import MaskedConv1D
from maskmodels.registry import register_word_feature
from maskmodels.settings import (MAX_BUCKETS, MAX_WIDTH, MAX_WINDOW,
                                 Configurable, Settings, setting)


class WordFeature(Configurable, ExplicitMask, keras.layers.Layer):
  """Base of word features (``--word_features``): subclass it, override
  :meth:`featurize` and ``call``, register a name.

  The featurizer (``maskmodels.data.tokens``) calls :meth:`featurize` on
  the tokens' words, in the graph, and hands its output to the model as
  ``features[self.feature]``; ``call(features, mask=None, training=None)``
  takes the feature dict (in the backbone's right-padded layout) and the
  word mask bool ``[batch, words]``, and returns ``[batch, words, dim]``
  (zeros at pad words) that the backbone concatenates to the embeddings.
  """

  feature = None  # the name of the feature featurize gives
  feature_width = None  # its fixed inner width (static shapes), if any

  def featurize(self, words):
    """Ragged string words ``[batch, (words)]`` -> ragged feature."""
    raise NotImplementedError

  def pad_rows(self):
    """``[(embedding variable, row)]`` that pad positions look up."""
    return []


@register_word_feature("chars")
class CharacterFeatures(WordFeature):
  """A character CNN per word: character embeddings, a masked convolution
  over each word's real characters, and a max over them.

  Characters are Unicode code points (invalid UTF-8 becomes U+FFFD) hashed
  into ``char_buckets - 3`` ids after the pad id 0 and the word's begin
  and end marks (1 and 2; every ASCII character has its own id). The marks
  let the convolution see where a word starts and ends, so its windows
  read prefixes, suffixes and capitals at a word's edge. Words longer than
  ``max_chars`` keep their first ``max_chars`` characters (and both marks).

  Call args:
    features: a dict with ``"chars"``: int ``[batch, words, chars]``
      (0 = pad).
    mask: bool ``[batch, words]``, True = real word.

  Returns:
    float ``[batch, words, char_filters]``, zeros at pad words (and for a
    word with no character).
  """

  feature = "chars"
  BEGIN, END = 1, 2  # the marks around every word's characters

  @dataclasses.dataclass
  class Config(Settings):
    """The character encoder."""
    char_buckets: int = setting(512, "chars: character ids (hash buckets of "
                                "code points; pad and word marks "
                                "included).", lower=4, upper=MAX_BUCKETS,
                                resume=True)
    char_dim: int = setting(32, "chars: character embedding width.",
                            lower=1, upper=MAX_WIDTH, resume=True)
    char_filters: int = setting(64, "chars: filters of the character "
                                "convolution (the feature's width).",
                                lower=1, upper=MAX_WIDTH, resume=True)
    char_kernel_size: int = setting(3, "chars: its kernel size.", lower=1,
                                    upper=MAX_WINDOW, resume=True)
    max_chars: int = setting(24, "chars: characters kept per word (its "
                             "head).", lower=1, upper=MAX_WINDOW,
                             resume=True)

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    config = self.settings
    self.feature_width = config.max_chars + 2  # and the two marks
    self.embedding = keras.layers.Embedding(
        config.char_buckets, config.char_dim, dtype=self.dtype_policy,
        name="char_embedding")
    self.conv = MaskedConv1D(config.char_filters, config.char_kernel_size,
                             activation="relu", dtype=self.dtype_policy,
                             name="char_conv")

  def featurize(self, words):
    """Ragged words ``[batch, (words)]`` -> ragged int32 character ids
    ``[batch, (words), (chars)]``: begin mark, the first ``max_chars``
    characters, end mark."""
    config = self.settings
    flat = words.flat_values
    codes = tf.strings.unicode_decode(flat, "UTF-8", errors="replace")
    codes = codes[:, :config.max_chars]
    ids = tf.cast(3 + codes % (config.char_buckets - 3), tf.int32)
    marks = tf.ones([tf.shape(flat)[0], 1], tf.int32)
    ids = tf.concat([self.BEGIN * marks, ids, self.END * marks], axis=1)
    return words.with_flat_values(ids)

  def build(self, input_shape=None):
    self.embedding.build((None, None))
    self.conv.build((None, None, self.settings.char_dim))
    self.built = True

  def pad_rows(self):
    return [(self.embedding.embeddings, 0)]

  def call(self, features, mask=None, training=None):
    chars = features[self.feature]
    shape = tf.shape(chars)
    if mask is None:
      mask = tf.ones(shape[:2], tf.bool)
    char_mask = tf.not_equal(chars, 0) & mask[:, :, tf.newaxis]
    # Sizes named, never -1: on a batch with no word (or no character) the
    # tensor is empty and -1 would be ambiguous.
    rows = shape[0] * shape[1]
    flat = tf.reshape(chars, [rows, shape[2]])
    flat_mask = tf.reshape(char_mask, [rows, shape[2]])
    x = masking.apply_mask(self.embedding(flat), flat_mask)
    x, x_mask = self.conv(x, mask=flat_mask)
    pooled = masking.masked_max(x, x_mask)  # zeros for an empty word
    words = tf.reshape(pooled, [shape[0], shape[1],
                                self.settings.char_filters])
    return masking.apply_mask(words, mask)
