"""Where a training step's time goes: the kernels, the per-call dispatch,
the input pipeline; as JSON lines.

    python benchmarks/step_profile.py --flagfile=configs/ud_ewt.flags \
        --data_path=ud-english-ewt

The first line names the CPU and its vector extensions. The run's model,
data and batching come from the training flags (a benchmark's flagfile);
then, each after a warm-up, in milliseconds per step over ``--steps``:

* ``step``: training as a run trains (its pipeline, ``--steps_per_loop``
  steps per call);
* ``compute``: the same number of steps on the pipeline's first
  ``--steps`` batches held in memory (no pipeline work),
  ``--steps_per_loop`` steps per call;
* ``compute, one step per call``: the same, a call per step;
* ``pipeline``: the input pipeline alone, batches read and dropped.

``compute`` is the kernels (and the loop around them); ``compute, one step
per call`` minus ``compute`` is the dispatch of a call; ``step`` minus
``compute`` is what the pipeline costs the loop. The last line summarizes
them, and each is a record.
"""

import json
import sys
import tempfile
import time

from maskmodels import cli

cli.quiet_start()  # before TensorFlow loads

# pylint: disable=wrong-import-position
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from maskmodels.cli import flags as flags_lib  # noqa: E402
from maskmodels.commands import train as train_command  # noqa: E402
from maskmodels.training import builders, runner, trainer  # noqa: E402
from maskmodels.training.model_dir import ModelDirectory  # noqa: E402
from machine import cpu_description  # noqa: E402  (benchmarks/machine.py)
import records  # noqa: E402  (benchmarks/records.py)

cli.define_flags(train_command.COMMAND)  # the training flags
FLAGS = flags.FLAGS
records.define_flag()
flags.DEFINE_integer("steps", 100, "Timed steps per measurement.",
                     lower_bound=1)


def timed(function, steps, warmup):
  """Milliseconds per step of ``function(steps)`` after ``function(warmup)``
  (every held batch read once, the calls traced)."""
  function(warmup)
  start = time.perf_counter()
  function(steps)
  return 1000 * (time.perf_counter() - start) / steps


def main(argv):
  del argv
  print(json.dumps(cpu_description()), flush=True)
  config = flags_lib.experiment_config_from_flags()
  strategy = tf.distribute.get_strategy()
  prepared = runner.prepare(config, builders.task_of(config), ModelDirectory(
      tempfile.mkdtemp(prefix="maskmodels_profile_")))
  runner.set_up_process(prepared.config.train)
  model = builders.model_in_scope(prepared.config, prepared.task,
                                  prepared.kind.model_inputs(prepared.assets),
                                  strategy)
  loop = prepared.config.train.steps_per_loop
  live = runner.Runner(config, tempfile.mkdtemp(), strategy).build_trainer(
      prepared, model)
  # The first --steps batches of the run's own pipeline, kept in memory
  # and cycled: the kernels without pipeline work, on as many batches as
  # the pipeline's measurement reads (bucketed lengths vary a lot).
  held_data = prepared.train_input().take(FLAGS.steps).cache().repeat()
  held = trainer.Trainer(prepared.task, model, live.optimizer, strategy)
  held.set_train_data(lambda context, start: held_data)

  def in_loops(trainer, per_call):
    def run(steps):
      for begin in range(0, steps, per_call):
        trainer.train(min(per_call, steps - begin))
    return run

  batches = iter(prepared.train_input())  # one pipeline, its cache kept

  def pipeline_only(steps):
    for _ in range(steps):
      next(batches)

  rows = []
  for name, function, warmup in (
      (f"step ({loop} per call)", in_loops(live, loop), loop),
      (f"compute ({loop} per call)", in_loops(held, loop), FLAGS.steps),
      ("compute, one step per call", in_loops(held, 1), loop),
      ("pipeline", pipeline_only, loop)):
    value = round(timed(function, FLAGS.steps, warmup), 2)
    rows.append({"config": name, "metric": "ms/step", "value": value})
    print(json.dumps(rows[-1]), flush=True)
  live.close()
  held.close()
  summary = {"kernels": rows[1]["value"],
             "dispatch_per_call": round(rows[2]["value"] - rows[1]["value"],
                                        2),
             "pipeline_in_loop": round(rows[0]["value"] - rows[1]["value"],
                                       2),
             "pipeline_alone": rows[3]["value"],
             "batch": prepared.train_pipeline.batch_size}
  print(json.dumps({"summary": summary}))
  records.append_run("step_profile", rows, sys.argv, FLAGS.records)


if __name__ == "__main__":
  app.run(main)
