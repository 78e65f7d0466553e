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

from absl import app, flags, logging

from maskmodels import cli

FLAGS = flags.FLAGS
WORKER_LOST_EXIT_CODE = 69  # EX_UNAVAILABLE: restart every worker


def define_flags():
  from maskmodels import flags as mm_flags  # pylint: disable=import-outside-toplevel
  flags.DEFINE_string("model_dir", "runs/default",
                      "Model directory: checkpoints, vocabulary, config and "
                      "summaries. A rerun with the same directory resumes.")
  mm_flags.define_runtime_flags()
  mm_flags.define_experiment_flags()


def done_line(summary, model_dir, best_metric="accuracy"):
  """The one-line report printed at the end of a run."""
  parts = [f"{summary['steps']} steps in {summary['wall_seconds']:.0f} s"]
  if summary["train_examples_per_second"]:
    parts.append(f"{summary['train_examples_per_second']:.0f} train "
                 f"examples/s")
  for name, value in summary.items():
    if name.startswith("best_validation_") and value is not None:
      parts.append(f"best validation {name[16:]} {value:.4f}")
  weights = summary.get("ensemble", {}).get("member_weights")
  if weights:
    parts.append("member weights " + ", ".join(
        f"{name} {weight:.3g}" for name, weight in weights.items()))
  if summary.get(f"test_{best_metric}") is not None:
    parts.append(f"held-out test {best_metric.replace('_', ' ')} "
                 f"{summary[f'test_{best_metric}']:.4f} on "
                 f"{summary['test_examples']} examples")
  return f"Done: {'; '.join(parts)}. Model in {model_dir}."


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # pylint: disable=import-outside-toplevel
  from maskmodels import flags as mm_flags
  from maskmodels import training
  from maskmodels.errors import WorkerLost
  config = mm_flags.experiment_config_from_flags()
  runtime = mm_flags.runtime_config_from_flags()
  strategy = training.get_strategy(runtime.strategy, runtime.num_cpu_devices,
                                   runtime.tpu)
  cli.absorb_onednn_notice()
  logging.info("Strategy %s with %d replica(s).", runtime.strategy,
               strategy.num_replicas_in_sync)
  try:
    summary = training.train_and_evaluate(config, FLAGS.model_dir, strategy)
  except training.TrainingInterrupted as stopped:
    logging.warning("%s", stopped)
    sys.exit(training.PREEMPTED_EXIT_CODE)
  except WorkerLost as lost:
    sys.stderr.write(f"error: {lost}\n")
    sys.exit(WORKER_LOST_EXIT_CODE)
  print(json.dumps(summary, indent=2))
  task = training.builders.task_of(config)
  print(done_line(summary, FLAGS.model_dir, task.best_metric))


def run():
  """The ``maskmodels-train`` entry point."""
  cli.quiet_start()
  cli.run(main, define_flags, __doc__)
