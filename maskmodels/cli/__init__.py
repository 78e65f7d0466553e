"""The command line: what every command shares.

* :mod:`maskmodels.cli.app`: a quiet start, ``--import`` plug-ins, flag
  parsing with help and ``--version``, and every error as one line with its
  exit status (``maskmodels.errors``).
* :mod:`maskmodels.cli.sections`: a command's flags as titled sections of
  settings, the one source of its absl flags, ``--helpshort`` and
  ``docs/cli.md``.
* :mod:`maskmodels.cli.flags`: absl flags defined from the sections, and
  the parsed values read back as settings.

This package imports no TensorFlow until a command starts, so
:func:`quiet_start` can hide its start-up noise.
"""

from maskmodels.cli.app import (Command, absorb_onednn_notice, define_flags,
                                guarded, import_plugins, parse,
                                plugin_modules, quiet_start, run)
