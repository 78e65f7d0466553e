"""Progress on the console for work that takes a while.

On a terminal, counted work (training steps, texts read, examples
evaluated) shows Keras's live ``Progbar``. Anywhere else (a log file, CI, a
pipe) Keras's bar would write colour codes and carriage-return redraws into
one endless line, so :func:`bar` gives a :class:`LineProgress` instead: one
plain line per update (at most one every ``interval`` seconds, and always
the last). An opaque step (WordPiece learning, writing a SavedModel) logs a
line when it starts and then every ``every`` seconds until it ends.
"""

import contextlib
import os
import sys
import threading
import time

import keras
from absl import logging

# Set to "bar" or "lines" to choose the display whatever the output is.
DISPLAY_ENV = "MASKMODELS_PROGRESS"


def interactive(stream=None):
  """Whether progress goes to a terminal (the live bar) or not (lines)."""
  choice = os.environ.get(DISPLAY_ENV, "")
  if choice in ("bar", "lines"):
    return choice == "bar"
  stream = stream or sys.stdout
  return bool(getattr(stream, "isatty", None) and stream.isatty())


class LineProgress:
  """``Progbar``'s ``update``/``add`` as plain lines, for logs.

  Each printed line reads ``<label> <done>/<total> <unit> - name: value -
  ... - <seconds> s``: no escape codes, no redraws.

  Args:
    total: the count that ends the work (None if unknown).
    unit: what is counted ("step", "texts", "examples").
    interval: least seconds between two lines (0: a line per update); the
      update that reaches ``total`` always prints.
    verbose: 0 prints nothing.
    stream: where lines go (default stdout).
  """

  def __init__(self, total, unit="step", interval=0.0, verbose=1,
               stream=None):
    self.total, self.unit, self.interval = total, unit, interval
    self.verbose = verbose
    self.stream = stream
    self.done = 0
    self.start = time.perf_counter()
    self.printed = None  # when the last line was printed

  def update(self, current, values=None):
    """Records progress ``current``; prints a line when it is due."""
    self.done = current
    now = time.perf_counter()
    final = self.total is not None and current >= self.total
    if not self.verbose or not (final or self.printed is None or
                                now - self.printed >= self.interval):
      return
    if self.printed is None and current == 0 and not values:
      return  # nothing done yet: no line
    self.printed = now
    of = f"/{self.total}" if self.total is not None else ""
    parts = [f"{self.unit} {current}{of}"]
    parts += [f"{name}: {_number(value)}" for name, value in values or ()]
    parts.append(f"{now - self.start:.0f} s")
    stream = self.stream or sys.stdout
    stream.write(" - ".join(parts) + "\n")
    stream.flush()

  def add(self, count, values=None):
    """Adds ``count`` to the progress (``Progbar.add``)."""
    self.update(self.done + count, values)


def _number(value):
  value = float(value)
  if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
    return f"{value:.3e}"
  return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"


def bar(total, unit="step", verbose=1, interval=None, stateful_metrics=None):
  """A progress display for ``total`` units: Keras's ``Progbar`` on a
  terminal, :class:`LineProgress` elsewhere.

  Args:
    total: the count at the end.
    unit: the unit's name.
    verbose: 0 to stay silent (non-chief workers).
    interval: least seconds between updates (Keras's ``interval`` on a
      terminal; in logs, ``None`` means one line every 10 s).
    stateful_metrics: names shown as they are, not averaged (Progbar).
  """
  if interactive():
    return keras.utils.Progbar(
        total, verbose=verbose, unit_name=unit,
        interval=0.05 if interval is None else interval,
        stateful_metrics=stateful_metrics)
  return LineProgress(total, unit, 10.0 if interval is None else interval,
                      verbose=verbose)


def counted(items, total, unit, size=len, verbose=1):
  """Yields ``items`` while a progress display counts them toward ``total``.

  Args:
    items: an iterable (e.g. batches of texts).
    total: the number of units expected in all (e.g. texts).
    unit: the unit's name, shown after the count ("texts").
    size: units in one item (default ``len``).
    verbose: 0 to stay silent (non-chief workers).
  """
  display = bar(total, unit, verbose=verbose)
  done = 0
  for item in items:
    yield item
    done += size(item)
    display.update(min(done, total))


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
