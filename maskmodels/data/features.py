"""Inputs -> the features a model reads, in the TensorFlow graph.

The one path from what a user gives (raw strings, or lists of words) to a
model's inputs, shared by the input pipeline, prediction and the exported
SavedModel. Features are a dict: ``"ids"`` (int32 token ids, 0 = pad), and
one entry per word feature of the model (``"chars"``: each token's
character codes, 0 = pad), ragged while they are built and padded dense for
the model (``[batch, time]``, ``[batch, time, chars]``).
"""

import tensorflow as tf

from maskmodels.data import text as text_lib
from maskmodels.errors import InputError

INPUT_KINDS = ("text", "words")


class Featurizer(tf.Module):
  """Strings or words -> model features.

  Args:
    tokenizer: a ``text.Tokenizer``.
    word_features: layers that read the tokens' words, each with a
      ``feature`` name and ``featurize(words)``: ragged string ``[batch,
      (time)]`` -> ragged ``[batch, (time), ...]`` (a model's
      ``word_features``).
    inputs: ``"text"`` (strings ``[batch]``, split by the tokenizer) or
      ``"words"`` (ragged strings ``[batch, (words)]``, one token each).
  """

  def __init__(self, tokenizer, word_features=(), inputs="text"):
    super().__init__(name="featurizer")
    if inputs not in INPUT_KINDS:
      raise ValueError(f"inputs must be one of {INPUT_KINDS}, got "
                       f"{inputs!r}.")
    self.tokenizer = tokenizer
    self.word_features = list(word_features)
    self.inputs = inputs

  def __call__(self, inputs, max_len=None, truncation="head"):
    """Ragged features of a batch of inputs.

    Args:
      inputs: strings ``[batch]``, or ragged words ``[batch, (words)]``.
      max_len: tokens kept per example (None: all).
      truncation: ``"head"``, ``"tail"`` or ``"both"``.

    Returns:
      ``{name: ragged [batch, (time), ...]}``.
    """
    if self.inputs == "words":
      words = inputs
      if max_len is not None:
        words = text_lib.truncate_tokens(words, max_len, truncation)
      ids = self.tokenizer.encode_words(words)
    elif self.word_features:
      words = self.tokenizer.words(inputs, max_len, truncation)
      ids = self.tokenizer.encode_words(words)
    else:
      return {"ids": self.tokenizer.encode(inputs, max_len, truncation)}
    features = {"ids": ids}
    for layer in self.word_features:
      features[layer.feature] = layer.featurize(words)
    return features

  def dense(self, inputs, max_len=None, truncation="head"):
    """:meth:`__call__` padded: ``{"ids": int32 [batch, time], ...}``."""
    return {name: value.to_tensor() for name, value in self(
        inputs, max_len, truncation).items()}


def words_of(texts):
  """Raw strings ``[batch]`` -> their whitespace-separated words, ragged
  ``[batch, (words)]``: how raw text reaches a pre-tokenized task."""
  return tf.strings.split(tf.strings.strip(tf.convert_to_tensor(
      texts, tf.string)))


def check_inputs(examples, kind):
  """Raises an :class:`InputError` if ``examples`` are not of ``kind``."""
  if not len(examples):
    return
  if examples.pretokenized != (kind == "words"):
    raise InputError(
        f"{examples.source} holds {'word lists' if examples.pretokenized else 'texts'}; "
        f"this task reads {'word lists (pre-tokenized)' if kind == 'words' else 'texts'}.")
