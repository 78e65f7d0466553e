"""Readers of frame data: the UEA/UCR ``.ts`` format, JSON Lines frames and
NumPy ``.npz`` -> ``Examples`` of float32 ``[time, channels]`` arrays.

Bad input is a one-line error naming the file, the line (or series) and
what is allowed: a frame with another channel count, a missing value, NaN
or Inf (fill them first: carry the last value forward, or interpolate), an
empty series, a field that is not a number. Labels stay raw, as the file
gives them; the task encodes them (and refuses a label it never saw in
training).
"""

import glob
import math
import os
import zipfile

import numpy as np

from maskmodels.data import readers
from maskmodels.errors import InputError
from maskmodels.specs import DefaultData

_FILL = ("fill missing values before training (carry the last value "
         "forward, or interpolate), or leave the series out")
# The largest magnitude a frame value may have: float32's.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _checked_value(value, where):
  """``value`` (a finite Python number) if float32 holds it; an InputError
  naming ``where`` otherwise (1e39 is finite in Python, inf in float32)."""
  if abs(value) > FLOAT32_MAX:
    raise InputError(f"{where} is {value:g}, beyond float32's range; "
                     f"expected a finite number of magnitude at most "
                     f"{FLOAT32_MAX:.4g} (rescale the channel).")
  return value


def series_of(rows, where, channels=None):
  """A float32 ``[time, channels]`` array of ``rows`` (a list of frames,
  each a list of numbers, or of numbers for one channel), checked.

  Args:
    rows: the frames as read.
    where: the file and line (or series), for messages.
    channels: the channel count every frame must have (None: the first
      frame's).
  """
  if not isinstance(rows, (list, tuple)) or not rows:
    raise InputError(f"{where}: an empty series (no frame); expected at "
                     f"least one frame.")
  frames = [row if isinstance(row, (list, tuple)) else [row] for row in rows]
  width = channels or len(frames[0])
  for step, frame in enumerate(frames):
    if len(frame) != width:
      raise InputError(f"{where}: frame {step + 1} has {len(frame)} "
                       f"channel(s); expected {width}, as "
                       f"{'the first frame' if channels is None else 'the data'}.")
    for channel, value in enumerate(frame):
      if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: frame {step + 1}, channel {channel + 1}"
                         f" is {value!r}, not a number.")
      if not math.isfinite(value):
        raise InputError(f"{where}: frame {step + 1}, channel {channel + 1}"
                         f" is {value}; expected a finite number: {_FILL}.")
      _checked_value(value, f"{where}: frame {step + 1}, channel "
                     f"{channel + 1}")
  return np.asarray(frames, np.float32)


def _number(text, where):
  text = text.strip()
  if text in ("?", "", "NaN", "nan"):
    raise InputError(f"{where} is a missing value ({text!r}); {_FILL}.")
  try:
    value = float(text)
  except ValueError:
    raise InputError(f"{where} is {text[:40]!r}, not a number.") from None
  if not math.isfinite(value):
    raise InputError(f"{where} is {text}; expected a finite number: {_FILL}.")
  return _checked_value(value, where)


def read_ts(path):
  """Reads a ``.ts`` file (or ``.ts.gz``) as aeon and sktime write it.

  The header (``@problemName``, ``@univariate``, ``@dimensions``,
  ``@classLabel``, ``@targetLabel``, ...) comes before ``@data``; each data
  line is one series: its channels separated by ``:``, each channel's
  values by ``,``, then its label. Series may differ in length; the
  channels of one series may not.

  Returns:
    ``Examples`` of float32 ``[time, channels]`` arrays; labels raw (a
    class name, or a target's text).
  """
  header, series, labels, origins = {}, [], [], []
  decoder = readers._Decoder(path)  # pylint: disable=protected-access
  with readers.open_binary(path) as f:
    for number, raw in enumerate(f, 1):
      line = decoder(raw).strip()
      where = f"{path}:{number}"
      if not line or line.startswith("#"):
        continue
      if "data" not in header:
        if not line.startswith("@"):
          raise InputError(f"{where}: expected a header line (@...) before "
                           f"@data, got {line[:60]!r}.")
        key, _, value = line[1:].partition(" ")
        header[key.lower()] = value.strip()
        if key.lower() == "timestamps" and value.strip().lower() == "true":
          raise InputError(f"{where}: @timeStamps true is not read; "
                           f"expected series of values (@timeStamps false).")
        continue
      labelled = any(header.get(k, "false").split(" ")[0].lower() == "true"
                     for k in ("classlabel", "targetlabel"))
      fields = line.split(":")
      if labelled:
        fields, label = fields[:-1], fields[-1].strip()
      else:
        label = None
      channels = (1 if header.get("univariate", "").lower() == "true" else
                  int(header["dimensions"]) if "dimensions" in header else
                  len(fields))
      if not any(field.strip() for field in fields):
        raise InputError(f"{where}: an empty series (no value); expected "
                         f"at least one frame.")
      if len(fields) != channels:
        raise InputError(f"{where}: {len(fields)} channel(s); the header "
                         f"says {channels}.")
      values = [[_number(v, f"{where}, channel {c + 1}, value {t + 1}")
                 for t, v in enumerate(field.split(","))]
                for c, field in enumerate(fields)]
      if any(len(v) != len(values[0]) for v in values):
        raise InputError(f"{where}: channels of {sorted({len(v) for v in values})} "
                         f"values; expected one length for every channel "
                         f"of a series.")
      series.append(np.asarray(values, np.float32).T)
      labels.append(label)
      origins.append(f"line {number}")
  if "data" not in header:
    raise InputError(f"{path}: no @data line; expected the .ts format's "
                     f"header, then @data and one series a line.")
  classes = header.get("classlabel", "").split()
  if classes[:1] == ["true"]:
    known = set(classes[1:])
    for index, label in enumerate(labels):
      if known and label not in known:
        raise InputError(f"{path}, {origins[index]}: label {label!r}, "
                         f"which @classLabel does not list "
                         f"({sorted(known)}).")
  return readers.finish(series, labels, path, decoder, origins)


def ts_file(path, split):
  """``path`` itself, or in a folder of the archive's layout the split's
  file: ``<Name>_<SPLIT>.ts`` (``<Name>`` the folder's name), else the one
  ``*_<SPLIT>.ts`` there."""
  if not os.path.isdir(path):
    return path
  name = os.path.basename(os.path.normpath(path))
  for suffix in (".ts", ".ts.gz"):
    exact = os.path.join(path, f"{name}_{split.upper()}{suffix}")
    if os.path.isfile(exact):
      return exact
  found = sorted(glob.glob(os.path.join(path, f"*_{split.upper()}.ts")) +
                 glob.glob(os.path.join(path, f"*_{split.upper()}.ts.gz")))
  if len(found) != 1:
    raise readers.UnknownSplit(
        f"expected {name}_{split.upper()}.ts (or one *_{split.upper()}.ts) "
        f"in {path}, found {[os.path.basename(f) for f in found] or 'none'}.")
  return found[0]


def read_npz(path):
  """Reads a NumPy ``.npz`` file: ``values`` float ``[n, time, channels]``
  (or ``[n, time]`` for one channel) with ``lengths`` int ``[n]`` (the real
  frames of each row; without it every frame is real), and ``labels``
  ``[n]`` (or ``[n, time]``, a label per frame).

  Loaded without pickles: object arrays are refused.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Data file not found: {path}")
  if not zipfile.is_zipfile(path):
    raise InputError(f"{path}: not a NumPy .npz archive (a zip of .npy "
                     f"arrays, as numpy.savez writes); expected values, "
                     f"lengths and labels.")
  try:
    with np.load(path, allow_pickle=False) as archive:
      arrays = {name: archive[name] for name in archive.files}
  except ValueError as error:
    raise InputError(f"{path}: not a NumPy .npz of numbers and strings "
                     f"({error}).") from None
  except (zipfile.BadZipFile, EOFError, OSError) as error:
    raise InputError(f"{path}: a damaged .npz archive ({error}); expected "
                     f"a whole file as numpy.savez writes it.") from None
  if "values" not in arrays:
    raise InputError(f"{path}: no array 'values'; expected values, lengths "
                     f"and labels (it holds {sorted(arrays)}).")
  values = arrays["values"]
  if values.ndim == 2:
    values = values[:, :, np.newaxis]
  if values.ndim != 3 or values.dtype.kind not in "fiu":
    raise InputError(f"{path}: values of shape {arrays['values'].shape} and "
                     f"type {values.dtype}; expected numbers [n, time, "
                     f"channels] or [n, time].")
  lengths = arrays.get("lengths", np.full(len(values), values.shape[1]))
  if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
    raise InputError(f"{path}: lengths of shape {lengths.shape} and type "
                     f"{lengths.dtype}; expected integers [n], the real "
                     f"frames of each series.")
  labels = arrays.get("labels", np.full(len(values), "", np.str_))
  if len(lengths) != len(values) or len(labels) != len(values):
    raise InputError(f"{path}: {len(values)} rows of values, {len(lengths)} "
                     f"lengths and {len(labels)} labels; expected one of "
                     f"each per series.")
  series, raw_labels = [], []
  for index, (row, length) in enumerate(zip(values, lengths)):
    where = f"{path}: series {index + 1}"
    if not 0 < int(length) <= values.shape[1]:
      raise InputError(f"{where} has length {int(length)}; expected 1 to "
                       f"{values.shape[1]} (the values' time axis).")
    frames = np.asarray(row[:int(length)], np.float64)
    bad = ~np.isfinite(frames) | (np.abs(frames) > FLOAT32_MAX)
    if bad.any():
      step, channel = np.argwhere(bad)[0]
      value = frames[step, channel]
      raise InputError(f"{where}, frame {step + 1}, channel {channel + 1} "
                       f"is {value:g}; expected a finite number of "
                       f"magnitude at most {FLOAT32_MAX:.4g}"
                       f"{': ' + _FILL if not np.isfinite(value) else ''}.")
    series.append(frames.astype(np.float32))
    label = labels[index]
    raw_labels.append(label[:int(length)].tolist() if np.ndim(label) else
                      label.item())
  return readers.finish(series, raw_labels, path, readers._Decoder(path),  # pylint: disable=protected-access
                        [f"series {i + 1}" for i in range(len(series))])


# The embedded frame data: JapaneseVowels (UCI, CC BY 4.0), whole.
EMBEDDED = DefaultData(
    "ts", {"train": "japanese_vowels_TRAIN.ts.gz",
           "test": "japanese_vowels_TEST.ts.gz"},
    "JapaneseVowels: 12 LPC cepstrum channels of 9 speakers' vowels")

readers.FORMATS.add("ts", readers.Reader(
    lambda path, split, text, label: read_ts(ts_file(path, split)),
    text_column="", label_column="", folders=True, embedded=EMBEDDED,
    columns=()))
readers.FORMATS.add("npz", readers.Reader(
    lambda path, split, text, label: read_npz(path), text_column="",
    label_column="", columns=()))
