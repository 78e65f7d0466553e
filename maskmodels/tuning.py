"""Searching a run's settings on validation data, with Optuna.

A search is a study of trials; each trial is a normal training run
(``maskmodels-train`` in a process of its own, in a model directory of its
own under the tuning directory, so it can be resumed and inspected) with
the settings the sampler suggests, scored by its best validation figure
(the task's best metric, or the loss with ``--monitor=loss``). The test
split is never read: a trial runs with no test split. Bad trials are
pruned from the validation figures the run writes (``history.json``).
With ``--validation_folds`` (automatic below 500 training examples), a
trial is k-fold cross-validation: one run per fold, scored by the mean.

The study lives in SQLite inside the tuning directory: an interrupted
search resumes (a trial whose process died is run again with the same
settings, resuming its runs), and processes on one machine can share it.
At the end the search writes ``best.flags`` (the base flags and the best
settings: ``maskmodels-train --flagfile=best.flags`` reads the test split
once) and ``record.json``.

The search space is a dict of settings (core ones and registered
components' settings, research code's included) to a range or choices::

    {"learning_rate": {"low": 3e-4, "high": 1e-2, "log": true},
     "conv_filters": {"choices": ["64", "64,64"]},
     "dropout": {"low": 0.0, "high": 0.4}}

The default space is the input kind's, the task's and the chosen
components' (each owner's ``search_space``) with the core settings'.
"""

import dataclasses
import hashlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
import warnings

from absl import logging

from maskmodels import atomic_files
from maskmodels.errors import InputError, SettingError
from maskmodels.settings import show

# Settings every run has, searched by default.
CORE_SPACE = {
    "learning_rate": {"low": 3e-4, "high": 1e-2, "log": True},
    "batch_size": {"choices": [16, 32, 64]},
}
# A trial's run: maskmodels-train in a process of its own.
TRAIN = (sys.executable, "-c", "from maskmodels.commands import train; "
         "train.run()")
# Below this many training examples (and with no validation file), a trial
# is k-fold cross-validation with AUTO_FOLDS folds.
SMALL = 500
AUTO_FOLDS = 5
STUDY = "maskmodels"


@dataclasses.dataclass(frozen=True)
class Dimension:
  """One setting's range: numbers from ``low`` to ``high`` (``log``: on a
  log scale; ``step`` for integers), or one of ``choices``."""
  name: str
  low: float = None
  high: float = None
  log: bool = False
  choices: tuple = None

  def suggest(self, trial):
    """The trial's value (a setting's value, as a flag takes it)."""
    if self.choices is not None:
      keys = [_key(c) for c in self.choices]
      return dict(zip(keys, self.choices))[trial.suggest_categorical(
          self.name, keys)]
    if isinstance(self.low, int) and isinstance(self.high, int):
      return trial.suggest_int(self.name, self.low, self.high, log=self.log)
    return trial.suggest_float(self.name, float(self.low), float(self.high),
                               log=self.log)


def _key(choice):
  """A choice as Optuna stores it (a list as its flag, ``64,64``)."""
  return show(choice) if isinstance(choice, (list, tuple)) else choice


def parse_space(space, source="the search space"):
  """``{name: spec}`` -> ``[Dimension]``; a bad spec is a SettingError
  naming it."""
  if not isinstance(space, dict) or not space:
    raise SettingError(f"{source}: expected a non-empty object of settings "
                       f"to ranges, got {space!r}.")
  dimensions = []
  for name, spec in space.items():
    if not isinstance(spec, dict):
      raise SettingError(f"{source}: {name}: expected {{low, high}} or "
                         f"{{choices}}, got {spec!r}.")
    unknown = sorted(set(spec) - {"low", "high", "log", "choices"})
    if unknown:
      raise SettingError(f"{source}: {name}: unknown key(s) {unknown}; "
                         f"expected low, high, log or choices.")
    if "choices" in spec:
      choices = spec["choices"]
      if not isinstance(choices, list) or not choices:
        raise SettingError(f"{source}: {name}: choices must be a non-empty "
                           f"list, got {choices!r}.")
      dimensions.append(Dimension(name, choices=tuple(
          tuple(c) if isinstance(c, list) else c for c in choices)))
      continue
    low, high = spec.get("low"), spec.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
               for v in (low, high)) or low >= high or (
                   spec.get("log") and low <= 0):
      raise SettingError(f"{source}: {name}: expected numbers low < high "
                         f"(low > 0 on a log scale), got {spec!r}.")
    dimensions.append(Dimension(name, low, high, bool(spec.get("log"))))
  return dimensions


def read_space(value):
  """A space given as inline JSON (``{...}``) or a JSON/YAML file's path."""
  if value.lstrip().startswith("{"):
    try:
      return parse_space(json.loads(value), "--space")
    except json.JSONDecodeError as error:
      raise SettingError(f"--space: not valid JSON ({error}).") from None
  if not os.path.isfile(value):
    raise SettingError(f"--space={value}: no such file; expected a JSON or "
                       f"YAML file of settings to ranges, or inline JSON.")
  with open(value, encoding="utf-8") as f:
    text = f.read()
  if value.endswith((".yaml", ".yml")):
    import yaml  # pylint: disable=import-outside-toplevel
    try:
      space = yaml.safe_load(text)
    except yaml.YAMLError as error:
      raise SettingError(f"--space={value}: not valid YAML ({error})."
                         ) from None
  else:
    try:
      space = json.loads(text)
    except json.JSONDecodeError as error:
      raise SettingError(f"--space={value}: not valid JSON ({error})."
                         ) from None
  return parse_space(space, value)


def default_space(config, task, kind):
  """The search space of a run: the core settings', the input kind's, the
  task's and the chosen components' (their ``search_space``)."""
  # pylint: disable=import-outside-toplevel
  from maskmodels.training.config import COMPONENTS
  space = dict(CORE_SPACE)
  space.update(getattr(kind, "search_space", {}) or {})
  space.update(getattr(task, "search_space", {}) or {})
  for group, choice, _, registry in COMPONENTS:
    chosen = getattr(getattr(config, group), choice)
    for name in chosen if isinstance(chosen, list) else [chosen]:
      if not name or name not in registry:
        continue
      owner = registry.get(name)
      own = getattr(owner, "search_space", None)
      space.update(own(keeps_steps=task.keeps_steps) if callable(own)
                   else own or {})
  return parse_space(space, "the default search space")


def check_names(dimensions):
  """Every dimension names a setting (core, or a registered component's:
  research code's too); a SettingError names one that does not."""
  # pylint: disable=import-outside-toplevel
  from maskmodels.training.config import component_flag_owners, leaf_fields
  known = set(leaf_fields()) | set(component_flag_owners())
  for dimension in dimensions:
    if dimension.name not in known:
      raise SettingError(f"the search space names {dimension.name!r}, which "
                         f"is no setting (a core one, or a registered "
                         f"component's: --import its module).")


def folds_for(folds, train_examples, has_validation):
  """The folds of a trial: ``folds`` if given (0: none), else
  ``AUTO_FOLDS`` for a training split under ``SMALL`` examples with no
  validation split of its own."""
  if folds is not None:
    return folds
  return AUTO_FOLDS if train_examples < SMALL and not has_validation else 0


def trial_key(params):
  """A short name of a set of settings (a retried trial finds its runs)."""
  text = json.dumps(params, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


class Search:
  """One search: runs trials until the study has ``trials`` finished ones
  or ``minutes`` have passed.

  Args:
    tune_dir: the tuning directory (the study, the trials' runs, the
      results).
    base_flags: the training flags every trial takes (``--name=value``).
    dimensions: the search space (``[Dimension]``).
    metric, mode: the validation figure that scores a trial (its
      ``summary.json``'s ``best_validation_<metric>``) and ``"max"`` or
      ``"min"``.
    folds: folds of each trial (0: one validation split).
    imports: research modules each trial imports.
    prune: prune trials whose validation figures fall behind the median of
      earlier trials' (after ``prune_after`` finished trials).
    seed: the sampler's seed.
    heartbeat: seconds between a trial's heartbeats (a trial silent for
      four is run again).
    verbose: one line per trial, and a table at the end.
    command: the command of a trial's run, before its flags (default
      ``maskmodels-train``).
  """

  def __init__(self, tune_dir, base_flags, dimensions, metric, mode, folds=0,
               imports=(), prune=True, seed=0, heartbeat=30, verbose=1,
               prune_after=4, command=TRAIN):
    self.tune_dir, self.base_flags = tune_dir, list(base_flags)
    self.dimensions, self.metric, self.mode = dimensions, metric, mode
    self.folds, self.imports, self.prune = folds, list(imports), prune
    self.seed, self.heartbeat, self.verbose = seed, heartbeat, verbose
    self.prune_after, self.command = prune_after, list(command)

  def study(self):
    """The study in ``tune_dir/study.db`` (made, or loaded to resume)."""
    import optuna  # pylint: disable=import-outside-toplevel
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The heartbeat and its retry are marked experimental; they are used
    # as documented.
    warnings.filterwarnings("ignore", category=optuna.exceptions.
                            ExperimentalWarning)
    os.makedirs(self.tune_dir, exist_ok=True)
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{os.path.abspath(self.tune_dir)}/study.db",
        engine_kwargs={"connect_args": {"timeout": 60}},
        heartbeat_interval=self.heartbeat, grace_period=4 * self.heartbeat,
        heartbeat_stale_trial_callback=(
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)))
    return optuna.create_study(
        storage=storage, study_name=STUDY, load_if_exists=True,
        direction="maximize" if self.mode == "max" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=self.seed),
        pruner=(optuna.pruners.MedianPruner(
            n_startup_trials=self.prune_after, n_warmup_steps=1)
                if self.prune else optuna.pruners.NopPruner()))

  def run(self, trials, minutes=None):
    """Runs the search; returns the study."""
    import optuna  # pylint: disable=import-outside-toplevel
    study = self.study()
    finished = (optuna.trial.TrialState.COMPLETE,
                optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(states=finished))
    if done < trials:
      study.optimize(
          lambda trial: self.objective(trial, trials), timeout=(
              minutes * 60 if minutes else None),
          callbacks=[optuna.study.MaxTrialsCallback(trials, states=finished)],
          catch=(InputError,), gc_after_trial=True)
    return study

  # ---- one trial ------------------------------------------------------------

  def objective(self, trial, trials):
    """A trial's score: the best validation figure of its run (the mean
    over folds)."""
    import optuna  # pylint: disable=import-outside-toplevel
    params = {d.name: d.suggest(trial) for d in self.dimensions}
    key = trial_key(params)
    start = time.perf_counter()
    scores = []
    for fold in range(self.folds or 1):
      model_dir = os.path.join(self.tune_dir, "trials", key,
                               f"fold_{fold}" if self.folds else "run")
      score = self.run_fold(trial, params, model_dir, fold)
      scores.append(score)
      if self.folds:
        trial.report(statistics.mean(scores), (fold + 1) * 10**6)
        if trial.should_prune() and fold + 1 < self.folds:
          self.say(trial, trials, params, statistics.mean(scores), start,
                   f"pruned after fold {fold + 1}")
          raise optuna.TrialPruned()
    value = statistics.mean(scores)
    self.say(trial, trials, params, value, start)
    return value

  def import_flags(self):
    """``--import`` of the research modules, if any (every trial's run and
    ``best.flags`` need them)."""
    return [f"--import={','.join(self.imports)}"] if self.imports else []

  def flags(self, params, model_dir, fold):
    """The training command line of a trial's run."""
    flags = self.import_flags() + self.base_flags + [f"--{k}={show(v)}" for k, v in params.items()]
    flags += [f"--model_dir={model_dir}", "--test_path=", "--test_split="]
    if self.folds:
      flags += [f"--validation_folds={self.folds}",
                f"--validation_fold={fold}"]
    return flags

  def run_fold(self, trial, params, model_dir, fold):
    """Trains one run of a trial in a process of its own, reporting its
    validations to the pruner; its best validation figure."""
    import optuna  # pylint: disable=import-outside-toplevel
    os.makedirs(model_dir, exist_ok=True)
    command = self.command + self.flags(params, model_dir, fold)
    reported = set()
    with open(os.path.join(model_dir, "train.log"), "ab") as log:
      process = subprocess.Popen(command, stdout=log, stderr=log,
                                 stdin=subprocess.DEVNULL)
      try:
        while process.poll() is None:
          time.sleep(0.5)
          if self.folds or not self.prune:
            continue
          for step, value in validations(model_dir, self.metric):
            if step not in reported:
              reported.add(step)
              trial.report(value, step)
          if reported and trial.should_prune():
            process.send_signal(signal.SIGTERM)  # it checkpoints, then ends
            process.wait()
            values = [v for _, v in validations(model_dir, self.metric)]
            self.say(trial, None, params, (max if self.mode == "max" else
                                           min)(values), None,
                     f"pruned at step {max(reported)}")
            raise optuna.TrialPruned()
      finally:
        if process.poll() is None:
          process.kill()
          process.wait()
    if process.returncode != 0:
      with open(os.path.join(model_dir, "train.log"), "rb") as f:
        tail = f.read()[-2000:].decode("utf-8", "replace")
      errors = [line for line in tail.splitlines()
                if line.startswith("error:")]
      raise InputError(f"A trial's run failed ({model_dir}, status "
                       f"{process.returncode}): "
                       f"{errors[-1] if errors else tail[-500:]}")
    with open(os.path.join(model_dir, "summary.json")) as f:
      return json.load(f)[f"best_validation_{self.metric}"]

  def say(self, trial, trials, params, value, start, what=""):
    """One line per trial."""
    if not self.verbose:
      return
    shown = " ".join(f"{k}={_short(v)}" for k, v in params.items())
    took = f" - {time.perf_counter() - start:.0f} s" if start else ""
    count = f"/{trials}" if trials else ""
    print(f"trial {trial.number}{count}: {shown}: validation {self.metric} "
          f"{value:.4f}{' (' + what + ')' if what else ''}{took}",
          flush=True)

  # ---- the results -------------------------------------------------------------

  def finish(self, study, base_flags, wall_seconds):
    """Writes ``best.flags`` and ``record.json``; returns the record."""
    import optuna  # pylint: disable=import-outside-toplevel
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
      raise InputError(f"No trial of {self.tune_dir} finished; see the "
                       f"trials' train.log files.")
    best = study.best_trial
    params = {d.name: dict(zip([_key(c) for c in d.choices], d.choices))[
        best.params[d.name]] if d.choices is not None else best.params[d.name]
              for d in self.dimensions if d.name in best.params}
    lines = self.import_flags()
    lines += [f for f in base_flags if not f.startswith("--model_dir")]
    lines += [f"--{k}={show(v)}" for k, v in params.items()]
    atomic_files.write_text(os.path.join(self.tune_dir, "best.flags"),
                            "# Chosen by maskmodels-tune on validation data "
                            f"(trial {best.number}, validation "
                            f"{self.metric} {best.value:.4f}).\n" +
                            "\n".join(lines) + "\n")
    states = [t.state.name.lower() for t in study.trials]
    record = {"best_trial": best.number, "best_value": best.value,
              "metric": f"validation {self.metric}", "mode": self.mode,
              "best_settings": {k: show(v) for k, v in params.items()},
              "trials": len(study.trials),
              "complete": states.count("complete"),
              "pruned": states.count("pruned"),
              "failed": states.count("fail"), "folds": self.folds,
              "wall_seconds": wall_seconds,
              "space": {d.name: dataclasses.asdict(d) for d in
                        self.dimensions}}
    atomic_files.write_json(os.path.join(self.tune_dir, "record.json"),
                            record, indent=2, default=list)
    return record

  def table(self, study):
    """The trials as a plain table (the summary the command prints)."""
    names = [d.name for d in self.dimensions]
    rows = [["trial", "state", f"validation {self.metric}"] + names]
    for t in study.trials:
      rows.append([str(t.number), t.state.name.lower(),
                   "" if t.value is None else f"{t.value:.4f}"] +
                  [_short(t.params.get(n, "")) for n in names])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths))
                     for r in rows)


def _short(value):
  """A setting's value as a progress line shows it (4 digits of a float)."""
  return f"{value:.4g}" if isinstance(value, float) else show(value)


def validations(model_dir, metric):
  """``[(step, value)]`` of ``metric`` in a run's ``history.json`` (what
  it has written so far)."""
  path = os.path.join(model_dir, "history.json")
  try:
    with open(path) as f:
      history = json.load(f)
  except (OSError, ValueError):
    return []
  return [(int(step), float(values[metric]))
          for step, values in history.get("validation", [])
          if metric in values and isinstance(values[metric], (int, float))
          and math.isfinite(values[metric])]


def log_chosen(dimensions, folds):
  """Says what the search searches."""
  logging.info("Searching %s%s.", ", ".join(d.name for d in dimensions),
               f" with {folds}-fold cross-validation" if folds else "")
