"""ExperimentConfig: every setting of a training run, once, nested by concern.

Model Garden's shape: ``data``, ``model``, ``train`` and ``checkpoint``
groups of :func:`~maskmodels.settings.setting` fields. Flags are generated
from it, ``config.json`` in the model directory is it, and fields marked
``resume=True`` must match when a run resumes. The settings of each chosen
component (backbone, encoder, word features, head, ensemble members, task)
travel as their own dicts (``encoder_config``, ``head_config``,
``members_config``...), filled from the component's ``Config`` class (and
its flags) or JSON; a component's defaults live in its ``Config`` only.
"""

import dataclasses
import json
import os

from maskmodels import __version__, atomic_files
# Imported for their side effect: the built-in components and tasks
# register their names.
from maskmodels import layers as _builtin_layers  # noqa: F401
from maskmodels import models as _builtin_models  # noqa: F401
from maskmodels import tasks as _builtin_tasks  # noqa: F401
from maskmodels.data import readers, text
from maskmodels.errors import DamagedFile, InputError, environment_fault
from maskmodels.registry import (BACKBONES, ENCODERS, HEADS, MEMBERS, MODELS,
                                 TASKS, WORD_FEATURES, missing_modules,
                                 research_modules)
from maskmodels.settings import (Settings, check_value, component_settings,
                                 setting)
from maskmodels.training import optimization, strategy

EVALUATE_CHECKPOINTS = ("best", "final")
MONITORS = ("metric", "loss")
# The model directories this version reads: written by the same minor
# version (0.4.x); older ones hold other variables and settings.
FORMAT_VERSION = ".".join(__version__.split(".")[:2])


@dataclasses.dataclass
class DataConfig(Settings):
  """Where the examples come from and how they become batches."""
  data_format: str = setting(
      "default", "Data format; 'default' is the embedded dataset.",
      choices=readers.FORMATS)
  data_path: str = setting("", "aclImdb root folder or training data file.")
  validation_path: str = setting(
      "", "CSV/TSV/JSONL validation file ('': carve --validation_fraction "
      "from the training data).")
  test_path: str = setting(
      "", "CSV/TSV/JSONL test file ('': none; aclImdb and the default data "
      "use --test_split).")
  train_split: str = setting(
      "train", "Training split of a data folder (aclImdb, a CoNLL-U folder, "
      "the embedded data).")
  validation_split: str = setting(
      "", "Validation split of a data folder ('': carve "
      "--validation_fraction from the training data).")
  test_split: str = setting("test", "Test split of a data folder ('' = "
                            "none).")
  text_column: str | None = setting(
      None, "CSV/TSV column or JSONL key of the inputs.",
      unset="the format's own: text")
  label_column: str | None = setting(
      None, "CSV/TSV column or JSONL key of the labels, or the CoNLL-U tag "
      "column, upos or xpos.", unset="the format's own: label, upos")
  validation_text_column: str | None = setting(
      None, "Text column of --validation_path.", unset="--text_column")
  validation_label_column: str | None = setting(
      None, "Label column of --validation_path.", unset="--label_column")
  test_text_column: str | None = setting(
      None, "Text column of --test_path.", unset="--text_column")
  test_label_column: str | None = setting(
      None, "Label column of --test_path.", unset="--label_column")
  validation_fraction: float = setting(
      0.1, "Fraction of the training data held out for validation when no "
      "--validation_path is given.", above=0.0, below=1.0)
  validation_folds: int | None = setting(
      None, "Cross-validation: cut the training data into this many folds "
      "and validate on --validation_fold (instead of --validation_"
      "fraction).", lower=2, upper=100, unset="no folds")
  validation_fold: int = setting(
      0, "The fold of --validation_folds that validates.", lower=0,
      upper=99)
  label_names: list[str] = setting(
      [], "The task's label vocabulary (classes or tags in index order), "
      "from the training split.", flag=False, resume=True)
  inputs: str | None = setting(
      None, "The input kind of the training data (text, words, frames).",
      flag=False, resume=True, unset="not read yet")
  digests: dict = setting(
      {}, "Checksums of the inputs and labels of each split the run read "
      "(a resume on other data is refused).", flag=False)
  tokenizer: str = setting("word", "Tokenizer.", choices=text.TOKENIZERS,
                           resume=True)
  vocab_size: int = setting(8000, "Vocabulary size.", lower=3,
                            upper=10_000_000, resume=True)
  case_fold: bool = setting(
      True, "Fold case before looking words up (--nocase_fold keeps 'US' "
      "apart from 'us'; word features of pre-tokenized input see each "
      "word as written either way).",
      resume=True)
  min_word_count: int = setting(
      1, "Word tokenizer: a word seen fewer times in the training split is "
      "an unknown word (in training too, so the unknown-word buckets learn "
      "from rare words).", lower=1, resume=True)
  num_oov_buckets: int = setting(1, "Hash buckets for unknown words.",
                                 lower=1, resume=True)
  max_len: int | None = setting(
      None, "Steps (tokens, frames) kept per example in training; a longer "
      "one is cut as --truncation says.", lower=1,
      unset="the input kind's: 256 tokens of a text; every frame of a "
      "series, none cut")
  eval_max_len: int | None = setting(
      None, "Steps kept per example in evaluation, prediction and export. "
      "A masked model reads any length, so it may see whole texts at test "
      "time.", lower=1, unset="--max_len")
  truncation: str = setting("head", "Which tokens to keep of a long text.",
                            choices=text.TRUNCATIONS)
  num_buckets: int = setting(8, "Length buckets (1 = no bucketing).", lower=1)
  static_shapes: bool = setting(False, "Pad every batch to its bucket's "
                                "edge (TPU).")
  crop_fraction: float = setting(
      1.0, "Frames: in training, each series is cut to a random window of "
      "at least this fraction of its frames, drawn anew for every batch "
      "(per-frame labels cut with it); evaluation reads whole series. 1.0: "
      "no cropping.", lower=0.01, upper=1.0)
  batch_size: int = setting(
      64, "Global batch size (examples); a batch larger than the training "
      "split is cut to it.", lower=1)
  batch_tokens: int | None = setting(
      None, "Size each length bucket's batch to about this many tokens "
      "instead of --batch_size examples.", lower=1,
      unset="--batch_size examples")

  def columns(self, text_column=None, label_column=None):
    """``(text, label)`` columns of a file: the given ones, else the run's,
    else the format's own."""
    text_default, label_default = readers.default_columns(self.data_format)
    return (text_column or self.text_column or text_default,
            label_column or self.label_column or label_default)


@dataclasses.dataclass
class ModelConfig(Settings):
  """The model: registered components and their settings.

  A backbone (embeddings, word features, an encoder) and a head join in the
  registered model; ``members`` adds ensemble members beside it. Each
  component's own settings are its ``*_config`` dict.
  """
  model: str = setting("sequence", "Registered model joining the backbone "
                       "and the head.", choices=MODELS, resume=True)
  backbone: str | None = setting(
      None, "Registered backbone.", choices=BACKBONES, resume=True,
      unset="the input kind's: sequence for text and words, frames for "
      "frames")
  backbone_config: dict = setting({}, "JSON settings of --backbone.",
                                  resume=True)
  encoder: str = setting("conv_gru", "Registered encoder name.",
                         choices=ENCODERS, resume=True)
  encoder_config: dict = setting(
      {}, "JSON settings of --encoder; for an encoder with settings flags "
      "(conv_gru's --conv_filters...), keys here override them.",
      resume=True)
  word_features: list[str] = setting(
      [], "Registered word features whose outputs join the token "
      "embeddings (chars: a character CNN).", choices=WORD_FEATURES,
      resume=True)
  word_features_config: dict = setting(
      {}, "JSON settings of the word features, by name.", resume=True)
  head: str | None = setting(
      None, "Registered head.", choices=HEADS, resume=True,
      unset="the task's own: pooled for a label per text, per_step for one "
      "per token")
  head_config: dict = setting({}, "JSON settings of --head.", resume=True)
  networks: int = setting(
      1, "Copies of the network (backbone and head, each initialized on "
      "its own) trained side by side, each on its own loss, in one "
      "ensemble: the output is their mean, one scale of it fitted on the "
      "validation split at the end of the run.", lower=1, upper=64,
      resume=True)
  members: list[str] = setting(
      [], "Registered ensemble members beside the network; each learns "
      "from its own loss, and their output weights are fitted on the "
      "validation split at the end of the run.", choices=MEMBERS,
      resume=True)
  members_config: dict = setting({}, "JSON settings of the members, by "
                                 "name.", resume=True)


@dataclasses.dataclass
class TrainConfig(Settings):
  """The objective and the optimization."""
  task: str = setting("classification", "Registered task: loss, metrics and "
                      "how a batch becomes a step.", choices=TASKS,
                      resume=True)
  task_config: dict = setting({}, "JSON settings of --task; keys override "
                              "its settings flags.", resume=True)
  epochs: int | None = setting(
      None, "Passes over the training data (unless --train_steps); with "
      "--early_stopping, the most.", lower=1,
      unset="the input kind's budget, which the run prints")
  train_steps: int | None = setting(
      None, "Total train steps; with --early_stopping, the most.", lower=1,
      unset="--epochs passes")
  early_stopping: bool = setting(
      False, "Stop when the --monitor'ed validation figure has not improved "
      "by --min_delta in --patience validations (Keras's EarlyStopping); "
      "the best weights serve.", resume=True)
  patience: int = setting(5, "Validations without improvement before "
                          "--early_stopping stops.", lower=1)
  min_delta: float = setting(0.0, "The least change of the monitored "
                             "figure that counts as an improvement.",
                             lower=0.0)
  monitor: str = setting(
      "metric", "The validation figure that picks the best checkpoint and "
      "stops early: the task's best metric, or the validation loss.",
      choices=MONITORS, resume=True)
  eval_every_steps: int | None = setting(
      None, "Steps between validations.", lower=1, unset="one epoch")
  learning_rate: float = setting(3e-3, "Peak learning rate.", above=0.0)
  lr_schedule: str = setting("cosine", "Decay after warm-up.",
                             choices=optimization.SCHEDULES)
  warmup_steps: int = setting(50, "Warm-up steps.", lower=0)
  optimizer: str = setting("adam", "Optimizer.",
                           choices=optimization.OPTIMIZERS, resume=True)
  weight_decay: float = setting(
      0.004, "Decoupled weight decay of --optimizer=adamw (the other "
      "optimizers have none).", lower=0.0)
  clip_norm: float = setting(1.0, "Global gradient-norm clip (0: off).",
                             lower=0.0)
  precision: str = setting("float32", "Compute precision.",
                           choices=optimization.PRECISIONS, resume=True)
  jit_compile: bool = setting(False, "Compile steps with XLA.")
  steps_per_loop: int = setting(20, "Train steps per tf.function call.",
                                lower=1)
  seed: int = setting(0, "Random seed.")
  deterministic: bool = setting(False, "Deterministic TensorFlow ops "
                                "(slower).")


@dataclasses.dataclass
class CheckpointConfig(Settings):
  """How often to checkpoint and which weights serve afterwards."""
  checkpoint_every_steps: int = setting(200, "Checkpoint interval.", lower=1)
  keep_checkpoints: int = setting(3, "Checkpoints kept.", lower=1)
  evaluate_checkpoint: str = setting(
      "best", "Weights for the test pass, evaluation, prediction and export: "
      "the best by the task's validation metric, or the final ones (a "
      "schedule that decays to zero usually ends best; a small validation "
      "split picks noisily).", choices=EVALUATE_CHECKPOINTS)


@dataclasses.dataclass
class RuntimeConfig(Settings):
  """Where a run executes; not saved, free to change on resume."""
  strategy: str = setting("default", "tf.distribute strategy.",
                          choices=strategy.STRATEGIES)
  num_cpu_devices: int = setting(
      2, "For --strategy=mirrored on a host without GPUs: logical CPU "
      "devices (replicas).", lower=1, upper=64)
  tpu: str = setting("", "TPU name or address for --strategy=tpu.")


GROUPS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
          "checkpoint": CheckpointConfig}
# Which setting dicts hold the settings of which chosen components (a name,
# or a list of names whose dict is keyed by name).
COMPONENTS = (("model", "backbone", "backbone_config", BACKBONES),
              ("model", "encoder", "encoder_config", ENCODERS),
              ("model", "word_features", "word_features_config",
               WORD_FEATURES),
              ("model", "head", "head_config", HEADS),
              ("model", "members", "members_config", MEMBERS),
              ("train", "task", "task_config", TASKS))


def leaf_fields():
  """``{name: (group, field)}`` of every setting; names are unique."""
  leaves = {}
  for group, cls in GROUPS.items():
    for field in dataclasses.fields(cls):
      assert field.name not in leaves, field.name
      leaves[field.name] = (group, field)
  return leaves


@dataclasses.dataclass
class ExperimentConfig:
  """All settings of a run, grouped: ``data``, ``model``, ``train``,
  ``checkpoint``. Build one with :meth:`create` or from flags."""
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
  checkpoint: CheckpointConfig = dataclasses.field(
      default_factory=CheckpointConfig)

  @classmethod
  def create(cls, **values):
    """A config from setting names, e.g. ``create(vocab_size=400,
    conv_filters=[16])``: core settings by their names, and settings of the
    chosen components (``conv_filters`` of ``conv_gru``) too."""
    return resolve(values, explicit=set(values))

  def replace(self, **values):
    """A copy with some settings (any group, by name) changed."""
    leaves = leaf_fields()
    groups = {name: dataclasses.asdict(getattr(self, name)) for name in GROUPS}
    for name, value in values.items():
      if name not in leaves:
        raise InputError(f"Unknown setting {name!r}.")
      groups[leaves[name][0]][name] = value
    return ExperimentConfig.from_dict(groups)

  def to_dict(self):
    return dataclasses.asdict(self)

  def with_input_kind(self, kind):
    """This config for inputs of ``kind`` (a registered input kind): its
    name recorded, and its backbone chosen unless ``--backbone`` named one
    (the settings given for the backbone checked against it now)."""
    config = self.replace(inputs=kind.name)
    if config.model.backbone is not None:
      return config
    settings = component_settings(BACKBONES, kind.backbone,
                                  config.model.backbone_config,
                                  "--backbone_config")
    return config.replace(backbone=kind.backbone, backbone_config=settings)

  @classmethod
  def from_dict(cls, values, source="config"):
    """From ``to_dict`` output; unknown groups or settings are errors."""
    unknown = sorted(set(values) - set(GROUPS))
    if unknown:
      raise InputError(f"{source}: unknown group(s) {', '.join(unknown)}; "
                       f"known: {', '.join(GROUPS)}.")
    return cls(**{name: group.from_dict(values.get(name, {}),
                                        f"{source} [{name}]")
                  for name, group in GROUPS.items()})

  def modules(self):
    """The modules outside maskmodels that registered a component, task,
    input kind or data format this config names: what a command that
    reads the run back must ``--import``."""
    names = []

    def collect(value):
      if isinstance(value, str):
        names.append(value)
      elif isinstance(value, dict):
        for item in value.values():
          collect(item)
      elif isinstance(value, (list, tuple)):
        for item in value:
          collect(item)

    collect(self.to_dict())
    return research_modules(names)

  def save(self, path, assets=None):
    """Writes the config as JSON (atomically), with the format version,
    ``assets``, the checksums of the files beside it (``{name:
    "sha256:..."}``), and the research modules it names (:meth:`modules`)."""
    values = dict(self.to_dict(), version=FORMAT_VERSION)
    if assets:
      values["assets"] = dict(assets)
    modules = self.modules()
    if modules:
      values["modules"] = modules
    atomic_files.write_json(path, values, indent=2, sort_keys=True)

  @classmethod
  def load(cls, path):
    """Reads a saved config; a clear error if missing or damaged."""
    return cls.read(path)[0]

  @classmethod
  def read(cls, path):
    """``(config, assets)`` of a saved config: ``assets`` maps the files
    saved beside it to their checksums.

    Raises:
      FileNotFoundError: no file at ``path``.
      DamagedFile: not UTF-8, not JSON, not a config.
      InputError: written by another version of maskmodels.
      EnvironmentFault: the file cannot be read.
    """
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path} not found.")
    try:
      with open(path, "rb") as f:
        raw = f.read()
    except OSError as error:
      raise environment_fault(error, path, reading=True) or error
    try:
      values = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
      raise DamagedFile(f"{path} is not UTF-8 text ({error}); restore the "
                        f"file a run wrote, or retrain in a new "
                        f"--model_dir.") from None
    except json.JSONDecodeError as error:
      raise DamagedFile(f"{path} is corrupt: {error}; restore the file a "
                        f"run wrote, or retrain in a new --model_dir."
                        ) from None
    if not isinstance(values, dict):
      raise DamagedFile(f"{path} is corrupt: not a JSON object.")
    version = values.pop("version", None) if "data" in values else "0.1"
    if version != FORMAT_VERSION:
      raise InputError(f"{path} was written by maskmodels "
                       f"{version or '0.2'}; this is maskmodels "
                       f"{__version__}, whose model directories differ. "
                       f"Retrain in a new --model_dir.")
    assets = values.pop("assets", {})
    modules = values.pop("modules", [])
    try:
      return cls.from_dict(values, source=path), assets
    except InputError as error:
      missing = missing_modules(modules)
      if not missing:
        raise
      raise type(error)(
          f"{path} names what research code registers: {error} Its run "
          f"was trained with the module(s) {', '.join(modules)}; pass "
          f"--import={','.join(missing)}.") from None

  def resume_mismatches(self, saved):
    """``["name: <saved> in the model directory, <now> now", ...]`` for
    every ``resume=True`` setting that differs from ``saved``."""
    mismatches = []
    for group in GROUPS:
      mine, theirs = getattr(self, group), getattr(saved, group)
      for field in dataclasses.fields(mine):
        now, then = getattr(mine, field.name), getattr(theirs, field.name)
        if not field.metadata.get("resume") or now == then:
          continue
        if isinstance(now, dict) and isinstance(then, dict):
          mismatches += [
              f"{field.name}.{key}: {then.get(key)!r} in the model "
              f"directory, {now.get(key)!r} now"
              for key in sorted(set(now) | set(then))
              if now.get(key) != then.get(key)]
        else:
          mismatches.append(f"{field.name}: {then!r} in the model "
                            f"directory, {now!r} now")
    return mismatches


def component_flag_owners():
  """``{setting name: [(registry, component name), ...]}`` for the settings
  that registered components declare in their ``Config`` classes."""
  owners = {}
  for _, _, _, registry in COMPONENTS:
    for name, _ in registry.items():
      config_class = registry.config_class(name)
      for field in dataclasses.fields(config_class) if config_class else ():
        owners.setdefault(field.name, []).append((registry, name))
  return owners


def resolve(values, explicit):
  """An :class:`ExperimentConfig` from setting values by name.

  Args:
    values: ``{name: value}``: core settings, and settings of components
      (fields of a registered component's ``Config``).
    explicit: the names the user set; a component setting set for a
      component that is not chosen is an error, never silently dropped.
      The task's ``run_defaults`` (core settings) fill the ones the user
      did not set, and each chosen component's ``defaults_for`` the task
      (an encoder that keeps every step for a per-step task) its own.
  """
  leaves, owners = leaf_fields(), component_flag_owners()
  unknown = sorted(set(values) - set(leaves) - set(owners))
  if unknown:
    raise InputError(f"Unknown setting(s): {', '.join(unknown)}.")
  task_field = next(f for f in dataclasses.fields(TrainConfig)
                    if f.name == "task")
  task = TASKS.get(check_value(task_field, values.get("task",
                                                      TrainConfig().task)))
  stray = sorted(set(task.run_defaults) - set(leaves))
  if stray:
    raise ValueError(f"{task.__name__}.run_defaults names {', '.join(stray)}"
                     f", not core settings: a component's settings are its "
                     f"own to default (its defaults_for).")
  values = dict({name: value for name, value in task.run_defaults.items()
                 if name not in explicit}, **{
                     name: value for name, value in values.items()
                     if name in explicit or name not in task.run_defaults})
  groups = {name: {} for name in GROUPS}
  for name, value in values.items():
    if name in leaves:
      groups[leaves[name][0]][name] = value
  core = {name: cls.from_dict(groups[name], name)
          for name, cls in GROUPS.items()}
  if not core["model"].head:
    core["model"].head = TASKS.get(core["train"].task).default_head
  used = set()

  def settings_of(registry, name, given, source):
    flagged = {key: values[key] for key, owned in owners.items()
               if (registry, name) in owned and key in values}
    used.update(key for key in flagged if key in explicit)
    defaults_for = getattr(registry.get(name), "defaults_for", None)
    defaults = defaults_for(keeps_steps=task.keeps_steps) if (
        defaults_for) else {}
    return component_settings(registry, name,
                              {**defaults, **flagged, **given}, source)

  for group, choice, config_name, registry in COMPONENTS:
    chosen, given = (getattr(core[group], choice),
                     getattr(core[group], config_name))
    if isinstance(chosen, list):
      for name in chosen:
        registry.get(name)
      extra = sorted(set(given) - set(chosen))
      if extra:
        raise InputError(f"--{config_name} has settings of {', '.join(extra)}"
                         f", which --{choice} does not name.")
      resolved = {name: settings_of(registry, name, dict(given.get(name, {})),
                                    f"--{config_name} [{name}]")
                  for name in chosen}
    elif chosen is None:
      # Unset until the data names the input kind (with_input_kind): the
      # settings given for any registered one wait, checked then.
      resolved = dict(given)
      for key, owned in owners.items():
        if key in explicit and any(r is registry for r, _ in owned):
          resolved.setdefault(key, values[key])
          used.add(key)
    else:
      resolved = settings_of(registry, chosen, given, f"--{config_name}")
    setattr(core[group], config_name, resolved)
  stray = sorted((set(explicit) & set(owners)) - used - set(leaves))
  if stray:
    name = stray[0]
    registry, component = owners[name][0]
    config_name = next(c for _, _, c, r in COMPONENTS if r is registry)
    raise InputError(
        f"--{name} is a setting of {registry.kind} {component!r}, which this "
        f"run does not use; pass settings of the chosen {registry.kind} with "
        f"--{config_name}.")
  return ExperimentConfig(**core)
