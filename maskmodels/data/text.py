"""In-graph text processing with tensorflow-text: strings -> token ids.

Every op here is a TensorFlow op, so tokenization runs inside ``tf.data`` and
inside an exported SavedModel. Id 0 is reserved for padding: line 0 of every
vocabulary file is ``[PAD]``.
"""

import collections

from absl import logging

import tensorflow as tf

from maskmodels import graph as _graph  # noqa: F401  (AutoGraph leaves us be)
import tensorflow_text as tf_text
from tensorflow_text.python.ops import bert_tokenizer
from tensorflow_text.tools.wordpiece_vocab import (
    wordpiece_tokenizer_learner_lib as wordpiece_learner)

from maskmodels import atomic_files, masking, progress
from maskmodels.errors import DamagedFile, InputError
from maskmodels.registry import Registry

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
TRUNCATIONS = ("head", "tail", "both")
# Characters kept per token of max_len before tokenizing, so a huge text is
# cut before it is split; generous for natural language (words + spaces).
CHARS_PER_TOKEN = 16


def standardize(texts, case_fold=True):
  """Unicode NFKC, case folding, and ``<br />`` tags to spaces.

  Invalid UTF-8 is replaced by U+FFFD first, so any bytes are accepted.

  Args:
    texts: string tensor ``[batch]``.
    case_fold: fold case (False keeps "US" apart from "us").

  Returns:
    string tensor ``[batch]``.
  """
  texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8",
                                       errors="replace")
  texts = tf_text.normalize_utf8(texts, "NFKC")
  if case_fold:
    texts = tf_text.case_fold_utf8(texts)
  return tf.strings.regex_replace(texts, r"<br\s*/?>", " ")


def clip_characters(texts, max_chars, truncation="head"):
  """Keeps at most ``max_chars`` characters (head, tail, or half of each).

  Cuts huge texts before tokenization so they are never split whole.

  Args:
    texts: valid UTF-8 string tensor ``[batch]``.
    max_chars: character budget, an int >= 1.
    truncation: ``"head"``, ``"tail"`` or ``"both"``.
  """
  length = tf.strings.length(texts, unit="UTF8_CHAR")
  if truncation == "head":
    return tf.strings.substr(texts, 0, max_chars, unit="UTF8_CHAR")
  tail_chars = max_chars if truncation == "tail" else max_chars // 2
  tail = tf.strings.substr(texts, tf.maximum(length - tail_chars, 0),
                           tf.fill(tf.shape(length), tail_chars),
                           unit="UTF8_CHAR")
  if truncation == "tail":
    return tail
  head = tf.strings.substr(texts, 0, max_chars - tail_chars, unit="UTF8_CHAR")
  return tf.where(length <= max_chars, texts,
                  tf.strings.join([head, tail], separator=" "))


# Keeps at most max_len steps per row (head, tail or both): masking's rule.
truncate_tokens = masking.truncate_steps


def split_words(texts):
  """Standardized text -> words, with each punctuation mark its own token."""
  return tf_text.regex_split(texts, r"\s+|(\pP)", r"\pP")


def parse_vocabulary(raw, source):
  """The tokens of a vocabulary file's bytes (one token a line, ``[PAD]``
  first).

  Raises:
    DamagedFile: not UTF-8, not starting with ``[PAD]``, an empty or
      repeated line; the message names ``source`` and the line.
  """
  try:
    tokens = raw.decode("utf-8").split("\n")
  except UnicodeDecodeError as error:
    raise DamagedFile(f"Vocabulary file {source} is not UTF-8 text: {error}"
                      ) from None
  if tokens and tokens[-1] == "":
    tokens.pop()
  if not tokens or tokens[0] != PAD_TOKEN:
    raise DamagedFile(f"Vocabulary file {source} is corrupt: line 1 must be "
                      f"{PAD_TOKEN!r} (the reserved pad id 0), got "
                      f"{tokens[0] if tokens else 'an empty file'!r}.")
  seen = {}
  for line, token in enumerate(tokens, 1):
    if token in seen or not token or "\n" in token:
      raise DamagedFile(f"Vocabulary file {source} is corrupt: line {line} "
                        f"({token!r}) is empty or repeats line "
                        f"{seen.get(token, '?')}.")
    seen[token] = line
  return tokens


def read_vocabulary(path):
  """Reads a vocabulary file (one token a line, ``[PAD]`` first).

  Raises:
    FileNotFoundError: the file does not exist.
    DamagedFile: see :func:`parse_vocabulary`.
  """
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"Vocabulary file not found: {path}")
  with tf.io.gfile.GFile(path, "rb") as f:
    return parse_vocabulary(f.read(), path)


def vocabulary_bytes(tokens):
  """The file content of a vocabulary: one token a line, ``[PAD]`` first."""
  tokens = list(tokens)
  if not tokens or tokens[0] != PAD_TOKEN:
    raise ValueError(f"A vocabulary must start with {PAD_TOKEN!r}.")
  return "".join(token + "\n" for token in tokens).encode("utf-8")


def write_vocabulary(tokens, path):
  """Writes ``tokens`` one a line; the file reloads to the same ids."""
  atomic_files.write_bytes(path, vocabulary_bytes(tokens))


class Tokenizer(tf.Module):
  """Base class: strings ``[batch]`` -> ragged int32 ids ``[batch, (len)]``.

  Subclasses implement ``_tokenize`` on standardized text. ``encode`` adds
  standardization (:func:`standardize`, with ``case_fold``) and
  truncation; all of it runs in the TensorFlow graph.
  """

  kind = None

  def __init__(self, vocab, name=None, case_fold=True):
    super().__init__(name=name)
    self.vocab = list(vocab)
    if not self.vocab or self.vocab[0] != PAD_TOKEN:
      raise ValueError(f"A vocabulary must start with {PAD_TOKEN!r}.")
    self.case_fold = case_fold

  def standardize(self, texts):
    """:func:`standardize` with this tokenizer's case folding."""
    return standardize(tf.convert_to_tensor(texts, tf.string),
                       self.case_fold)

  @property
  def vocab_size(self):
    """Number of ids the tokenizer can emit (embedding rows needed)."""
    return len(self.vocab)

  def _tokenize(self, texts):
    raise NotImplementedError

  def encode(self, texts, max_len=None, truncation="head"):
    """Strings ``[batch]`` -> ragged int32 ids ``[batch, (<= max_len)]``.

    Args:
      texts: string tensor ``[batch]``; any bytes, empty texts allowed.
      max_len: keep at most this many tokens (None keeps all).
      truncation: ``"head"``, ``"tail"`` or ``"both"``.
    """
    if truncation not in TRUNCATIONS:
      raise InputError(f"truncation must be one of {TRUNCATIONS}, got "
                       f"{truncation!r}.")
    texts = self.standardize(texts)
    if max_len is not None:
      texts = clip_characters(texts, max_len * CHARS_PER_TOKEN, truncation)
    ids = tf.cast(self._tokenize(texts), tf.int32)
    if max_len is not None:
      ids = truncate_tokens(ids, max_len, truncation)
    return ids

  def words(self, texts, max_len=None, truncation="head"):
    """The words of ``texts`` that get one id each (word tokenizers)."""
    raise InputError(f"The {self.kind} tokenizer splits words; word "
                     f"features need --tokenizer=word (one id per word).")

  def encode_words(self, words, max_len=None, truncation="head"):
    """Words -> one id each: ragged string ``[batch, (words)]`` -> ragged
    int32 ``[batch, (<= max_len)]``, the ids aligned with the words kept.

    Each word is standardized as text is, then looked up whole; no split
    (a tokenizer that splits words refuses). Truncation keeps the words
    :func:`truncate_tokens` keeps.
    """
    raise InputError(f"The {self.kind} tokenizer splits words; pre-tokenized "
                     f"input needs --tokenizer=word (one id per word).")

  def save_vocabulary(self, path):
    """Writes the vocabulary file to ``path``."""
    write_vocabulary(self.vocab, path)


class WordTokenizer(Tokenizer):
  """Word-level tokenizer: vocabulary lookup plus out-of-vocabulary buckets.

  Ids: 0 pad, ``1..V-1`` vocabulary words, ``V..V+num_oov_buckets-1`` hashed
  unknown words. The table holds the vocabulary itself (an exported model
  carries it), so no file is read after the vocabulary is.
  """

  kind = "word"

  def __init__(self, vocab, num_oov_buckets=1, name=None, case_fold=True):
    super().__init__(vocab, name=name, case_fold=case_fold)
    if num_oov_buckets < 1:
      raise ValueError(f"num_oov_buckets must be >= 1, got {num_oov_buckets}.")
    self.num_oov_buckets = num_oov_buckets
    initializer = tf.lookup.KeyValueTensorInitializer(
        tf.constant(self.vocab, tf.string),
        tf.range(len(self.vocab), dtype=tf.int64))
    self.table = tf.lookup.StaticVocabularyTable(initializer, num_oov_buckets)

  @property
  def vocab_size(self):
    return len(self.vocab) + self.num_oov_buckets

  def _tokenize(self, texts):
    return tf.ragged.map_flat_values(self.table.lookup, split_words(texts))

  def words(self, texts, max_len=None, truncation="head"):
    """The words ``encode`` looks up: strings ``[batch]`` -> standardized
    words, ragged ``[batch, (<= max_len)]``."""
    texts = self.standardize(texts)
    if max_len is not None:
      texts = clip_characters(texts, max_len * CHARS_PER_TOKEN, truncation)
    words = split_words(texts)
    if max_len is not None:
      words = truncate_tokens(words, max_len, truncation)
    return words

  def encode_words(self, words, max_len=None, truncation="head"):
    if truncation not in TRUNCATIONS:
      raise InputError(f"truncation must be one of {TRUNCATIONS}, got "
                       f"{truncation!r}.")
    if max_len is not None:
      words = truncate_tokens(words, max_len, truncation)
    return tf.cast(tf.ragged.map_flat_values(
        lambda w: self.table.lookup(self.standardize(w)), words), tf.int32)


class WordPieceTokenizer(Tokenizer):
  """Subword tokenizer (tensorflow-text's FastWordpieceTokenizer)."""

  kind = "wordpiece"

  def __init__(self, vocab, name=None, case_fold=True):
    super().__init__(vocab, name=name, case_fold=case_fold)
    if UNK_TOKEN not in self.vocab:
      raise InputError(f"The WordPiece vocabulary has no {UNK_TOKEN!r} "
                       f"token.")
    self.wordpiece = tf_text.FastWordpieceTokenizer(
        self.vocab, token_out_type=tf.int64, unknown_token=UNK_TOKEN)

  def _tokenize(self, texts):
    # FastWordpieceTokenizer's pre-tokenizer splits words and punctuation.
    return self.wordpiece.tokenize(texts)


def split_characters(texts):
  """Standardized strings ``[batch]`` -> their characters other than
  whitespace, ragged ``[batch, (chars)]``."""
  chars = tf.strings.unicode_split(texts, "UTF-8")
  return tf.ragged.boolean_mask(chars, tf.logical_not(
      tf.strings.regex_full_match(chars, r"\s")))


class CharacterTokenizer(WordTokenizer):
  """One id per character (whitespace dropped): the vocabulary is the
  training split's characters, an unseen one goes to the unknown buckets.
  For sources that are spelled, not worded (a word's letters in
  grapheme-to-phoneme)."""

  kind = "char"

  def _tokenize(self, texts):
    return tf.ragged.map_flat_values(self.table.lookup,
                                     split_characters(texts))

  def words(self, texts, max_len=None, truncation="head"):
    return Tokenizer.words(self, texts, max_len, truncation)

  def encode_words(self, words, max_len=None, truncation="head"):
    return Tokenizer.encode_words(self, words, max_len, truncation)


TOKENIZERS = Registry("tokenizer")
TOKENIZERS.add(WordTokenizer.kind, WordTokenizer)
TOKENIZERS.add(WordPieceTokenizer.kind, WordPieceTokenizer)
TOKENIZERS.add(CharacterTokenizer.kind, CharacterTokenizer)


def _standardized(strings, case_fold, batch_size=1024):
  """Standardized batches of a list of strings."""
  return (tf.data.Dataset.from_tensor_slices(tf.constant(strings or [""],
                                                         tf.string))
          .take(len(strings)).batch(batch_size)
          .map(lambda batch: standardize(batch, case_fold),
               num_parallel_calls=tf.data.AUTOTUNE))


def _counted_batches(texts, case_fold, verbose=1):
  """Standardized text batches of ``texts``, with a progress bar."""
  return progress.counted(_standardized(texts, case_fold), len(texts),
                          "texts", size=lambda b: int(b.shape[0]),
                          verbose=verbose)


def learn_vocabulary(texts, kind, vocab_size, verbose=1, min_count=1,
                     case_fold=True):
  """Learns a vocabulary from training texts, with progress on the console.

  ``"word"`` keeps the most frequent words (ties broken alphabetically),
  ``"char"`` the most frequent characters;
  ``"wordpiece"`` counts words as tensorflow-text's
  ``bert_vocab_from_dataset`` does and runs its WordPiece learner.

  Args:
    texts: a list of strings (the training split), or of word lists
      (pre-tokenized: each standardized word counts whole).
    kind: ``"word"``, ``"char"`` or ``"wordpiece"``.
    vocab_size: size of the vocabulary including reserved tokens.
    verbose: 0 for no progress output.
    min_count: a word seen fewer times is left out (``"word"`` only): it
      is read as an unknown word, in training too, so the unknown-word
      buckets learn from the rare words of the training split.
    case_fold: fold case first, as the tokenizer will (:func:`standardize`).

  Returns:
    A list of tokens starting with ``[PAD]``.
  """
  TOKENIZERS.get(kind)
  if vocab_size < 3:
    raise InputError(f"vocab_size must be >= 3, got {vocab_size}.")
  if min_count < 1:
    raise InputError(f"min_count must be >= 1, got {min_count}.")
  logging.info("Counting the words of %d texts.", len(texts))
  pretokenized = bool(texts) and not isinstance(texts[0], str)
  if pretokenized and kind != "word":
    raise InputError(f"Pre-tokenized input needs --tokenizer=word (one id "
                     f"per word), got {kind!r}.")
  if kind == "wordpiece":
    reserved = [PAD_TOKEN, UNK_TOKEN]
    splitter = bert_tokenizer.BasicTokenizer(lower_case=False)
    counts = collections.Counter()
    for batch in _counted_batches(texts, case_fold, verbose=verbose):
      counts.update(word.decode("utf-8") for word in
                    splitter.tokenize(batch).flat_values.numpy().tolist())
    if not counts:
      return reserved
    with progress.heartbeat(f"Learning a WordPiece vocabulary of "
                            f"{vocab_size} from {len(counts)} words"):
      vocab = wordpiece_learner.learn(counts, vocab_size, reserved)
    return reserved + [t for t in vocab if t not in reserved]
  counts = collections.Counter()
  if kind == "char":
    if pretokenized:
      raise InputError("Pre-tokenized input needs --tokenizer=word (one id "
                       "per word), got 'char'.")
    for batch in _counted_batches(texts, case_fold, verbose=verbose):
      counts.update(split_characters(batch).flat_values.numpy().tolist())
  elif pretokenized:
    flat = [word for sentence in texts for word in sentence]
    for batch in progress.counted(_standardized(flat, case_fold), len(flat),
                                  "words", size=lambda b: int(b.shape[0]),
                                  verbose=verbose):
      counts.update(batch.numpy().tolist())
  else:
    for batch in _counted_batches(texts, case_fold, verbose=verbose):
      counts.update(split_words(batch).flat_values.numpy().tolist())
  ranked = sorted(((word, count) for word, count in counts.items()
                   if count >= min_count),
                  key=lambda item: (-item[1], item[0]))
  words = [w.decode("utf-8") for w, _ in ranked if w.decode("utf-8").strip()]
  words = [w for w in words if w not in (PAD_TOKEN, UNK_TOKEN)]
  return [PAD_TOKEN] + words[:vocab_size - 1]


def build_tokenizer(kind, vocab, num_oov_buckets=1, case_fold=True):
  """A tokenizer of ``kind`` over ``vocab``: a list of tokens (``[PAD]``
  first), or the path of a vocabulary file."""
  if isinstance(vocab, str):
    vocab = read_vocabulary(vocab)
  if issubclass(TOKENIZERS.get(kind), WordTokenizer):
    return TOKENIZERS.get(kind)(vocab, num_oov_buckets=num_oov_buckets,
                                case_fold=case_fold)
  return TOKENIZERS.get(kind)(vocab, case_fold=case_fold)
