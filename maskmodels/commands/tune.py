r"""Searches a run's settings on validation data (Optuna), then writes the
best as a flagfile.

    maskmodels-tune --tune_dir=tuning/mine --data_format=ts \
        --data_path=MyProblem --trials=20 --minutes=30
    maskmodels-train --flagfile=tuning/mine/best.flags --model_dir=runs/mine

Every training flag sets what all trials share; --space names what the
search varies (default: the input kind's, the task's and the components'
own space). Each trial is a training run under --tune_dir/trials (its own
model directory), scored by its best validation figure; the test split is
never read. Below 500 training examples a trial is 5-fold
cross-validation unless --folds says. A rerun with the same --tune_dir
resumes the search; two processes may share one.
"""

import json
import time

from maskmodels import cli


def settings():
  from maskmodels.commands.settings import TuneSettings  # pylint: disable=import-outside-toplevel
  return TuneSettings


def base_flags():
  """The training flags the command line set (every trial's), as
  ``--name=value``: the run's settings, its components' and where it
  runs."""
  # pylint: disable=import-outside-toplevel
  import dataclasses
  from absl import flags
  from maskmodels.training import config as config_lib
  names = set(config_lib.leaf_fields()) | set(
      config_lib.component_flag_owners()) | {
          f.name for f in dataclasses.fields(config_lib.RuntimeConfig)}
  return [flags.FLAGS[name].serialize() for name in sorted(names)
          if name in flags.FLAGS and flags.FLAGS[name].present]


def main(parsed, arguments):
  del arguments
  # pylint: disable=import-outside-toplevel
  from absl import flags
  from maskmodels import tuning
  from maskmodels.training import builders, runner
  from maskmodels.training.prepare import read_splits
  cli.absorb_onednn_notice()
  own, config = parsed.own, parsed.config
  task = builders.task_of(config)
  splits = read_splits(config.data, config.train.seed, task.default_data)
  kind = splits.train.kind
  task = task.with_label_names(task.fit_labels(
      splits.train.labels, splits.train.labelled_source()))
  dimensions = (tuning.read_space(own.space) if own.space else
                tuning.default_space(config.with_input_kind(kind), task,
                                     kind))
  tuning.check_names(dimensions)
  has_validation = bool(config.data.validation_path or
                        config.data.validation_split)
  folds = tuning.folds_for(own.folds, len(splits.train) + (
      0 if has_validation else len(splits.validation)), has_validation)
  metric, mode = runner.monitored(task, config.train)
  tuning.log_chosen(dimensions, folds)
  search = tuning.Search(own.tune_dir, base_flags(), dimensions, metric,
                         mode, folds, flags.FLAGS["import"].value, own.prune,
                         own.seed, own.heartbeat_seconds,
                         prune_after=own.prune_after)
  start = time.perf_counter()
  study = search.run(own.trials, own.minutes)
  print(search.table(study))
  record = search.finish(study, base_flags(),
                         time.perf_counter() - start)
  print(json.dumps({k: v for k, v in record.items() if k != "space"}))
  print(f"Best: trial {record['best_trial']}, validation {metric} "
        f"{record['best_value']:.4f}. Train it with maskmodels-train "
        f"--flagfile={own.tune_dir}/best.flags --model_dir=<new run>.")


COMMAND = cli.Command("tune", __doc__, settings, main, experiment=True)


def run():
  """The ``maskmodels-tune`` entry point."""
  cli.quiet_start()
  cli.run(COMMAND)
