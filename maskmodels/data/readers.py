"""Dataset readers: aclImdb folders, CSV/TSV and JSON Lines -> ``Examples``.

Readers load texts into memory as Python strings (bytes that are not UTF-8
are replaced, counted, and reported once); tokenization happens later, in the
graph. Every error names the path, column or value at fault.
"""

import contextlib
import csv
import dataclasses
import gzip
import importlib.resources
import json
import os
import sys

import numpy as np
from absl import logging

from maskmodels.errors import InputError
from maskmodels.registry import Registry

# Data formats by name: each reader takes (path, split, text_column,
# label_column, class_names) and returns Examples.
FORMATS = Registry("data format")


@dataclasses.dataclass
class Examples:
  """Texts with integer labels.

  Attributes:
    texts: list of ``str``.
    labels: int32 array ``[n]``, indices into ``class_names``.
    class_names: class names in label order.
    source: where the examples came from, for messages.
  """
  texts: list
  labels: np.ndarray
  class_names: list
  source: str = ""

  def __len__(self):
    return len(self.texts)

  def subset(self, indices, source=None):
    """The examples at ``indices``, same classes."""
    return Examples([self.texts[i] for i in indices],
                    self.labels[np.asarray(indices, dtype=np.int64)],
                    self.class_names, source or self.source)


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


def _labels(raw_labels, class_names, source):
  """Maps raw label strings to indices, with sorted names unless given."""
  raw_labels = [str(label) for label in raw_labels]
  names = list(class_names) if class_names else sorted(set(raw_labels))
  index = {name: i for i, name in enumerate(names)}
  labels = np.empty(len(raw_labels), np.int32)
  for i, label in enumerate(raw_labels):
    if label not in index:
      raise InputError(f"Unknown label {label!r} in {source} (example {i}); "
                       f"expected one of {names}.")
    labels[i] = index[label]
  return labels, names


def _finish(texts, raw_labels, class_names, source, decoder):
  if not texts:
    raise InputError(f"No examples found in {source}.")
  decoder.report()
  labels, names = _labels(raw_labels, class_names, source)
  if len(names) < 2:
    raise InputError(f"{source} has a single class {names}; a classifier "
                     f"needs at least 2.")
  return Examples(texts, labels, names, source)


# aclImdb's folder of unlabelled reviews, never a class.
UNLABELLED_FOLDER = "unsup"


def read_aclimdb(root, split, class_names=None):
  """Reads ``<root>/<split>/<class>/*.txt``.

  Args:
    root: dataset folder (e.g. ``aclImdb``).
    split: subfolder, e.g. ``"train"`` or ``"test"``.
    class_names: classes in label order; default every subfolder holding
      ``.txt`` files, sorted by name. Either way a class folder outside
      the list is an error, never skipped silently; aclImdb's unlabelled
      ``unsup`` folder is the one exception.
  """
  folder = os.path.join(root, split)
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"Data folder not found: {folder} (expected "
                            f"<root>/<split>/<class>/*.txt).")
  found = sorted(
      name for name in os.listdir(folder)
      if name != UNLABELLED_FOLDER and os.path.isdir(os.path.join(
          folder, name)) and any(f.endswith(".txt") for f in os.listdir(
              os.path.join(folder, name))))
  if class_names is None:
    class_names = found
  for name in class_names:
    if not os.path.isdir(os.path.join(folder, name)):
      raise FileNotFoundError(
          f"Class folder not found: {os.path.join(folder, name)}")
  unknown = [name for name in found if name not in class_names]
  if unknown:
    raise InputError(f"Unknown label {unknown[0]!r} in {folder}: its class "
                     f"folders must be among {list(class_names)}.")
  decoder = _Decoder(folder)
  texts, raw_labels = [], []
  for name in class_names:
    class_folder = os.path.join(folder, name)
    for file_name in sorted(os.listdir(class_folder)):
      if file_name.endswith(".txt"):
        with open(os.path.join(class_folder, file_name), "rb") as f:
          texts.append(decoder(f.read()))
        raw_labels.append(name)
  return _finish(texts, raw_labels, class_names, folder, decoder)


def _open_binary(path):
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Data file not found: {path}")
  return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


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
                   delimiter=",", class_names=None):
  """Reads a CSV (or, with ``delimiter="\\t"``, TSV) file with a header row.

  Fields of any length are read (a review of a million characters too).
  """
  decoder = _Decoder(path)
  with _open_binary(path) as f, _unlimited_csv_fields():
    lines = (decoder(line) for line in f)
    reader = csv.reader(lines, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
      raise InputError(f"No examples found in {path}: the file is empty.")
    for column in (text_column, label_column):
      if column not in header:
        raise InputError(f"Column {column!r} not found in {path}; columns "
                         f"are {header}.")
    text_at, label_at = header.index(text_column), header.index(label_column)
    texts, raw_labels = [], []
    for row in reader:
      if not row:
        continue
      if len(row) != len(header):
        raise InputError(f"Ragged row in {path} at line {reader.line_num}: "
                         f"{len(row)} fields, the header has {len(header)}.")
      texts.append(row[text_at])
      raw_labels.append(row[label_at])
  return _finish(texts, raw_labels, class_names, path, decoder)


def read_jsonl(path, text_key="text", label_key="label", class_names=None):
  """Reads JSON Lines: one object a line with a text and a label field."""
  decoder = _Decoder(path)
  texts, raw_labels = [], []
  with _open_binary(path) as f:
    for number, raw in enumerate(f, 1):
      line = decoder(raw).strip()
      if not line:
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as error:
        raise InputError(f"Invalid JSON in {path} at line {number}: {error}"
                         ) from None
      for key in (text_key, label_key):
        if not isinstance(record, dict) or key not in record:
          raise InputError(f"Field {key!r} missing in {path} at line "
                           f"{number}.")
      texts.append(str(record[text_key]))
      raw_labels.append(record[label_key])
  return _finish(texts, raw_labels, class_names, path, decoder)


def read_examples(data_format, path, split="train", text_column="text",
                  label_column="label", class_names=None):
  """Reads ``path`` in ``data_format``, a name registered in ``FORMATS``.

  Args:
    data_format: ``"default"`` (the embedded data), ``"aclimdb"``,
      ``"csv"``, ``"tsv"``, ``"jsonl"``, or a registered research reader.
    path: the aclImdb root folder or the data file.
    split: the aclImdb (or embedded data) split; files ignore it.
    text_column, label_column: CSV/TSV columns or JSONL keys.
    class_names: classes in label order (default: sorted label names).
  """
  return FORMATS.get(data_format)(path, split, text_column, label_column,
                                  class_names)


FORMATS.add("aclimdb", lambda path, split, text, label, names: read_aclimdb(
    path, split, names))
FORMATS.add("csv", lambda path, split, text, label, names: read_delimited(
    path, text, label, ",", names))
FORMATS.add("tsv", lambda path, split, text, label, names: read_delimited(
    path, text, label, "\t", names))
FORMATS.add("jsonl", lambda path, split, text, label, names: read_jsonl(
    path, text, label, names))


DEFAULT_SPLITS = ("train", "test")


def read_default(split="train"):
  """The embedded default dataset (synthetic reviews), ``"train"``/``"test"``."""
  if split not in DEFAULT_SPLITS:
    raise InputError(f"split must be one of {DEFAULT_SPLITS}, got {split!r}.")
  resource = importlib.resources.files("maskmodels.data").joinpath(
      f"default_{split}.jsonl.gz")
  with importlib.resources.as_file(resource) as path:
    return read_jsonl(str(path), class_names=["neg", "pos"])


FORMATS.add("default", lambda path, split, text, label, names: read_default(
    split))


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
