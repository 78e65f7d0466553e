"""Shared test setup: quiet TensorFlow logs, fixed seeds, logical CPUs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


def pytest_configure(config):
  """Configures TensorFlow where tests run: in each xdist worker, or in the
  one process of a run without workers. The xdist controller runs no test
  and does not import it (about 5 s of a CPU at the start of a run)."""
  if (getattr(config.option, "numprocesses", None) and
      not hasattr(config, "workerinput")):
    return
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  # In-process tests run their graphs without Grappler's rewrites: they
  # trace many small functions, and optimizing each costs more than it
  # saves (about a fifth of their time). The commands, in fresh processes,
  # run as users do.
  tf.config.optimizer.set_experimental_options(
      {"disable_meta_optimizer": True})
  # Two logical CPU devices, so MirroredStrategy can run 2 replicas in
  # tests. This must happen before TensorFlow initializes its devices.
  cpus = tf.config.list_physical_devices("CPU")
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


# The default run's longest files, longest first (``--durations=0``, summed
# per file). xdist hands whole files to its workers in collection order
# (``--no-loadscope-reorder``), so the long ones start first and the run
# ends on short ones instead of one worker waiting for the other. Files not
# named follow, in their usual order; update the list when a file grows.
_LONGEST_FILES = ("test_sequence_commands.py", "test_extending.py",
                  "test_export.py", "test_frames.py",
                  "test_training_run.py",
                  "test_trainer.py", "test_scripts.py", "test_gpu_path.py",
                  "test_readme.py", "test_tagging.py", "test_reliability.py",
                  "test_faults.py", "test_models.py",
                  "test_regression_task.py", "test_exit.py",
                  "test_bad_flags.py", "test_data_pipeline.py")


def pytest_collection_modifyitems(items):
  """Orders the collected tests' files longest first (stable within a
  file)."""
  def rank(item):
    name = item.path.name
    return (_LONGEST_FILES.index(name) if name in _LONGEST_FILES
            else len(_LONGEST_FILES))
  items.sort(key=rank)


@pytest.fixture(autouse=True)
def _seed():
  import keras  # pylint: disable=import-outside-toplevel
  keras.utils.set_random_seed(0)
  yield


@pytest.fixture(scope="session")
def mirrored():
  """One 2-replica MirroredStrategy for the whole test run.

  Strategies created one after another in a process can reuse collective
  instance keys and abort each other's all-reduces; a run has one strategy.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture
def parsed_flags():
  """Defines the train command's flags once and parses a command line
  (``--flag=value`` strings) into its ``ExperimentConfig``, as the command
  does; the flags stay parsed until the test ends, then are restored."""
  # pylint: disable=import-outside-toplevel
  from absl import flags
  from maskmodels import cli
  from maskmodels.cli import flags as flags_lib
  from maskmodels.commands import train
  cli.define_flags(train.COMMAND)  # (another command's flags go)

  def parse(*argv):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["prog", *argv])
    return flags_lib.experiment_config_from_flags()

  yield parse
  flags.FLAGS.unparse_flags()
