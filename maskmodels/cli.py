"""Helpers shared by the command-line scripts."""

import logging
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
