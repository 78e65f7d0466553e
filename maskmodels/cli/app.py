"""What every command shares: a quiet start, plug-ins, flags, errors.

A command module describes itself as a :class:`Command` and its entry point
calls :func:`quiet_start` before anything loads TensorFlow, then
:func:`run`. :func:`run` imports ``--import`` modules, defines the
command's flags from its settings, answers ``--helpshort``, ``--helpfull``
and ``--version``, checks every flag's value before the command does any
work, and reports every error that is not a bug as one ``error:`` line with
its exit status (``maskmodels.errors``).
"""

import contextlib
import dataclasses
import difflib
import glob
import importlib
import logging
import os
import re
import sys
import tempfile
import types
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



@dataclasses.dataclass(frozen=True)
class Command:
  """A command-line tool.

  Attributes:
    name: ``train`` for ``maskmodels-train`` (and ``scripts/train.py``).
    doc: its usage text, the top of ``--helpshort``.
    settings: a function returning its own settings class (imported late,
      after :func:`quiet_start`).
    main: ``main(parsed, arguments)``: ``parsed.own`` holds its settings,
      and for training ``parsed.config`` (the ExperimentConfig) and
      ``parsed.runtime``; ``arguments`` are the words after the flags.
    experiment: whether it takes every setting of a training run.
    arguments: what its positional arguments are ("" = it takes none).
    check: a function of ``parsed`` that raises a SettingError for a
      value the settings alone cannot judge (a path that names nothing).
  """
  name: str
  doc: str
  settings: object
  main: object
  experiment: bool = False
  arguments: str = ""
  check: object = None


def _define_common_flags():
  from absl import flags  # pylint: disable=import-outside-toplevel
  if "traceback" in flags.FLAGS:
    return
  flags.DEFINE_list(
      "import", [], "Python modules to import before the other flags are "
      "read, e.g. research code that registers encoders, poolings, models, "
      "tasks or data formats (--import=my_lab.encoders,my_lab.tasks).")
  flags.DEFINE_bool(
      "traceback", False, "Show the traceback of an error too.")
  flags.DEFINE_bool("version", False, "Print the version and exit.")


def plugin_modules(argv):
  """The modules ``--import`` names in ``argv`` (flagfiles included)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  try:
    argv = flags.FLAGS.read_flags_from_files(list(argv[1:]), force_gnu=False)
  except flags.Error:
    pass  # reported when the command line is parsed
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
  """Imports research modules (from the working directory or installed).

  Raises:
    SettingError: a module that does not exist. An error inside a module
      that exists is its own (a bug keeps its traceback).
  """
  from maskmodels.errors import SettingError  # pylint: disable=import-outside-toplevel
  if "" not in sys.path and os.getcwd() not in sys.path:
    sys.path.insert(0, os.getcwd())
  for name in modules:
    try:
      importlib.import_module(name)
    except ModuleNotFoundError as error:
      if error.name and name.startswith(error.name):
        raise SettingError(
            f"--import={name}: no module named {error.name!r}; expected a "
            f"module in the working directory ({os.getcwd()}) or installed."
            ) from None
      raise


def _fail(message, exit_code):
  """Ends the process with one ``error:`` line (newlines folded)."""
  line = " ".join(str(message).split())
  sys.stderr.write(f"error: {line}\n")
  sys.stderr.flush()
  sys.exit(exit_code)


def _flag_error(error):
  """The one-line message of an absl parsing error: the flag, the value,
  and what the flag allows."""
  # pylint: disable=import-outside-toplevel
  from absl import flags
  from maskmodels.cli import flags as flags_lib
  from maskmodels.settings import describe
  message = str(error)
  if isinstance(error, flags.UnrecognizedFlagError):
    name = error.flagname
    close = difflib.get_close_matches(name, list(flags.FLAGS), n=1)
    hint = f"did you mean --{close[0]}? " if close else ""
    return f"--{name}: unknown flag; {hint}--helpshort lists this command's flags."
  found = re.match(r"flag --(\w+)=(.*?): (.*)$", message, re.S)
  if found:
    name, value, reason = found.groups()
    field = flags_lib.declared_field(name)
    if field is not None:
      return f"--{name}={value}: expected {describe(field)}."
    if name in flags.FLAGS and isinstance(flags.FLAGS[name],
                                          flags.BooleanFlag):
      return f"--{name}={value}: expected true or false."
    return f"--{name}={value}: {reason}."
  missing = re.match(r"Missing value for flag (--\w+)", message)
  if missing:
    field = flags_lib.declared_field(missing.group(1)[2:])
    allowed = describe(field) if field is not None else "a value"
    return f"{missing.group(1)}: missing value; expected {allowed}."
  if isinstance(error, flags.CantOpenFlagFileError):
    return f"--flagfile: {message.replace('ERROR:: ', '')}; expected a " \
           f"readable file of flags, one a line."
  negated = re.match(r"(--no\w+)=(\S*) does not take an argument", message)
  if negated:
    return (f"{negated.group(1)}={negated.group(2)}: a negated flag takes no "
            f"value; write --{negated.group(1)[4:]}=false.")
  return message


def _help_requested(words):
  for word in words:
    name, _, value = word.partition("=")
    if name in ("--help", "-?", "-h", "--helpshort", "--helpfull") and (
        value.lower() in ("", "true", "1")):
      return "full" if name == "--helpfull" else "short"
  return None


def _print_help(command, full):
  # pylint: disable=import-outside-toplevel
  from absl import flags
  from maskmodels import __version__
  from maskmodels.cli import sections
  sys.stdout.write(sections.help_text(command, __version__))
  if full:
    ours = {"maskmodels.cli.flags", "maskmodels.cli.app"}
    for module, module_flags in sorted(
        flags.FLAGS.flags_by_module_dict().items()):
      if module not in ours and module_flags:
        sys.stdout.write(f"\nOther flags ({module}):\n" +
                         flags.FLAGS.module_help(module) + "\n")
  sys.stdout.flush()


def parse(command, argv):
  """Parses and checks ``command``'s flags in ``argv``.

  Help and ``--version`` print and exit 0. A bad flag value, an unknown
  flag, or an argument the command does not take ends the process with one
  ``error:`` line and exit status 2, before the command does any work.

  Returns:
    ``(parsed, arguments)``: the checked settings (see :class:`Command`)
    and the words after the flags.
  """
  # pylint: disable=import-outside-toplevel
  from absl import flags
  from maskmodels import __version__
  from maskmodels.cli import flags as flags_lib
  from maskmodels.errors import USAGE_EXIT_CODE, InputError
  wanted = _help_requested(argv[1:])
  if wanted:
    _print_help(command, wanted == "full")
    sys.exit(0)
  if "--version" in argv[1:]:
    print(f"maskmodels {__version__}")
    sys.exit(0)
  flags.FLAGS.unparse_flags()  # a command run again in one process
  try:
    remaining = flags.FLAGS(argv)
  except (flags.Error, ValueError) as error:
    _fail(_flag_error(error), USAGE_EXIT_CODE)
  arguments = remaining[1:]
  if arguments and not command.arguments:
    _fail(f"unexpected argument(s) {' '.join(arguments)}: "
          f"maskmodels-{command.name} takes only flags (--helpshort lists "
          f"them).", USAGE_EXIT_CODE)
  try:
    parsed = types.SimpleNamespace(
        own=flags_lib.settings_from_flags(command.settings()))
    if command.experiment:
      parsed.config = flags_lib.experiment_config_from_flags()
      parsed.runtime = flags_lib.runtime_config_from_flags()
    if command.check:
      command.check(parsed)
  except InputError as error:
    if flags.FLAGS.traceback:
      raise
    _fail(error, USAGE_EXIT_CODE)
  return parsed, arguments


def guarded(main, show_traceback=lambda: False):
  """``main`` with every error that is not a bug turned into one
  ``error:`` line and its exit status (``maskmodels.errors``), unless
  ``show_traceback()``: bad input, a setting, a damaged model directory, a
  diverged run, a full disk, a read-only folder, a file in a folder's
  place. Any other exception is a bug and keeps its traceback."""
  # pylint: disable=import-outside-toplevel
  from maskmodels.errors import (EnvironmentFault, InputError,
                                 environment_fault)

  def run_main(*args):
    try:
      return main(*args)
    except Exception as error:  # pylint: disable=broad-except
      if isinstance(error, (InputError, EnvironmentFault)):
        fault = error
      elif isinstance(error, (FileNotFoundError, FloatingPointError)):
        fault = InputError(str(error))
      else:
        fault = environment_fault(error)
      if fault is None or show_traceback():
        raise
      _fail(fault, getattr(fault, "exit_code", 1))

  return run_main


_DEFINED_FOR = []  # the command whose flags are defined in this process


def define_flags(command):
  """Defines ``command``'s flags (its own, the run's for training, the
  common ones): call after ``--import``'s modules are imported. Another
  command's flags, defined before in this process, go first."""
  from maskmodels.cli import flags as flags_lib  # pylint: disable=import-outside-toplevel
  _define_common_flags()
  if _DEFINED_FOR and _DEFINED_FOR[-1] != command.name:
    flags_lib.forget_settings_flags()
  _DEFINED_FOR[:] = [command.name]
  flags_lib.define_settings_flags(command.settings(),
                                  f"maskmodels-{command.name}")
  if command.experiment:
    flags_lib.define_runtime_flags()
    flags_lib.define_experiment_flags()


def run(command, argv=None):
  """Runs ``command`` as an absl app: ``--import``, its flags (checked
  before it starts), then its ``main`` (errors as one line; see
  :func:`guarded`). absl's ``--pdb_post_mortem`` works on bugs.

  Args:
    command: a :class:`Command`.
    argv: the command line (default ``sys.argv``); ends the process (or
      raises ``SystemExit``) with the command's exit status.
  """
  # pylint: disable=import-outside-toplevel
  from absl import app, flags
  from maskmodels.errors import USAGE_EXIT_CODE, SettingError
  argv = list(sys.argv if argv is None else argv)
  sys.modules["__main__"].__doc__ = command.doc
  _define_common_flags()
  try:
    import_plugins(plugin_modules(argv))
  except SettingError as error:
    _fail(error, USAGE_EXIT_CODE)
  define_flags(command)
  state = {}

  def parse_flags(argv):
    state["parsed"], state["arguments"] = parse(command, argv)
    return argv[:1]

  def main(_):
    return guarded(command.main, lambda: flags.FLAGS.traceback)(
        state["parsed"], state["arguments"])

  app.run(main, argv=argv, flags_parser=parse_flags)
