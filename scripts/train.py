r"""Trains a masked sequence classifier and reports held-out accuracy.

    python scripts/train.py --strategy=mirrored            # embedded data
    python scripts/train.py --flagfile=configs/imdb.flags --data_path=aclImdb

A rerun with the same --model_dir resumes from its last checkpoint. On
SIGTERM or Ctrl-C the run finishes its current loop of steps, saves a
checkpoint at that step and exits with status 75; a second signal stops it
at once.
"""

import json
import sys

from absl import app, flags, logging

from maskmodels import cli
from maskmodels import flags as mm_flags
from maskmodels import training

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "runs/default",
                    "Model directory: checkpoints, vocabulary, config and "
                    "summaries. A rerun with the same directory resumes.")
mm_flags.define_strategy_flags()
mm_flags.define_train_flags()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.quiet_tensorflow()
  config = mm_flags.run_config_from_flags()
  strategy = training.get_strategy(FLAGS.strategy, FLAGS.num_cpu_devices,
                                   FLAGS.tpu)
  logging.info("Strategy %s with %d replica(s).", FLAGS.strategy,
               strategy.num_replicas_in_sync)
  try:
    summary = training.train_and_evaluate(config, FLAGS.model_dir, strategy)
  except training.TrainingInterrupted as stopped:
    logging.warning("%s", stopped)
    sys.exit(training.PREEMPTED_EXIT_CODE)
  print(json.dumps(summary, indent=2))
  parts = [f"{summary['steps']} steps in {summary['wall_seconds']:.0f} s"]
  if summary["train_examples_per_second"]:
    parts.append(f"{summary['train_examples_per_second']:.0f} train "
                 f"examples/s")
  if summary["best_validation_accuracy"] is not None:
    parts.append(f"best validation accuracy "
                 f"{summary['best_validation_accuracy']:.4f}")
  if summary.get("test_accuracy") is not None:
    parts.append(f"held-out test accuracy {summary['test_accuracy']:.4f} on "
                 f"{summary['test_examples']} examples")
  print(f"Done: {'; '.join(parts)}. Model in {FLAGS.model_dir}.")


if __name__ == "__main__":
  cli.run(main)
