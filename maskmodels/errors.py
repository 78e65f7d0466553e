"""Exceptions that mean "bad input", not "bug".

The command-line tools print an :class:`InputError` (and a missing file) as
one ``error:`` line; any other exception keeps its traceback, so a bug in
library or research code can be found (``--traceback`` shows the traceback
of input errors too).
"""


class InputError(ValueError):
  """A setting, data file or model directory that cannot be used as given.

  The message names the value at fault and what is allowed.
  """


class ModelDirectoryInUse(InputError):
  """Another live run holds the model directory."""


class WorkerLost(RuntimeError):
  """A multi-worker run lost a peer; rerun every worker to resume."""
