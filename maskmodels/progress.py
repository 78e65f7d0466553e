"""Progress on the console for work that takes a while.

Counted work (texts read, batches evaluated) shows a Keras ``Progbar``; an
opaque step (WordPiece learning, writing a SavedModel) logs a line when it
starts and then every ``every`` seconds until it ends.
"""

import contextlib
import threading
import time

import keras
from absl import logging


def counted(items, total, unit, size=len, verbose=1):
  """Yields ``items`` while a ``Progbar`` counts them toward ``total``.

  Args:
    items: an iterable (e.g. batches of texts).
    total: the number of units expected in all (e.g. texts).
    unit: the unit's name, shown after the count ("texts").
    size: units in one item (default ``len``).
    verbose: 0 to stay silent (non-chief workers).
  """
  bar = keras.utils.Progbar(total, verbose=verbose, unit_name=unit)
  done = 0
  for item in items:
    yield item
    done += size(item)
    bar.update(min(done, total))


@contextlib.contextmanager
def heartbeat(message, every=15.0):
  """Logs ``message``, then ``message (N s so far)`` every ``every`` seconds
  until the ``with`` block ends, and the total time at its end."""
  start = time.perf_counter()
  stop = threading.Event()
  logging.info("%s...", message)

  def beat():
    while not stop.wait(every):
      logging.info("%s (%.0f s so far)...", message,
                   time.perf_counter() - start)

  thread = threading.Thread(target=beat, daemon=True)
  thread.start()
  try:
    yield
  finally:
    stop.set()
    thread.join()
    logging.info("%s: done in %.1f s.", message, time.perf_counter() - start)
