"""Whole-or-nothing file writes, so a kill never leaves half a file."""

import json
import os

import tensorflow as tf


def write_text(path, text, mode="w"):
  """Writes ``text`` to ``path`` through a temporary file and a rename.

  A reader (or a rerun after a kill) sees the old file or the new one,
  never a partial one. ``tf.io.gfile`` makes this work on local disks and
  on the cloud storage a TPU run writes to.
  """
  directory = os.path.dirname(path)
  if directory:
    tf.io.gfile.makedirs(directory)
  temporary = f"{path}.tmp-{os.getpid()}"
  with tf.io.gfile.GFile(temporary, mode) as f:
    f.write(text)
  tf.io.gfile.rename(temporary, path, overwrite=True)


def write_bytes(path, data):
  """``write_text`` of raw bytes (an image)."""
  write_text(path, data, mode="wb")


def write_json(path, value, **dump_kwargs):
  """``write_text`` of ``value`` as JSON."""
  write_text(path, json.dumps(value, **dump_kwargs))
