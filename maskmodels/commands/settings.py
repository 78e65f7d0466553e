"""The commands' own settings: each flag once, with its default, what it
allows and its help (training's other settings are the ExperimentConfig's).

Imported when a command starts (after ``maskmodels.cli.quiet_start``):
the data formats are a registry of ``maskmodels.data``.
"""

import dataclasses

from maskmodels.data import readers
from maskmodels.settings import Settings, setting

INPUT_FORMATS = ("text", "conllu")


@dataclasses.dataclass
class TrainSettings(Settings):
  """``maskmodels-train``'s own flag (the run's settings are the
  ExperimentConfig's)."""
  model_dir: str = setting(
      "runs/default", "Model directory: config, vocabulary, checkpoints, "
      "summaries. A rerun with the same directory resumes.",
      required=True)


@dataclasses.dataclass
class EvaluateSettings(Settings):
  """``maskmodels-evaluate``: which model, on which data."""
  model_dir: str = setting("", "The trained model directory.",
                           required=True)
  data_format: str | None = setting(
      None, "Data format.", choices=readers.FORMATS,
      unset="the one the model was trained on")
  data_path: str | None = setting(
      None, "Data folder or file.",
      unset="the run's test file, else its data path")
  split: str = setting("test", "Split of a data folder (aclImdb, CoNLL-U, "
                       "the embedded data).")
  text_column: str | None = setting(
      None, "CSV/TSV column or JSONL key of the inputs.",
      unset="the run's, for its test file")
  label_column: str | None = setting(
      None, "CSV/TSV column or JSONL key of the labels.",
      unset="the run's, for its test file")


@dataclasses.dataclass
class PredictSettings(Settings):
  """``maskmodels-predict``: which model, and where the inputs are."""
  model_dir: str = setting("", "A trained model directory or an exported "
                           "SavedModel.", required=True)
  batch_size: int = setting(64, "Inputs per batch.", lower=1,
                            upper=1_000_000)
  input_format: str = setting(
      "text", "text: one input per argument or line; conllu: the words of "
      "each sentence of --input.", choices=INPUT_FORMATS)
  input: str | None = setting(None, "A file to read.",
                              unset="the arguments, else stdin")
  data_format: str | None = setting(
      None, "Read the inputs of --data_path in this data format (series "
      "from ts, npz or jsonl frames; texts from csv, tsv, jsonl...); labels "
      "are not needed.", choices=readers.FORMATS,
      unset="--input or the arguments")
  data_path: str | None = setting(None, "A data file (or folder, its test "
                                  "split) in --data_format.",
                                  unset="none")


@dataclasses.dataclass
class ExportSettings(Settings):
  """``maskmodels-export``: which model, and where its SavedModel goes."""
  model_dir: str = setting("", "The trained model directory.",
                           required=True)
  export_dir: str = setting("", "Where the SavedModel is written (a new "
                            "folder).", required=True)


@dataclasses.dataclass
class TuneSettings(Settings):
  """``maskmodels-tune``: where the search lives and how long it runs (the
  trials' shared settings are the training flags)."""
  tune_dir: str = setting("", "The tuning directory: the study (SQLite), "
                          "each trial's runs, best.flags, record.json. A "
                          "rerun resumes it.", required=True)
  trials: int = setting(20, "Finished trials (complete or pruned) the "
                        "study holds at the end.", lower=1, upper=100_000)
  minutes: float | None = setting(None, "Stop starting trials after this "
                                  "long.", above=0.0, unset="no limit")
  space: str = setting("", "The search space: a JSON or YAML file, or "
                       "inline JSON, of settings to {low, high, log} or "
                       "{choices} ('': the default space).")
  folds: int | None = setting(
      None, "Cross-validation folds of each trial (0: the run's validation "
      "split).", lower=0, upper=100,
      unset="5 below 500 training examples without a validation split, "
      "else 0")
  prune: bool = setting(True, "Stop trials whose validation figures fall "
                        "behind the median of earlier trials.")
  prune_after: int = setting(4, "Finished trials before any is pruned.",
                             lower=1)
  seed: int = setting(0, "The sampler's seed.")
  heartbeat_seconds: int = setting(
      30, "Seconds between a trial's heartbeats; a trial silent for four "
      "(its process died) is run again.", lower=1, upper=3600)


def check_model_dir(path, flag="model_dir", saved_model=False):
  """Raises a SettingError unless ``path`` is a trained model directory
  (or, with ``saved_model``, an exported SavedModel)."""
  # pylint: disable=import-outside-toplevel
  import os
  from maskmodels.errors import SettingError
  from maskmodels.training.model_dir import CONFIG_FILE
  if os.path.isfile(os.path.join(path, CONFIG_FILE)):
    return
  if saved_model and os.path.isfile(os.path.join(path, "saved_model.pb")):
    return
  expected = ("a trained model directory (one maskmodels-train wrote)" +
              (" or an exported SavedModel" if saved_model else ""))
  found = ("no such folder" if not os.path.exists(path) else
           "a file, not a folder" if not os.path.isdir(path) else
           f"a folder without {CONFIG_FILE}")
  raise SettingError(f"--{flag}={path}: {found}; expected {expected}.")


def check_path(path, flag, folder_ok=True):
  """Raises a SettingError unless ``path`` exists (a file, or a folder
  when ``folder_ok``)."""
  # pylint: disable=import-outside-toplevel
  import os
  from maskmodels.errors import SettingError
  if not path or os.path.isfile(path) or (folder_ok and os.path.isdir(path)):
    return
  expected = "an existing file" + (" or folder" if folder_ok else "")
  found = "no such file" if not os.path.exists(path) else "a folder"
  raise SettingError(f"--{flag}={path}: {found}; expected {expected}.")
