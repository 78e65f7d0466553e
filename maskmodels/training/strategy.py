"""One function from a strategy name to a ``tf.distribute.Strategy``."""

import json
import os
import re

import tensorflow as tf

from maskmodels.errors import InputError
from maskmodels.registry import Registry

# Strategies by name: factories of (num_cpu_devices, tpu).
STRATEGIES = Registry("strategy")


def split_cpu(num_devices):
  """Splits the first CPU into ``num_devices`` logical devices.

  Must run before TensorFlow initializes its devices (before any op runs);
  lets ``MirroredStrategy`` run ``num_devices`` replicas on a CPU-only host.
  """
  cpu = tf.config.list_physical_devices("CPU")[0]
  current = tf.config.get_logical_device_configuration(cpu)
  if current and len(current) == num_devices:
    return
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
  except RuntimeError as error:
    raise RuntimeError(
        f"Cannot split the CPU into {num_devices} devices: TensorFlow has "
        f"already initialized its devices ({error}). Choose the device count "
        f"before running any TensorFlow op.") from None


def get_strategy(name, num_cpu_devices=2, tpu=""):
  """The ``tf.distribute.Strategy`` registered as ``name``.

  Args:
    name: ``default``, ``one_device``, ``mirrored``,
      ``multi_worker_mirrored`` or ``tpu``.
    num_cpu_devices: for ``mirrored`` on a host without GPUs, the number of
      logical CPU devices (replicas); a host with GPUs uses every GPU.
    tpu: TPU name or address for ``tpu`` ("" = the local TPU / environment).

  Raises:
    InputError: unknown name, or a missing accelerator or cluster; the
      message lists what is available.
  """
  return STRATEGIES.get(name)(num_cpu_devices, tpu)


@STRATEGIES.register("default")
def _default(num_cpu_devices, tpu):
  del num_cpu_devices, tpu
  return tf.distribute.get_strategy()


@STRATEGIES.register("one_device")
def _one_device(num_cpu_devices, tpu):
  del num_cpu_devices, tpu
  gpus = tf.config.list_physical_devices("GPU")
  return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")


@STRATEGIES.register("mirrored")
def _mirrored(num_cpu_devices, tpu):
  del tpu
  if tf.config.list_physical_devices("GPU"):
    return tf.distribute.MirroredStrategy()
  split_cpu(num_cpu_devices)
  devices = [d.name for d in tf.config.list_logical_devices("CPU")]
  return tf.distribute.MirroredStrategy(devices)


@STRATEGIES.register("multi_worker_mirrored")
def _multi_worker_mirrored(num_cpu_devices, tpu):
  del num_cpu_devices, tpu
  if "TF_CONFIG" not in os.environ:
    raise InputError("Strategy 'multi_worker_mirrored' needs the cluster in "
                     "the TF_CONFIG environment variable; none is set.")
  cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
  if not cluster:
    raise InputError("TF_CONFIG has no 'cluster' entry.")
  return tf.distribute.MultiWorkerMirroredStrategy()


@STRATEGIES.register("tpu")
def _tpu(num_cpu_devices, tpu):
  del num_cpu_devices
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, tf.errors.NotFoundError, RuntimeError) as error:
    devices = sorted({d.device_type for d in tf.config.list_logical_devices()})
    raise InputError(f"No TPU found (tpu={tpu!r}): {error}. Devices here: "
                     f"{', '.join(devices)}; choose one of "
                     f"{', '.join(n for n in STRATEGIES.names() if n != 'tpu')}."
                     ) from None
  return tf.distribute.TPUStrategy(resolver)


def cluster_resolver(strategy):
  """The strategy's cluster resolver if it spans a cluster, else None."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return None
  return resolver


def is_chief(strategy):
  """Whether this task writes checkpoints and summaries."""
  resolver = cluster_resolver(strategy)
  if resolver is None:
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type is None or task_type == "chief" or (
      task_type == "worker" and task_id == 0 and
      "chief" not in resolver.cluster_spec().as_dict())


def task_id(strategy):
  """This worker's index in its cluster (0 on a single host)."""
  resolver = cluster_resolver(strategy)
  return (resolver.task_id or 0) if resolver is not None else 0


def lost_worker(message):
  """The task a collective error names as gone (e.g. ``/job:worker/
  replica:0/task:1``), or None if the error is not about a lost task."""
  if not re.search(r"crash|unhealthy|heartbeat|unavailable|connect|"
                   r"restarted|not responding", message, re.I):
    return None
  tasks = re.findall(r"/job:\w+/replica:\d+/task:\d+", message)
  return f"worker {tasks[-1]}" if tasks else "a worker"
