"""What every command shares: a quiet start, plug-in imports, errors.

A command module calls :func:`quiet_start` before anything loads
TensorFlow, then :func:`run` with its ``main``.
"""

import contextlib
import glob
import importlib
import logging
import os
import re
import sys
import tempfile
import warnings

# TensorFlow's start-up lines that say nothing to the user: build notes,
# and CUDA probing on a host with no NVIDIA driver (filtered there only).
_NOISE = (r"All log messages before absl::InitializeLog|oneDNN custom "
          r"operations are on|cpu_feature_guard|To enable the following "
          r"instructions|rebuild TensorFlow with the appropriate compiler")
_NO_GPU_NOISE = (r"Could not find cuda drivers|failed call to cuInit|"
                 r"Unable to register cu(DNN|FFT|BLAS) factory|"
                 r"computation placer already registered")


@contextlib.contextmanager
def _filtered_stderr(pattern):
  """Runs the block with file descriptor 2 captured, then writes back every
  captured line that ``pattern`` does not match."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      for line in captured.read().decode("utf-8", "replace").splitlines():
        if not re.search(pattern, line):
          sys.stderr.write(line + "\n")


def quiet_start():
  """Loads TensorFlow without its start-up noise; other lines are kept.

  TensorFlow's C++ INFO and WARNING lines are hidden unless
  ``TF_CPP_MIN_LOG_LEVEL`` says otherwise, and Python-level INFO lines from
  inside TensorFlow (device placement, collectives) are dropped.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  pattern = _NOISE if glob.glob("/dev/nvidia*") else (
      f"{_NOISE}|{_NO_GPU_NOISE}")
  with _filtered_stderr(pattern):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf.config.list_physical_devices()
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
  tf.get_logger().setLevel(logging.WARNING)
  absl_logging.get_absl_logger().addFilter(
      lambda record: record.levelno >= logging.WARNING or
      f"{os.sep}tensorflow{os.sep}" not in record.pathname)
  warnings.filterwarnings("ignore", message="To make it possible to preserve "
                          "tf.data options")


# oneDNN logs this once per process, at ERROR level and on CPUs it supports
# too, at the first boolean transpose: Keras's GRU transposes its mask.
_ONEDNN_BOOL_NOTICE = r"oneDNN supports DT_\w+ only on platforms with AVX-512"


def absorb_onednn_notice():
  """Runs one boolean transpose with oneDNN's one-time notice about it
  filtered, so the notice does not reach the user from the first GRU.

  Call it once devices are configured (it starts TensorFlow's runtime).
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  with _filtered_stderr(_ONEDNN_BOOL_NOTICE):
    tf.transpose(tf.zeros([1, 1], tf.bool))


def _define_common_flags():
  from absl import flags  # pylint: disable=import-outside-toplevel
  flags.DEFINE_list(
      "import", [], "Python modules to import before the other flags are "
      "read, e.g. research code that registers encoders, poolings, models, "
      "tasks or data formats (--import=my_lab.encoders,my_lab.tasks).")
  flags.DEFINE_bool(
      "traceback", False, "Show the full traceback of input errors too "
      "(errors inside library or research code always show theirs).")


def plugin_modules(argv):
  """The modules ``--import`` names in ``argv`` (flagfiles included)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  try:
    argv = flags.FLAGS.read_flags_from_files(list(argv[1:]), force_gnu=False)
  except flags.Error:
    pass  # absl reports a bad flagfile when it parses the command line
  modules = []
  for index, arg in enumerate(argv):
    value = None
    if arg.startswith("--import="):
      value = arg.split("=", 1)[1]
    elif arg == "--import" and index + 1 < len(argv):
      value = argv[index + 1]
    if value:
      modules += [name.strip() for name in value.split(",") if name.strip()]
  return modules


def import_plugins(modules):
  """Imports research modules (from the working directory or installed)."""
  if "" not in sys.path and os.getcwd() not in sys.path:
    sys.path.insert(0, os.getcwd())
  for name in modules:
    try:
      importlib.import_module(name)
    except ModuleNotFoundError as error:
      if error.name and name.startswith(error.name):
        sys.stderr.write(f"error: --import={name}: no module named "
                         f"{error.name!r} (in the working directory or "
                         f"installed).\n")
        sys.exit(1)
      raise


def guarded(main, show_traceback=lambda: False):
  """``main`` with bad input turned into a one-line ``error:`` and exit
  status 1 (unless ``show_traceback()``); any other exception is a bug and
  keeps its traceback."""
  from maskmodels.errors import InputError  # pylint: disable=import-outside-toplevel

  def run_main(argv):
    try:
      return main(argv)
    except (InputError, FileNotFoundError, FloatingPointError) as error:
      if show_traceback():
        raise
      sys.stderr.write(f"error: {error}\n")
      sys.exit(1)

  return run_main


def run(main, define_flags=None, doc=None):
  """Runs ``main`` as an absl app, after ``--import`` and ``define_flags``.

  ``doc`` is the usage text ``--help`` shows (the command module's
  docstring).

  Bad input (an :class:`~maskmodels.errors.InputError`, a missing file, a
  diverged run) ends the program with a one-line ``error:`` message and exit
  status 1; ``--traceback`` shows its traceback instead. Any other exception
  is a bug and keeps its traceback (absl's ``--pdb_post_mortem`` works).
  """
  from absl import app, flags  # pylint: disable=import-outside-toplevel
  if doc:
    sys.modules["__main__"].__doc__ = doc
  _define_common_flags()
  import_plugins(plugin_modules(sys.argv))
  if define_flags:
    define_flags()
  app.run(guarded(main, lambda: flags.FLAGS.traceback))
