"""Preparing a run: every read and every check, in one pure step.

:func:`prepare` reads the splits, finds their input kind once, fixes the
label vocabulary and encodes the labels through the task, learns (or, on
resume, reloads) what the run learns of its inputs, checks that every
label goes with its input (the label spec's check) and that the model
directory can be resumed with these settings and this data, and works out
the batching and the step counts. It returns one frozen
:class:`PreparedRun` and writes nothing: every refusal for a setting, the
data, a label, or a model directory of another run happens here, so a
refused run leaves the directory as it was. The runner builds the model
and the trainer from it, and only then writes.
"""

import dataclasses
import hashlib

import numpy as np
from absl import logging

from maskmodels.data import pipeline, readers
from maskmodels.errors import InputError, SettingError
from maskmodels.training.builders import inference_length, training_length


@dataclasses.dataclass(frozen=True)
class Splits:
  """The examples of a run: train, validation and (maybe None) test."""
  train: readers.Examples
  validation: readers.Examples
  test: readers.Examples = None

  def present(self):
    """``[(name, examples)]`` of the splits the run has."""
    return [(name, split) for name, split in (
        ("train", self.train), ("validation", self.validation),
        ("test", self.test)) if split is not None]


@dataclasses.dataclass(frozen=True)
class PreparedRun:
  """Everything a run reads and decides before it writes.

  Attributes:
    config: the run's final ``ExperimentConfig``: its input kind, label
      names, backbone, data digests recorded, the batch size it uses.
    task: its task, with the label names.
    kind: the input kind of its data.
    assets: what it learned of its inputs (the directory's, on resume).
    splits: the encoded splits; train as the steps read it
      (``task.training_examples``).
    featurizer: raw inputs -> features (``kind.featurizer``).
    train_pipeline, eval_pipeline: how training and evaluation batch
      (``pipeline.PipelineConfig``).
    steps_per_epoch: global batches in one pass over the training split.
    total_steps: the run's last step (with early stopping, the most).
    budget: why the run trains ``total_steps`` steps, in words.
  """
  config: object
  task: object
  kind: object
  assets: object
  splits: Splits
  featurizer: object
  train_pipeline: pipeline.PipelineConfig
  eval_pipeline: pipeline.PipelineConfig
  steps_per_epoch: int
  total_steps: int
  budget: str = ""

  @property
  def eval_every(self):
    """Steps between validations: ``--eval_every_steps``, else an epoch."""
    return self.config.train.eval_every_steps or self.steps_per_epoch

  def asset_files(self):
    """``{file name: bytes}`` the run writes beside its config."""
    return self.kind.files(self.assets)

  def train_input(self, input_context=None, start_batch=0):
    """The training dataset (a function for
    ``distribute_datasets_from_function``, with the batches to skip)."""
    return pipeline.make_dataset(self.splits.train, self.featurizer,
                                 self.train_pipeline, True, input_context,
                                 start_batch)

  def eval_input(self, examples):
    """A dataset function of held-out ``examples`` (encoded)."""
    return lambda input_context=None: pipeline.make_dataset(
        examples, self.featurizer, self.eval_pipeline, False, input_context)


# ---- reading ------------------------------------------------------------------


def read_splits(data, seed=0, default_data=None):
  """Reads the run's train, validation and test examples, labels raw.

  Validation comes from ``data.validation_path`` (or a data folder's
  ``data.validation_split``) if given, else it is carved from the training
  data (a fraction, or one of ``data.validation_folds`` folds); the test
  split from ``data.test_path``, or for a data folder
  (aclImdb, CoNLL-U files, the embedded data) from ``data.test_split``.

  Args:
    data: the run's ``DataConfig``.
    seed: the validation split's seed.
    default_data: the task's ``DefaultData`` (for ``--data_format=default``).
  """
  def read(path, split, split_flag, prefix=""):
    """Reads one split; a column or split the data does not have is a
    SettingError naming the flag that chose it."""
    text_column = getattr(data, f"{prefix}text_column", None)
    label_column = getattr(data, f"{prefix}label_column", None)
    try:
      return readers.read_examples(
          data.data_format, path, split, *data.columns(text_column,
                                                       label_column),
          default_data=default_data)
    except readers.MissingColumn as missing:
      for flag in (f"{prefix}text_column", f"{prefix}label_column",
                   "text_column", "label_column"):
        if getattr(data, flag, None) == missing.column:
          raise SettingError(f"--{flag}={missing.column}: {missing}"
                             ) from None
      raise
    except readers.UnknownSplit as unknown:
      raise SettingError(f"--{split_flag}={split}: {unknown}") from None

  folder = readers.reads_folders(data.data_format, data.data_path)
  train = read(data.data_path, data.train_split, "train_split")
  test = None  # read before the split, so bad data anywhere fails first
  if data.test_path:
    test = read(data.test_path, "", "test_path", "test_")
  elif folder and data.test_split:
    test = read(data.data_path, data.test_split, "test_split")
  if data.validation_path:
    validation = read(data.validation_path, "", "validation_path",
                      "validation_")
  elif folder and data.validation_split:
    validation = read(data.data_path, data.validation_split,
                      "validation_split")
  elif data.validation_folds:
    train, validation = readers.split_fold(
        train, data.validation_folds, data.validation_fold, seed)
  else:
    train, validation = readers.split_validation(
        train, data.validation_fraction, seed)
  return Splits(train, validation, test)


def _canonical(value):
  """Bytes that tell one raw input or label from another."""
  if isinstance(value, str):
    return b"s" + value.encode("utf-8", "surrogatepass")
  if isinstance(value, np.ndarray):
    return (b"a" + str(value.shape).encode() + value.dtype.str.encode() +
            np.ascontiguousarray(value).tobytes())
  if isinstance(value, (list, tuple)):
    return b"l" + b"\x1f".join(_canonical(v) for v in value) + b"\x1e"
  if isinstance(value, dict):
    return b"d" + b"\x1f".join(_canonical(k) + b"=" + _canonical(v)
                               for k, v in sorted(value.items())) + b"\x1e"
  return b"o" + repr(value).encode()


def digest(examples):
  """A checksum of ``examples``' inputs and raw labels, in order: what
  tells a run's data from other data (a moved file reads the same)."""
  hasher = hashlib.sha256()
  for text, label in zip(examples.texts, examples.labels):
    hasher.update(_canonical(text))
    hasher.update(b"\x1d")
    hasher.update(_canonical(label))
    hasher.update(b"\x1c")
  return f"sha256:{hasher.hexdigest()}"


def _data_described(data):
  """The data a ``DataConfig`` reads, in words."""
  parts = [f"--data_format={data.data_format}"]
  for flag in ("data_path", "validation_path", "test_path"):
    if getattr(data, flag):
      parts.append(f"--{flag}={getattr(data, flag)}")
  if data.validation_folds and not data.validation_path:
    parts.append(f"validation fold {data.validation_fold} of "
                 f"{data.validation_folds} with --seed")
  elif not data.validation_path:
    parts.append(f"validation carved with --seed (fraction "
                 f"{data.validation_fraction:g})")
  return " ".join(parts)


# ---- checks -------------------------------------------------------------------


def check_settings(config):
  """Refuses settings that cannot go together (a SettingError)."""
  train = config.train
  if train.deterministic and train.jit_compile:
    raise SettingError("--deterministic and --jit_compile cannot be "
                       "combined: XLA has no deterministic gradient for "
                       "max-pooling. Choose one.")


def _check_kinds(splits, kind, task, task_name):
  """Every split holds inputs of ``kind``, which ``task`` reads."""
  if not task.reads(kind):
    raise InputError(f"{splits.train.source} holds {kind.describes}; task "
                     f"{task_name!r} reads {', '.join(task.inputs)}.")
  for _, split in splits.present():
    found = kind if split is splits.train else split.kind
    if found is not kind:
      raise InputError(f"{split.source} holds {found.describes}; the "
                       f"training data holds {kind.describes}.")


def _check_settings_resumable(model_dir, config, saved):
  """Refuses to resume a checkpoint trained with other settings."""
  if saved is None or not model_dir.latest_checkpoint():
    return
  mismatches = config.resume_mismatches(saved)
  if mismatches:
    raise InputError(
        f"Cannot resume from {model_dir.path}: its checkpoint was trained "
        f"with other settings ({'; '.join(mismatches)}). Use a new "
        f"--model_dir, or the same settings.")


def _check_data_resumable(model_dir, config, saved):
  """Refuses to resume a run on other data (a finished run scored on
  other data is ``maskmodels-evaluate``'s job)."""
  if saved is None or not model_dir.latest_checkpoint():
    return
  then, now = saved.data.digests, config.data.digests
  if not then:
    return
  changed = [name for name in ("train", "validation", "test")
             if then.get(name) != now.get(name)]
  if changed:
    raise InputError(
        f"Cannot resume {model_dir.path} on other data: its "
        f"{', '.join(changed)} split(s) differ from those it was trained "
        f"on ({_data_described(saved.data)}). Train on that data to resume "
        f"it; score the trained model on other data with "
        f"maskmodels-evaluate; or train in a new --model_dir.")


def _assets(model_dir, config, saved, kind, train):
  """The run's assets: the directory's (a resume), else learned from the
  training split. A directory that lost its ``config.json`` but kept its
  assets must hold the assets these settings learn."""
  if saved is not None and saved.data.inputs == config.data.inputs:
    return kind.load(config.data, model_dir.read_asset)
  assets = kind.fit(config.data, train, verbose=int(model_dir.chief))
  for name, content in kind.files(assets).items():
    if model_dir.has_asset(name) and model_dir.read_bytes(name) != content:
      raise InputError(
          f"Cannot resume {model_dir.path}: its {name} is not what these "
          f"settings learn from the training data, and it has no "
          f"config.json to check it against. Use a new --model_dir.")
  return assets


# ---- batching -------------------------------------------------------------------


def training_budget(train, kind, steps_per_epoch, examples):
  """``(steps, why)``: ``--train_steps``, else ``--epochs`` passes, else the
  input kind's budget for the training split's size."""
  if train.train_steps:
    return train.train_steps, f"--train_steps={train.train_steps}"
  if train.epochs:
    return (train.epochs * steps_per_epoch,
            f"--epochs={train.epochs} of {steps_per_epoch} steps")
  steps, why = kind.budget(steps_per_epoch, examples)
  return steps, f"{why} ({kind.describes}: their default)"


def _batching(config, task, kind, featurizer, splits, replicas):
  """``(config, train pipeline, eval pipeline, steps per epoch, total
  steps, why)``: length buckets from the training inputs.

  A batch never holds more rows than the training split (rounded up to
  the replicas): a larger ``--batch_size`` is cut to it, and the run says
  so, before any batch is built.
  """
  data, train = config.data, config.train
  examples = len(splits.train)
  most = -(-examples // replicas) * replicas
  if data.batch_size > most:
    logging.warning("--batch_size=%d is larger than the %d training "
                    "examples: batches of %d instead.", data.batch_size,
                    examples, most)
    config = config.replace(batch_size=most)
    data = config.data
  limit = training_length(config, kind)
  lengths = featurizer.example_lengths(splits.train, limit, data.truncation)
  kind.report_cuts([s for _, s in splits.present()], featurizer, limit,
                   data.truncation)
  limit = limit or max(int(lengths.max()), 1)
  labels = task.labels
  training = pipeline.PipelineConfig(
      max_len=limit, batch_size=data.batch_size,
      batch_tokens=data.batch_tokens or 0, max_batch=most,
      truncation=data.truncation, static_shapes=data.static_shapes,
      label_shape=(labels.static_shape([s for _, s in splits.present()])
                   if data.static_shapes else None),
      seed=train.seed, labels=labels, crop_fraction=data.crop_fraction,
      bucket_boundaries=(pipeline.length_boundaries(lengths,
                                                    data.num_buckets)
                         if data.num_buckets > 1 else None))
  steps_per_epoch = pipeline.batches_per_pass(lengths, training, replicas)
  held_out = [s for _, s in splits.present()][1:]
  eval_len = inference_length(config, task, kind) or max(
      [limit] + [int(featurizer.example_lengths(split).max(initial=0))
                 for split in held_out])
  evaluation = dataclasses.replace(training, max_len=eval_len,
                                   shuffle=False, crop_fraction=1.0)
  total, why = training_budget(train, kind, steps_per_epoch, examples)
  return config, training, evaluation, steps_per_epoch, total, why


# ---- the step -------------------------------------------------------------------


def prepare(config, task, model_dir, replicas=1, static_shapes=False):
  """Reads, checks and decides everything a run needs; writes nothing.

  Args:
    config: the run's ``ExperimentConfig`` (as the user gave it).
    task: its task (built from ``config``, without label names).
    model_dir: the run's ``ModelDirectory`` (read: a resume's settings,
      data digests and assets).
    replicas: replicas in sync (batch sizes are multiples of it).
    static_shapes: pad every batch to its bucket's edge (TPU).

  Returns:
    A :class:`PreparedRun`.

  Raises:
    SettingError, InputError, DamagedFile: a setting, the data, a label or
      the model directory refuses the run; nothing was written.
  """
  check_settings(config)
  task.validate(config)
  saved = model_dir.load_config() if model_dir.has_config() else None
  splits = read_splits(config.data, config.train.seed, task.default_data)
  kind = splits.train.kind  # found once, here
  _check_kinds(splits, kind, task, config.train.task)
  config = config.with_input_kind(kind)
  kind.validate(config)
  if config.data.crop_fraction < 1.0 and not kind.crops:
    raise SettingError(f"--crop_fraction={config.data.crop_fraction}: "
                       f"{kind.describes} are not cropped; expected 1.0 "
                       f"(series of frames crop).")
  names = config.data.label_names or (saved.data.label_names if saved
                                      else []) or task.fit_labels(
                                          splits.train.labels,
                                          splits.train.labelled_source())
  config = config.replace(
      label_names=names, static_shapes=static_shapes or
      config.data.static_shapes,
      digests={name: digest(split) for name, split in splits.present()})
  task = task.with_label_names(config.data.label_names)
  _check_settings_resumable(model_dir, config, saved)
  logging.info("Read %d training, %d validation and %s test examples of "
               "%s.", len(splits.train), len(splits.validation),
               len(splits.test) if splits.test is not None else "no",
               kind.describes)
  encoded = Splits(*[None if split is None else split.with_labels(
      task.encode_labels(split.labels, split.labelled_source()))
                     for split in (splits.train, splits.validation,
                                   splits.test)])
  assets = _assets(model_dir, config, saved, kind, encoded.train)
  featurizer = kind.featurizer(config, assets)
  for _, split in encoded.present():
    kind.check(assets, split)
    task.labels.check(split, lambda split=split: featurizer.example_lengths(
        split))
  # Bad data is refused as such first; then data that is not the run's.
  _check_data_resumable(model_dir, config, saved)
  encoded = dataclasses.replace(encoded, train=task.training_examples(
      encoded.train))
  config, training, evaluation, steps_per_epoch, total, why = _batching(
      config, task, kind, featurizer, encoded, replicas)
  logging.info("Training for at most %d steps: %s%s.", total, why,
               ", or until validation stops improving" if (
                   config.train.early_stopping) else "")
  return PreparedRun(config, task, kind, assets, encoded, featurizer,
                     training, evaluation, steps_per_epoch, total, why)

