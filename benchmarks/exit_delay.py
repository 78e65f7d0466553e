"""How long a command takes to exit after its last line of output.

    python benchmarks/exit_delay.py --runs=10 -- \
        python scripts/train.py --strategy=mirrored --model_dir=runs/exit{i}

Runs the command ``--runs`` times in fresh processes (``{i}`` in an
argument becomes the run's number) and prints the CPU, then one JSON line
per run: its status, the seconds from its last output line (either stream)
to its exit, and whether it was killed for staying silent ``--limit``
seconds after that line (a hang); then a summary line.
"""

import json
import os
import statistics
import subprocess
import threading
import time

from maskmodels import cli

cli.quiet_start()  # before TensorFlow loads (benchmarks/machine.py loads it)

# pylint: disable=wrong-import-position
from absl import app, flags  # noqa: E402

from machine import cpu_description  # noqa: E402  (benchmarks/machine.py)

FLAGS = flags.FLAGS
flags.DEFINE_integer("runs", 10, "Runs of the command.", lower_bound=1)
flags.DEFINE_float("limit", 120.0, "Seconds of silence after which a run "
                   "counts as hung and is killed.", lower_bound=1.0)


def timed_run(command):
  """``(status, seconds from the last output line to exit, hung)``."""
  process = subprocess.Popen(command, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True,
                             env=dict(os.environ, PYTHONUNBUFFERED="1"))
  last = [time.monotonic()]

  def read():
    for _ in process.stdout:
      last[0] = time.monotonic()

  reader = threading.Thread(target=read, daemon=True)
  reader.start()
  hung = False
  while process.poll() is None:
    if time.monotonic() - last[0] > FLAGS.limit:
      hung = True
      process.kill()
      process.wait()
    time.sleep(0.05)
  return process.returncode, time.monotonic() - last[0], hung


def main(argv):
  command = argv[1:]
  if not command:
    raise app.UsageError("Give the command to time after --.")
  print(json.dumps(cpu_description()), flush=True)
  delays, hung_runs = [], 0
  for run in range(FLAGS.runs):
    status, delay, hung = timed_run([a.replace("{i}", str(run))
                                     for a in command])
    delays.append(delay)
    hung_runs += hung
    print(json.dumps({"run": run, "status": status, "hung": hung,
                      "exit_after_last_line_s": round(delay, 2)}),
          flush=True)
  print(json.dumps({"runs": FLAGS.runs, "hung": hung_runs,
                    "median_exit_s": round(statistics.median(delays), 2),
                    "max_exit_s": round(max(delays), 2)}), flush=True)


if __name__ == "__main__":
  app.run(main)
