"""Token inputs: text (strings) and words (pre-tokenized word lists).

What is specific to them lives here: the vocabulary a run learns and keeps
(``vocab.txt``), the tokenizer over it, the featurizer that turns raw
inputs into token ids (``"ids"``, int32, 0 = pad), their ``"lengths"``
and the model's word features (``"chars"``: each token's character codes,
0 = pad), and the SavedModel signatures that take strings (and, for word
lists, words with their lengths). A text keeps 256 tokens in training
unless ``--max_len`` says. Tokenization runs in the graph
(tensorflow-text).
"""

import numpy as np
import tensorflow as tf

from maskmodels.data import kinds
from maskmodels.data import text as text_lib
from maskmodels.errors import SettingError
from maskmodels.registry import register_input_kind

VOCAB_FILE = "vocab.txt"


class TokenFeaturizer(kinds.Featurizer):
  """Strings or words -> token ids and word features.

  Args:
    tokenizer: a ``text.Tokenizer``.
    word_features: layers that read the tokens' words, each with a
      ``feature`` name and ``featurize(words)``: ragged string ``[batch,
      (time)]`` -> ragged ``[batch, (time), ...]`` (a model's
      ``word_features``).
    inputs: ``"text"`` (strings ``[batch]``, split by the tokenizer) or
      ``"words"`` (ragged strings ``[batch, (words)]``, one token each).
  """

  steps = "ids"

  def __init__(self, tokenizer, word_features=(), inputs="text"):
    super().__init__(name="featurizer")
    if inputs not in ("text", "words"):
      raise ValueError(f"inputs must be 'text' or 'words', got {inputs!r}.")
    self.tokenizer = tokenizer
    self.word_features = list(word_features)
    self.kind = inputs

  @property
  def inputs(self):
    """The kind of input read: ``"text"`` or ``"words"``."""
    return self.kind

  @property
  def ragged_inputs(self):
    return self.kind == "words"

  def inputs_dataset(self, examples):
    if self.kind == "words":
      inputs = tf.RaggedTensor.from_row_lengths(
          tf.constant([w for words in examples.texts for w in words] or [""],
                      tf.string)[:sum(map(len, examples.texts))],
          [len(words) for words in examples.texts])
    else:
      inputs = tf.constant(examples.texts, tf.string)
    return tf.data.Dataset.from_tensor_slices(inputs)

  def __call__(self, inputs, max_len=None, truncation="head"):
    """Ragged features of a batch of inputs.

    Args:
      inputs: strings ``[batch]``, or ragged words ``[batch, (words)]``.
      max_len: tokens kept per example (None: all).
      truncation: ``"head"``, ``"tail"`` or ``"both"``.

    Returns:
      ``{name: ragged [batch, (time), ...]}``.
    """
    if self.kind == "words":
      words = inputs
      if max_len is not None:
        words = text_lib.truncate_tokens(words, max_len, truncation)
      ids = self.tokenizer.encode_words(words)
    elif self.word_features:
      words = self.tokenizer.words(inputs, max_len, truncation)
      ids = self.tokenizer.encode_words(words)
    else:
      ids = self.tokenizer.encode(inputs, max_len, truncation)
    features = {"ids": ids,
                kinds.LENGTHS: tf.cast(ids.row_lengths(), tf.int32)}
    for layer in self.word_features:
      features[layer.feature] = layer.featurize(words)
    return features

  def padding_values(self):
    return {name: tf.constant(0, tf.int32) for name in
            ["ids", kinds.LENGTHS] + [layer.feature
                                      for layer in self.word_features]}

  def padded_shapes(self, element_spec, static):
    """Every axis to the batch's longest (or the bucket's edge); a word
    feature's inner axis keeps its fixed width (``feature_width``) when
    ``static``."""
    widths = {layer.feature: getattr(layer, "feature_width", None)
              for layer in self.word_features}
    shapes = {}
    for name, spec in element_spec.items():
      dims = [None] * spec.shape.rank
      if static and widths.get(name) and len(dims) == 2:
        dims[1] = widths[name]
      shapes[name] = dims
    return shapes

  def lengths(self, features):
    """int32 ``[batch]``: the tokens of each example (its non-pad ids:
    features padded by hand need no ``lengths``)."""
    return tf.reduce_sum(tf.cast(tf.not_equal(features["ids"], 0), tf.int32),
                         axis=1)

  def example_lengths(self, examples, max_len=None, truncation="head"):
    """Token counts after truncation: word lists count their words, texts
    are tokenized."""
    if self.kind == "words":
      return kinds.clipped([len(words) for words in examples.texts],
                           max_len)
    dataset = (tf.data.Dataset.from_tensor_slices(tf.constant(
        examples.texts, tf.string)).batch(256)
               .map(lambda t: self.tokenizer.encode(t, max_len, truncation),
                    num_parallel_calls=tf.data.AUTOTUNE).unbatch())
    return np.fromiter((len(ids) for ids in dataset.as_numpy_iterator()),
                       np.int64, count=len(examples))

  def signatures(self):
    texts = [tf.TensorSpec([None], tf.string, name="texts")]
    if self.kind == "text":
      return {"serving_default": (texts, lambda texts: texts)}
    return {
        "serving_default": (texts, words_of),
        "words": ([tf.TensorSpec([None, None], tf.string, name="words"),
                   tf.TensorSpec([None], tf.int32, name="lengths")],
                  lambda words, lengths: tf.RaggedTensor.from_tensor(
                      words, lengths=lengths))}


# The featurizer of token inputs (its earlier name).
Featurizer = TokenFeaturizer


def words_of(texts):
  """Raw strings ``[batch]`` -> their whitespace-separated words, ragged
  ``[batch, (words)]``: how raw text reaches a pre-tokenized task."""
  return tf.strings.split(tf.strings.strip(tf.convert_to_tensor(
      texts, tf.string)))


def word_features_of(model):
  """The word-feature layers of ``model``'s backbones, in order."""
  found = []
  for layer in model._flatten_layers(include_self=True):  # pylint: disable=protected-access
    for feature in getattr(layer, "word_features", ()) or ():
      if all(feature is not f for f in found):
        found.append(feature)
  return found


def word_feature_layers(settings):
  """The word-feature layers a ``ModelConfig`` names, built from their
  settings (their ``featurize`` reads only their settings, so the
  featurizer's are as good as the model's)."""
  from maskmodels import layers as _builtin  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  from maskmodels.registry import WORD_FEATURES  # pylint: disable=import-outside-toplevel
  return [WORD_FEATURES.get(name)(**settings.word_features_config.get(name,
                                                                      {}))
          for name in settings.word_features]


def token_lengths(examples, tokenizer, max_len, truncation="head"):
  """Token counts (after truncation) of text or word-list ``examples``:
  int array ``[n]`` (see ``Featurizer.example_lengths``)."""
  words = bool(examples.texts) and not isinstance(examples.texts[0], str)
  return TokenFeaturizer(tokenizer, inputs="words" if words else "text"
                         ).example_lengths(examples, max_len, truncation)


@register_input_kind("text")
class TextKind(kinds.InputKind):
  """Strings, tokenized in the graph over the run's vocabulary.

  The run learns the vocabulary of its training split (``--tokenizer``,
  ``--vocab_size``, ``--min_word_count``, ``--case_fold``); the model
  directory keeps it as ``vocab.txt``, and the assets are the tokenizer
  over it.
  """

  name = like = "text"
  backbone = "sequence"
  requires = ("tensorflow", "tensorflow_text")
  describes = "texts"
  default_max_len = 256

  def holds(self, inputs):
    return all(isinstance(value, str) for value in inputs)

  def tokenizer(self, data, vocab):
    """The run's tokenizer over ``vocab``, a list of tokens."""
    return text_lib.build_tokenizer(data.tokenizer, vocab,
                                    data.num_oov_buckets, data.case_fold)

  def fit(self, data, train, verbose=1):
    return self.tokenizer(data, text_lib.learn_vocabulary(
        train.texts, data.tokenizer, data.vocab_size, verbose=verbose,
        min_count=data.min_word_count, case_fold=data.case_fold))

  def files(self, assets):
    return {VOCAB_FILE: text_lib.vocabulary_bytes(assets.vocab)}

  def load(self, data, read):
    return self.tokenizer(data, text_lib.parse_vocabulary(read(VOCAB_FILE),
                                                          VOCAB_FILE))

  def model_inputs(self, assets):
    return {"vocab_size": assets.vocab_size}

  def featurizer(self, config, assets):
    return TokenFeaturizer(assets, word_feature_layers(config.model),
                           self.name)

  def arguments(self, inputs):
    return "serving_default", {"texts": tf.constant(list(inputs), tf.string)}

  def describe(self, example):
    return example

  def example_call(self, assets):
    return 'texts=tf.constant(["A superb film."])'


@register_input_kind("words")
class WordsKind(TextKind):
  """Lists of words, one token each, so a word's label stays aligned with
  it (tagging). Raw text reaches it split at whitespace."""

  name = like = "words"
  describes = "word lists"

  def holds(self, inputs):
    return all(isinstance(value, (list, tuple)) and all(
        isinstance(word, str) for word in value) for value in inputs)

  def accepts(self, inputs):
    """Word lists, or raw strings (split at whitespace)."""
    return self.holds(inputs) or all(isinstance(v, str) for v in inputs)

  def validate(self, config):
    if config.data.tokenizer != "word":
      raise SettingError(
          f"--tokenizer={config.data.tokenizer}: word lists need "
          f"--tokenizer=word (one id per word, so labels stay aligned); "
          f"expected word.")

  def arguments(self, inputs):
    if inputs and isinstance(inputs[0], str):
      return super().arguments(inputs)
    lengths = [len(words) for words in inputs]
    width = max(lengths + [1])
    dense = np.array([list(w) + [""] * (width - len(w)) for w in inputs],
                     dtype=object).reshape(len(inputs), width)
    return "words", {"words": tf.constant(dense, tf.string),
                     "lengths": tf.constant(lengths, tf.int32)}

  def describe(self, example):
    return example if isinstance(example, str) else " ".join(example)

  def example_call(self, assets):
    return 'texts=tf.constant(["I saw her duck ."])'
