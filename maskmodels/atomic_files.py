"""Whole-or-nothing file writes, so a kill never leaves half a file.

A write goes to a temporary name beside the file, then is renamed over it:
a reader (or a rerun after a kill) sees the old file or the new one, never
a partial one. A write that fails (a full disk, a read-only folder) removes
its temporary file and raises the fault
(:class:`~maskmodels.errors.EnvironmentFault`) naming the file.
"""

import json
import os

import tensorflow as tf

from maskmodels.errors import environment_fault


def _remove_quietly(path):
  try:
    tf.io.gfile.remove(path)
  except (OSError, tf.errors.OpError):
    pass


def write_text(path, text, mode="w"):
  """Writes ``text`` to ``path`` through a temporary file and a rename.

  ``tf.io.gfile`` makes this work on local disks and on the cloud storage a
  TPU run writes to.
  """
  directory = os.path.dirname(path)
  temporary = f"{path}.tmp-{os.getpid()}"
  try:
    if directory:
      tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(temporary, mode) as f:
      f.write(text)
    tf.io.gfile.rename(temporary, path, overwrite=True)
  except (OSError, tf.errors.OpError) as error:
    _remove_quietly(temporary)
    fault = environment_fault(error, path)
    if fault is None:
      raise
    raise fault from error
  except BaseException:
    _remove_quietly(temporary)
    raise


def write_bytes(path, data):
  """``write_text`` of raw bytes (an image)."""
  write_text(path, data, mode="wb")


def write_json(path, value, **dump_kwargs):
  """``write_text`` of ``value`` as JSON."""
  write_text(path, json.dumps(value, **dump_kwargs))
