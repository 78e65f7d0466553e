"""Progress: a live bar on a terminal, plain lines in a log."""

import io

import keras
import pytest

from maskmodels import progress


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_in_a_log_each_update_is_one_plain_line(monkeypatch):
  monkeypatch.delenv(progress.DISPLAY_ENV, raising=False)
  stream = io.StringIO()
  assert not progress.interactive(stream)
  lines = progress.LineProgress(30, "step", interval=0.0, stream=stream)
  lines.update(0)  # nothing done yet: no line
  for step in (10, 20, 30):
    lines.update(step, [("loss", 0.5 / step), ("ex/s", 1234.5),
                        ("lr", 2e-5)])
  written = stream.getvalue()
  assert "\x1b" not in written and "\r" not in written
  rows = written.splitlines()
  assert len(rows) == 3
  assert rows[0].startswith("step 10/30 - loss: 0.0500 - ex/s: 1234.5 - "
                            "lr: 2.000e-05 - ")
  assert rows[-1].startswith("step 30/30")


def test_a_log_s_counted_work_prints_at_most_one_line_per_interval():
  stream = io.StringIO()
  lines = progress.LineProgress(100, "texts", interval=3600.0, stream=stream)
  for done in range(1, 101):
    lines.update(done)
  # The first update and the last (which ends the work) only.
  assert [row.split(" - ")[0] for row in stream.getvalue().splitlines()] == [
      "texts 1/100", "texts 100/100"]


def test_the_display_follows_the_output(monkeypatch):
  monkeypatch.delenv(progress.DISPLAY_ENV, raising=False)
  assert progress.interactive(_Terminal())
  monkeypatch.setattr("sys.stdout", _Terminal())
  assert isinstance(progress.bar(10), keras.utils.Progbar)
  monkeypatch.setattr("sys.stdout", io.StringIO())
  assert isinstance(progress.bar(10), progress.LineProgress)
  monkeypatch.setenv(progress.DISPLAY_ENV, "bar")
  assert isinstance(progress.bar(10), keras.utils.Progbar)
  monkeypatch.setenv(progress.DISPLAY_ENV, "lines")
  assert not progress.interactive(_Terminal())


@pytest.mark.parametrize("verbose", [0, 1])
def test_counted_yields_every_item_and_is_silent_when_asked(capsys, verbose):
  items = list(progress.counted([[1, 2], [3], [4, 5, 6]], 6, "texts",
                                verbose=verbose))
  assert items == [[1, 2], [3], [4, 5, 6]]
  out = capsys.readouterr().out
  assert ("texts 6/6" in out) == bool(verbose)
