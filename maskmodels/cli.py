"""Helpers shared by the command-line scripts."""

import logging
import sys
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def quiet_tensorflow():
  """Keeps the console to our progress and results: TensorFlow's own INFO
  lines (device placement, collective set-up, saver timings) are hidden."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel

  tf.get_logger().setLevel(logging.WARNING)
  absl_logging.get_absl_logger().addFilter(
      lambda record: record.levelno >= logging.WARNING or
      f"{os.sep}tensorflow{os.sep}" not in record.pathname)
  warnings.filterwarnings("ignore", message="To make it possible to preserve "
                          "tf.data options")


def run(main):
  """``absl.app.run(main)``, with bad input reported as one line, not a
  traceback: a missing path (FileNotFoundError), an invalid value
  (ValueError) or a diverged run (FloatingPointError) ends the program with
  its message and exit status 1."""
  from absl import app  # pylint: disable=import-outside-toplevel

  def guarded(argv):
    try:
      return main(argv)
    except (FileNotFoundError, ValueError, FloatingPointError) as error:
      sys.stderr.write(f"error: {error}\n")
      sys.exit(1)

  app.run(guarded)
