"""Shared test helpers: tiny runs on synthetic reviews."""

import gzip
import json
import os
import subprocess
import sys
import threading
import time

import tensorflow as tf

from maskmodels import training
from maskmodels.data import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Settings of a small, fast model for the command-line tools.
TINY_FLAGS = ["--embedding_dim=16", "--conv_filters=16", "--gru_units=8",
              "--vocab_size=400", "--max_len=96", "--batch_size=32"]
TINY_RUN = TINY_FLAGS + ["--train_steps=12", "--steps_per_loop=4",
                         "--warmup_steps=2", "--checkpoint_every_steps=4"]


def write_jsonl(path, count, seed, text_key="text", label_key="label"):
  """``count`` synthetic reviews as JSON Lines; returns ``path``."""
  texts, labels = synthetic.generate_reviews(count, seed=seed)
  with open(path, "w") as f:
    for text, label in zip(texts, labels):
      f.write(json.dumps({text_key: text,
                          label_key: ["neg", "pos"][label]}) + "\n")
  return str(path)


def tiny_config(data_path, **overrides):
  """A run of 12 steps of a small model on a JSON Lines file."""
  values = dict(
      data_format="jsonl", data_path=data_path, validation_fraction=0.2,
      vocab_size=400, max_len=96, num_buckets=3, embedding_dim=16,
      conv_filters=[16], kernel_size=3, pool_size=2, gru_units=[8],
      dropout=0.1, batch_size=16, train_steps=12, steps_per_loop=3,
      warmup_steps=2, checkpoint_every_steps=3, deterministic=True, seed=5)
  values.update(overrides)
  return training.ExperimentConfig.create(**values)


def checkpoint_values(model_dir):
  """``{name: value}`` of the latest checkpoint's model, optimizer and step."""
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
  names = sorted(name for name in reader.get_variable_to_shape_map()
                 if name.startswith(("model/", "optimizer/", "step")))
  return {name: reader.get_tensor(name) for name in names}


def summary_scalars(folder):
  """``{(tag, step): value}`` of the TensorBoard scalars in ``folder``."""
  values = {}
  for path in tf.io.gfile.glob(os.path.join(folder, "events.out.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        values[(value.tag, event.step)] = float(
            tf.make_ndarray(value.tensor))
  return values


def env(**extra):
  """The environment of a command-line tool run by a test."""
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
              **extra)


# Seconds a command may stay idle (no output line, and its processes using
# less than IDLE_CPU of a core) before it is judged hung; a command must end
# when its work is done.
EXIT_BOUND = 30.0
# A command's processes using less than this fraction of a core are idle:
# a process waiting on a lock or a sleeping thread uses next to none, while
# one at work on a machine loaded several times over still gets a share
# well above it.
IDLE_CPU = 0.05


class Completed(subprocess.CompletedProcess):
  """A finished command, with ``exit_seconds``: from its last sign of work
  (an output line on either stream, or CPU use) to its exit."""
  exit_seconds = 0.0


def tree_cpu_seconds(pid):
  """CPU seconds used so far by process ``pid`` and its descendants (with
  the children they have waited for), from ``/proc``; None where there is
  no ``/proc``."""
  if not os.path.isdir("/proc"):
    return None
  ticks = os.sysconf("SC_CLK_TCK")
  parents, used = {}, {}
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat") as f:
        stat = f.read()
    except OSError:
      continue  # gone meanwhile
    # The command name may hold spaces and parentheses: split after it.
    fields = stat[stat.rindex(")") + 2:].split()
    parents[int(entry)] = int(fields[1])
    used[int(entry)] = sum(int(v) for v in fields[11:15]) / ticks
  if pid not in used:
    return None
  tree, total = {pid}, 0.0
  grew = True
  while grew:
    grew = False
    for child, parent in parents.items():
      if parent in tree and child not in tree:
        tree.add(child)
        grew = True
  for member in tree:
    total += used[member]
  return total


def run_command(argv, stdin=None, cwd=ROOT, timeout=600, check_exit=True,
                bound=None, **extra_env):
  """Runs ``argv`` in a fresh process and returns its :class:`Completed`.

  Fails if the process is idle ``bound`` seconds (``EXIT_BOUND``): no line
  of output and its processes under ``IDLE_CPU`` of a core all that time
  (a hang, or a command that does not end when its work is done). A busy
  machine slows a command but does not make it idle.
  """
  bound = EXIT_BOUND if bound is None else bound
  process = subprocess.Popen(
      argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True, env=env(**extra_env), cwd=cwd)
  streams = {"stdout": [], "stderr": []}
  last = [time.monotonic()]

  def read(name, stream):
    for line in stream:
      streams[name].append(line)
      last[0] = time.monotonic()

  readers = [threading.Thread(target=read, args=(name, getattr(process,
                                                               name)))
             for name in streams]
  for reader in readers:
    reader.start()
  if isinstance(stdin, bytes):  # bytes as given (not UTF-8, say)
    process.stdin.buffer.write(stdin)
  elif stdin:
    process.stdin.write(stdin)
  process.stdin.close()
  deadline = time.monotonic() + timeout
  sampled = (time.monotonic(), tree_cpu_seconds(process.pid))
  active = sampled[0]
  while process.poll() is None:
    now = time.monotonic()
    if now - sampled[0] >= 0.5:
      cpu = tree_cpu_seconds(process.pid)
      if cpu is None or sampled[1] is None or (
          cpu - sampled[1] >= IDLE_CPU * (now - sampled[0])):
        active = now
      sampled = (now, cpu)
    idle = now - max(last[0], active)
    if now > deadline or (check_exit and idle > bound and
                          any(streams.values())):
      process.kill()
      process.wait()
      raise AssertionError(
          f"{' '.join(map(str, argv[1:]))} did not exit: idle {idle:.0f} s "
          f"after its last output line and CPU use: "
          f"{''.join(streams['stdout'])[-500:]}"
          f"{''.join(streams['stderr'])[-1500:]}")
    time.sleep(0.05)
  for reader in readers:
    reader.join()
  result = Completed(process.args, process.returncode,
                     "".join(streams["stdout"]), "".join(streams["stderr"]))
  result.exit_seconds = time.monotonic() - max(last[0], active)
  return result


def run_script(script, *args, **kwargs):
  """Runs ``scripts/<script>`` in a fresh process, as a user does (see
  :func:`run_command`)."""
  return run_command([sys.executable, os.path.join(ROOT, "scripts", script),
                      *args], **kwargs)


def write_ts(path, series, labels, header_extra=""):
  """A .ts file of ``series`` as the archive writes it."""
  lines = ["#made by the tests", "@problemName Tiny", "@timeStamps false",
           "@missing false", "@univariate false",
           f"@dimensions {series[0].shape[1]}", "@equalLength false",
           f"@classLabel true {' '.join(sorted(set(labels)))}"]
  lines += [header_extra] if header_extra else []
  lines.append("@data")
  for frames, label in zip(series, labels):
    lines.append(":".join(",".join(f"{v:.6g}" for v in frames[:, c])
                          for c in range(frames.shape[1])) + f":{label}")
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "wt") as f:
    f.write("\n".join(lines) + "\n")
  return str(path)
