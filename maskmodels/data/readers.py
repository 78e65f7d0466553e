"""Dataset readers: aclImdb folders, CSV/TSV, JSON Lines and CoNLL-U ->
``Examples``.

Readers load inputs into memory as Python strings (bytes that are not UTF-8
are replaced, counted, and reported once) and keep the labels raw, as the
file gives them: the task encodes them (class names, numbers, tags).
Tokenization happens later, in the graph. Every error names the path, line,
column or value at fault.
"""

import contextlib
import csv
import dataclasses
import gzip
import json
import os
import re
import sys
import zlib

import conllu
import numpy as np
from absl import logging

from maskmodels.errors import InputError
from maskmodels.registry import Registry


class Source(str):
  """The description of where examples came from (a ``str``), which also
  places each of them: :meth:`where` gives ``"reviews.jsonl, line 8"``
  for an example read from line 8. Label encoders receive one (see
  :func:`where`)."""

  def __new__(cls, text, origins=None):
    source = super().__new__(cls, text)
    source.origins = list(origins) if origins is not None else None
    return source

  def where(self, index):
    """Example ``index`` (0-based) as a message names it."""
    if self.origins is not None and index < len(self.origins):
      return f"{self}, {self.origins[index]}"
    return f"{self} (example {index + 1})"


def where(source, index):
  """Example ``index`` of ``source`` (a :class:`Source`, or a plain string
  for examples read without their places) as a message names it."""
  if isinstance(source, Source):
    return source.where(index)
  return f"{source} (example {index + 1})"


@dataclasses.dataclass
class Examples:
  """Inputs with their labels.

  Attributes:
    texts: the inputs, of one input kind (``maskmodels.data.kinds``):
      ``str`` texts, lists of ``str`` words, or float32 ``[time,
      channels]`` frame arrays.
    labels: one label per input, raw as read (a class name, a number, a
      list of tags), or as a task encoded them.
    source: where the examples came from, for messages.
    origins: where each example is in its source (``"line 8"``,
      ``"series 3"``, ``"file pos/1_1.txt"``), for messages; None if
      unknown.
  """
  texts: list
  labels: list
  source: str = ""
  origins: list = None

  def __len__(self):
    return len(self.texts)

  def where(self, index):
    """Example ``index`` (0-based) as a message names it: its file and
    line (``reviews.jsonl, line 8``), or its number."""
    return self.labelled_source().where(index)

  def labelled_source(self):
    """The :class:`Source` of these examples (what a label encoder is
    given, so its errors name each example's line)."""
    return Source(self.source, self.origins)

  @property
  def kind(self):
    """The registered input kind the inputs are of."""
    from maskmodels.data import kinds  # pylint: disable=import-outside-toplevel
    return kinds.kind_of(self.texts, self.source)

  @property
  def pretokenized(self):
    """Whether the inputs are lists of words."""
    return bool(self.texts) and self.kind.name == "words"

  def subset(self, indices, source=None):
    """The examples at ``indices``."""
    return Examples([self.texts[i] for i in indices],
                    [self.labels[i] for i in indices], source or self.source,
                    None if self.origins is None else
                    [self.origins[i] for i in indices])

  def with_labels(self, labels):
    """The same inputs with other (encoded) labels."""
    return Examples(self.texts, labels, self.source, self.origins)


@dataclasses.dataclass(frozen=True)
class Reader:
  """A data format: its read function and its default columns.

  ``read(path, split, text_column, label_column)`` returns ``Examples``;
  ``split`` is for folder layouts (aclImdb, a folder of CoNLL-U files),
  files ignore it.

  Attributes:
    read: the function.
    text_column, label_column: the columns it reads unless told.
    folders: a path may be a folder of splits.
    embedded: a ``DefaultData`` it reads when no path is given, or None.
    columns: which of ``("text", "label")`` a flag may name.
  """
  read: object
  text_column: str = "text"
  label_column: str = "label"
  folders: bool = False
  embedded: object = None
  columns: tuple = ("text", "label")


# Data formats by name (research code may add its own Reader).
FORMATS = Registry("data format")


class MissingColumn(InputError):
  """A file has no column (CSV/TSV header, JSONL key) of the given name.

  Attributes:
    column: the name looked for.
  """

  def __init__(self, message, column):
    super().__init__(message)
    self.column = column


class UnknownSplit(InputError):
  """A data folder (or the embedded data) has no split of that name."""


class _Decoder:
  """Decodes bytes to text, replacing and counting invalid UTF-8."""

  def __init__(self, source):
    self.source = source
    self.replaced = 0

  def __call__(self, raw):
    try:
      return raw.decode("utf-8")
    except UnicodeDecodeError:
      self.replaced += 1
      return raw.decode("utf-8", errors="replace")

  def report(self):
    if self.replaced:
      logging.warning(
          "%d text(s) in %s had bytes that are not UTF-8; they were replaced "
          "by U+FFFD.", self.replaced, self.source)


def finish(texts, raw_labels, source, decoder, origins=None):
  """``Examples`` of what a reader read (``origins``: each one's place in
  ``source``, such as ``"line 8"``); an InputError if none."""
  if not texts:
    raise InputError(f"No examples found in {source}.")
  decoder.report()
  return Examples(texts, raw_labels, source, origins)


# aclImdb's folder of unlabelled reviews, never a class.
UNLABELLED_FOLDER = "unsup"


def read_aclimdb(root, split):
  """Reads ``<root>/<split>/<class>/*.txt``; the label is the folder name.

  Args:
    root: dataset folder (e.g. ``aclImdb``).
    split: subfolder, e.g. ``"train"`` or ``"test"``.

  Every subfolder holding ``.txt`` files is a class (the task refuses one
  it does not know, never skips it); aclImdb's unlabelled ``unsup`` folder
  is the one folder left out.
  """
  folder = os.path.join(root, split)
  if not os.path.isdir(folder):
    if os.path.isdir(root):
      raise UnknownSplit(
          f"no folder {folder}; expected one of the split folders of "
          f"{root}: {sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)))} "
          f"(<root>/<split>/<class>/*.txt).")
    raise FileNotFoundError(f"Data folder not found: {folder} (expected "
                            f"<root>/<split>/<class>/*.txt).")
  found = sorted(
      name for name in os.listdir(folder)
      if name != UNLABELLED_FOLDER and os.path.isdir(os.path.join(
          folder, name)) and any(f.endswith(".txt") for f in os.listdir(
              os.path.join(folder, name))))
  decoder = _Decoder(folder)
  texts, raw_labels, origins = [], [], []
  for name in found:
    class_folder = os.path.join(folder, name)
    for file_name in sorted(os.listdir(class_folder)):
      if file_name.endswith(".txt"):
        with open(os.path.join(class_folder, file_name), "rb") as f:
          texts.append(decoder(f.read()))
        raw_labels.append(name)
        origins.append(f"file {name}/{file_name}")
  return finish(texts, raw_labels, folder, decoder, origins)


@contextlib.contextmanager
def open_binary(path):
  """A file (gzipped if its name ends in ``.gz``) opened for bytes, as a
  context manager: a file that is not gzip data, or a truncated one, is
  an InputError naming it, wherever in the file the reader finds out."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Data file not found: {path}")
  compressed = path.endswith(".gz")
  with gzip.open(path, "rb") if compressed else open(path, "rb") as f:
    try:
      yield f
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
      raise InputError(
          f"{path}: not whole gzip data ({error or type(error).__name__}); "
          f"expected a complete .gz file (or a file without the .gz "
          f"name).") from None


@contextlib.contextmanager
def _unlimited_csv_fields():
  """Lifts the csv module's 131,072-character field limit, then restores it:
  a text field may be as long as the file."""
  previous = csv.field_size_limit()
  csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
  try:
    yield
  finally:
    csv.field_size_limit(previous)


def read_delimited(path, text_column="text", label_column="label",
                   delimiter=","):
  """Reads a CSV (or, with ``delimiter="\\t"``, TSV) file with a header row.

  Fields of any length are read (a review of a million characters too).
  """
  decoder = _Decoder(path)
  with open_binary(path) as f, _unlimited_csv_fields():
    lines = (decoder(line) for line in f)
    reader = csv.reader(lines, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
      raise InputError(f"No examples found in {path}: the file is empty.")
    for column in (text_column, label_column or text_column):
      if column not in header:
        raise MissingColumn(f"column {column!r} not found in {path}; "
                            f"expected one of its columns {header}.",
                            column)
    text_at = header.index(text_column)
    label_at = header.index(label_column) if label_column else None
    texts, raw_labels, origins = [], [], []
    for row in reader:
      if not row:
        continue
      if len(row) != len(header):
        raise InputError(f"Ragged row in {path} at line {reader.line_num}: "
                         f"{len(row)} fields, the header has {len(header)}.")
      texts.append(row[text_at])
      raw_labels.append(None if label_at is None else row[label_at])
      origins.append(f"line {reader.line_num}")
  return finish(texts, raw_labels, path, decoder, origins)


FRAMES_KEY = "frames"


def read_jsonl(path, text_key="text", label_key="label"):
  """Reads JSON Lines: one object a line with an input and a label field.

  An input may be a string, a list of words (pre-tokenized input, then its
  label may be a list with one tag per word), or, under the key
  ``frames`` when the records have no ``text``, a list of frames (each a
  list of numbers, one per channel; its label may be one per frame).
  """
  from maskmodels.data import frame_readers  # pylint: disable=import-outside-toplevel,cyclic-import
  decoder = _Decoder(path)
  texts, raw_labels, origins, channels = [], [], [], None
  with open_binary(path) as f:
    for number, raw in enumerate(f, 1):
      line = decoder(raw).strip()
      if not line:
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as error:
        raise InputError(f"Invalid JSON in {path} at line {number}: {error}"
                         ) from None
      if not isinstance(record, dict):
        raise InputError(f"{path}:{number}: expected a JSON object, got "
                         f"{type(record).__name__}.")
      if not texts and text_key == "text" and text_key not in record and (
          FRAMES_KEY in record):
        text_key = FRAMES_KEY  # frames: the input kind follows the data
      for key in (text_key, label_key or text_key):
        if key not in record:
          raise MissingColumn(f"field {key!r} missing in {path} at line "
                              f"{number}; expected one of its fields "
                              f"{sorted(record)}.", key)
      text = record[text_key]
      if text_key == FRAMES_KEY:
        series = frame_readers.series_of(text, f"{path}:{number}", channels)
        channels = series.shape[1]
        texts.append(series)
      else:
        texts.append([str(w) for w in text] if isinstance(text, list) else
                     str(text))
      raw_labels.append(record[label_key] if label_key else None)
      origins.append(f"line {number}")
  return finish(texts, raw_labels, path, decoder, origins)


CONLLU_COLUMNS = {"upos": 3, "xpos": 4}


def conllu_file(path, split):
  """``path`` itself, or in a folder the one ``*<split>.conllu`` file
  (``en_ewt-ud-dev.conllu`` for ``dev``)."""
  return _split_file(path, lambda name: name.endswith(
      (f"{split}.conllu", f"{split}.conllu.gz")),
                     f"one *{split}.conllu file")


def _split_file(path, matches, wanted):
  """``path`` itself, or in a folder the one file whose name ``matches``;
  :class:`UnknownSplit` naming what was ``wanted`` otherwise."""
  if not os.path.isdir(path):
    return path
  found = sorted(name for name in os.listdir(path) if matches(name))
  if len(found) != 1:
    raise UnknownSplit(f"expected {wanted} in {path}, found "
                       f"{found or 'none'}.")
  return os.path.join(path, found[0])


def read_conllu(path, tag_column="upos"):
  """Reads a CoNLL-U file: one example per sentence, its words and tags.

  Words are the syntactic words (lines whose ID is an integer): a
  multiword token's range line (``1-2``) and empty nodes (``8.1``) are
  skipped, as UPOS tagging defines; comment lines (``#``) are skipped.

  Args:
    path: a ``.conllu`` file (or ``.conllu.gz``).
    tag_column: ``"upos"`` or ``"xpos"``.

  Returns:
    ``Examples`` of word lists, labels the lists of their tags.

  Raises:
    InputError: a malformed line, naming the file and line number.
  """
  if tag_column not in CONLLU_COLUMNS:
    raise InputError(f"CoNLL-U tag column {tag_column!r}: choose one of "
                     f"{', '.join(CONLLU_COLUMNS)} (--label_column).")
  at = CONLLU_COLUMNS[tag_column]
  decoder = _Decoder(path)
  sentences, tags, words, labels, origins = [], [], [], [], []
  start = [None]  # the line of the sentence's first word

  def end_sentence():
    if words:
      sentences.append(list(words))
      tags.append(list(labels))
      origins.append(f"line {start[0]}")
    words.clear()
    labels.clear()

  with open_binary(path) as f:
    for number, raw in enumerate(f, 1):
      line = decoder(raw).rstrip("\r\n")
      if not line.strip():
        end_sentence()
        continue
      if line.startswith("#"):
        continue
      fields = line.split("\t")
      try:
        if len(fields) != 10:
          raise conllu.exceptions.ParseException(
              f"{len(fields)} tab-separated fields, CoNLL-U has 10")
        token_id = conllu.parser.parse_id_value(fields[0])
      except conllu.exceptions.ParseException as error:
        raise InputError(f"{path}:{number}: malformed CoNLL-U line "
                         f"({str(error).rstrip('.')}): {line[:80]!r}"
                         ) from None
      if isinstance(token_id, int):
        if not words:
          start[0] = number
        words.append(fields[1])
        labels.append(fields[at])
  end_sentence()
  return finish(sentences, tags, path, decoder, origins)


def split_file(path, split):
  """``path`` itself, or in a folder the one file whose name ends with
  the split (``cmudict-0.7b.test``, ``sample_test.txt.gz``)."""
  return _split_file(path, lambda name: re.search(
      rf"[._-]{re.escape(split)}(\.txt)?(\.gz)?$", name),
                     f"one file of split {split!r}")


def read_cmudict(path):
  """Reads the CMU Pronouncing Dictionary's line format: ``WORD  PH PH
  ...`` (the word, then its phones; the word ends at the first space or
  tab; ``;;;`` starts a comment line).

  A word with several pronunciations (on lines of their own, the word
  repeated or written ``WORD(2)``) is one example whose label is the list
  of its pronunciations, in the order read.

  Returns:
    ``Examples`` of words (strings), labels lists of phone strings.

  Raises:
    InputError: a line without a word (it starts with a space) or without
      phones, naming the file and the line.
  """
  decoder = _Decoder(path)
  words, index = [], {}
  with open_binary(path) as f:
    for number, raw in enumerate(f, 1):
      line = decoder(raw).rstrip("\r\n")
      if not line.strip() or line.startswith(";;;"):
        continue
      expected = ("expected a word, then its phones ('WORD  PH PH ...', "
                  "the word first on the line)")
      if line[0].isspace():
        raise InputError(f"{path}:{number}: a line with no word (it starts "
                         f"with a space: {line[:80]!r}); {expected}.")
      parts = line.split(None, 1)
      phones = " ".join(parts[1].split()) if len(parts) > 1 else ""
      if not phones:
        raise InputError(f"{path}:{number}: no phones after the word "
                         f"({line[:80]!r}); {expected}.")
      word = re.sub(r"\(\d+\)$", "", parts[0])
      if word not in index:
        index[word] = len(words)
        words.append((word, [], number))
      words[index[word]][1].append(phones)
  return finish([w for w, _, _ in words], [p for _, p, _ in words], path,
                decoder, [f"line {n}" for _, _, n in words])


def read_examples(data_format, path, split="train", text_column="",
                  label_column="", default_data=None, labelled=True):
  """Reads ``path`` in ``data_format``, a name registered in ``FORMATS``.

  Args:
    data_format: ``"default"`` (the task's embedded data), ``"aclimdb"``,
      ``"csv"``, ``"tsv"``, ``"jsonl"``, ``"conllu"``, or a research
      reader's name.
    path: the aclImdb root folder or the data file.
    split: the aclImdb (or embedded data) split; files ignore it.
    text_column, label_column: CSV/TSV columns, JSONL keys or the CoNLL-U
      tag column ("": the format's own default).
    default_data: the task's ``DefaultData`` (for ``"default"``).
    labelled: False reads inputs whose labels may be missing (prediction):
      the reader gets ``label_column=None``, and a label it finds is kept.

  With no ``path``, a format that embeds data (``ts``) reads its own.
  """
  if data_format == "default":
    if default_data is None:
      raise InputError("This task has no embedded data; give --data_format "
                       "and --data_path.")
    return _read_embedded(default_data, split)
  reader = FORMATS.get(data_format)
  if not path and reader.embedded is not None:
    return _read_embedded(reader.embedded, split)
  return reader.read(path, split, text_column or reader.text_column,
                     (label_column or reader.label_column) if labelled
                     else None)


def _read_embedded(embedded, split):
  """The split of data shipped with the package."""
  reader = FORMATS.get(embedded.data_format)
  with embedded.path(split) as local:
    return reader.read(str(local), split, reader.text_column,
                       reader.label_column)


def default_columns(data_format):
  """``(text_column, label_column)`` a format reads unless told."""
  if data_format == "default":
    return "", ""
  reader = FORMATS.get(data_format)
  return reader.text_column, reader.label_column


FORMATS.add("aclimdb", Reader(lambda path, split, text, label: read_aclimdb(
    path, split), columns=()))
FORMATS.add("csv", Reader(lambda path, split, text, label: read_delimited(
    path, text, label, ",")))
FORMATS.add("tsv", Reader(lambda path, split, text, label: read_delimited(
    path, text, label, "\t")))
FORMATS.add("jsonl", Reader(lambda path, split, text, label: read_jsonl(
    path, text, label)))
FORMATS.add("conllu", Reader(lambda path, split, text, label: read_conllu(
    conllu_file(path, split), label), text_column="form",
                                 label_column="upos", folders=True,
                                 columns=("label",)))
FORMATS.add("cmudict", Reader(lambda path, split, text, label: read_cmudict(
    split_file(path, split)), text_column="word", label_column="phones",
                                 folders=True, columns=()))
FORMATS.add("default", Reader(None, "", "", folders=True, columns=()))


def reads_folders(data_format, path):
  """Whether ``path`` in ``data_format`` is a folder of named splits (the
  embedded data is one)."""
  if data_format in ("aclimdb", "default"):
    return True
  reader = FORMATS.get(data_format)
  if not path and reader.embedded is not None:
    return True
  return reader.folders and os.path.isdir(path)


def split_validation(examples, fraction, seed=0):
  """Carves a validation split from ``examples`` by ``fraction``, seeded.

  Returns:
    ``(train, validation)``, disjoint, together all of ``examples``.
  """
  if not 0.0 < fraction < 1.0:
    raise InputError(f"validation fraction must be in (0, 1), got "
                     f"{fraction!r}.")
  order = np.random.default_rng(seed).permutation(len(examples))
  count = int(round(len(examples) * fraction))
  if count == 0 or count == len(examples):
    raise InputError(f"validation fraction {fraction} of {len(examples)} "
                     f"examples leaves an empty split.")
  return (examples.subset(np.sort(order[count:]), examples.source + " [train]"),
          examples.subset(np.sort(order[:count]),
                          examples.source + " [validation]"))


def split_fold(examples, folds, fold, seed=0):
  """Fold ``fold`` of ``folds`` as the validation split of ``examples``,
  the others as training (k-fold cross-validation, seeded): the folds of
  one seed are disjoint and together all of ``examples``.

  Returns:
    ``(train, validation)``.
  """
  if not 2 <= folds <= len(examples):
    raise InputError(f"{folds} folds of {len(examples)} examples: expected "
                     f"2 to {len(examples)} folds.")
  if not 0 <= fold < folds:
    raise InputError(f"fold {fold} of {folds}: expected 0 to {folds - 1}.")
  order = np.random.default_rng(seed).permutation(len(examples))
  held = np.array_split(order, folds)[fold]
  kept = np.setdiff1d(order, held)
  return (examples.subset(np.sort(kept), examples.source + " [train]"),
          examples.subset(np.sort(held), examples.source +
                          f" [fold {fold + 1} of {folds}]"))
