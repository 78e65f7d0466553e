r"""Trains a masked sequence model and reports its held-out metric.

    maskmodels-train --strategy=mirrored                 # embedded data
    maskmodels-train --task=tagging                      # embedded tagged data
    maskmodels-train --flagfile=configs/imdb.flags --data_path=aclImdb
    maskmodels-train --import=my_lab --encoder=my_encoder --task=my_task

A rerun with the same --model_dir resumes from its last checkpoint. On
SIGTERM or Ctrl-C the run finishes its current loop of steps, saves a
checkpoint at that step and exits with status 75; a second signal stops it
at once. A multi-worker run that loses a worker exits with status 69.
"""

import json
import sys

from absl import logging

from maskmodels import cli


def settings():
  from maskmodels.commands.settings import TrainSettings  # pylint: disable=import-outside-toplevel
  return TrainSettings


def done_line(summary, model_dir, best_metric="accuracy"):
  """The one-line report printed at the end of a run."""
  parts = [f"{summary['steps']} steps in {summary['wall_seconds']:.0f} s"]
  if summary.get("stopped_early"):
    parts[0] += " (stopped early: validation stopped improving)"
  if summary["train_examples_per_second"]:
    parts.append(f"{summary['train_examples_per_second']:.0f} train "
                 f"examples/s")
  for name, value in summary.items():
    if name.startswith("best_validation_") and value is not None:
      parts.append(f"best validation {name[16:]} {value:.4f}")
  weights = summary.get("held_out_fit", {}).get("member_weights")
  if weights:
    parts.append("member weights " + ", ".join(
        f"{name} {weight:.3g}" for name, weight in weights.items()))
  if summary.get(f"test_{best_metric}") is not None:
    parts.append(f"held-out test {best_metric.replace('_', ' ')} "
                 f"{summary[f'test_{best_metric}']:.4f} on "
                 f"{summary['test_examples']} examples")
  return f"Done: {'; '.join(parts)}. Model in {model_dir}."


def main(parsed, arguments):
  del arguments
  # pylint: disable=import-outside-toplevel
  from maskmodels import training
  from maskmodels.errors import WorkerLost
  config, runtime = parsed.config, parsed.runtime
  model_dir = parsed.own.model_dir
  strategy = training.get_strategy(runtime.strategy, runtime.num_cpu_devices,
                                   runtime.tpu)
  cli.absorb_onednn_notice()
  try:
    summary = training.train_and_evaluate(config, model_dir, strategy)
  except training.TrainingInterrupted as stopped:
    logging.warning("%s", stopped)
    sys.exit(training.PREEMPTED_EXIT_CODE)
  except WorkerLost as lost:
    sys.stderr.write(f"error: {lost}\n")
    sys.exit(lost.exit_code)
  print(json.dumps(summary, indent=2))
  task = training.builders.task_of(config)
  print(done_line(summary, model_dir, task.best_metric))


def check(parsed):
  """The data paths name files or folders; a format other than the
  embedded data has a --data_path."""
  # pylint: disable=import-outside-toplevel
  from maskmodels.commands.settings import check_path
  from maskmodels.errors import SettingError
  data, runtime = parsed.config.data, parsed.runtime
  if runtime.tpu and runtime.strategy != "tpu":
    raise SettingError(f"--tpu={runtime.tpu}: used only with --strategy=tpu "
                       f"(this run's is {runtime.strategy}); expected no "
                       f"--tpu, or --strategy=tpu.")
  # pylint: disable=import-outside-toplevel
  from maskmodels.data import readers
  if data.data_format != "default" and not data.data_path and (
      readers.FORMATS.get(data.data_format).embedded is None):
    raise SettingError(f"--data_path is required with --data_format="
                       f"{data.data_format}: the training data's file or "
                       f"folder.")
  if data.data_format == "default":
    given = [f"--{flag}={getattr(data, flag)}" for flag in
             ("data_path", "validation_path", "test_path")
             if getattr(data, flag)]
    if given:  # else the run would train on the embedded data instead
      raise SettingError(
          f"{given[0]}: --data_format=default reads the embedded data, not "
          f"a path; expected --data_format naming the data's format (one of "
          f"{', '.join(n for n, _ in readers.FORMATS.items() if n != 'default')}"
          f").")
  for flag in ("data_path", "validation_path", "test_path"):
    check_path(getattr(data, flag), flag)


COMMAND = cli.Command("train", __doc__, settings, main, experiment=True,
                      check=check)


def run():
  """The ``maskmodels-train`` entry point."""
  cli.quiet_start()
  cli.run(COMMAND)
