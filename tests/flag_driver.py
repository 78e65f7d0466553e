"""Runs each command with each bad flag value, in one process (see
test_bad_flags.py): ``python flag_driver.py <{command: context} JSON>``.

Prints one JSON line: per command, every case's arguments, exit status and
stderr (file descriptor 2, as a user sees it), and the flags it defines.
The commands define flags of the same names with other defaults, so each
command's flags are removed before the next one's are defined.
"""

import importlib
import json
import os
import sys
import tempfile

from maskmodels import cli

cli.quiet_start()

# pylint: disable=wrong-import-position
from maskmodels.cli import sections  # noqa: E402


def bad_values(flag, field):
  """Bad values of a typed flag: the wrong type, out of bounds, an unknown
  name."""
  # pylint: disable=import-outside-toplevel
  from maskmodels.settings import choice_names, field_kind
  if field is None:  # a common flag
    return {"import": ["no_such_module_xyz"], "flagfile": ["/no/such.flags"]
            }.get(flag.name, ["maybe"])
  kind, item = field_kind(field)
  meta, names = field.metadata, choice_names(field)
  if kind is bool:
    return ["maybe"]
  if kind is dict:
    return ["{", "[1]"]
  if names is not None:
    return ["no_such_name"]
  if kind in (int, float) or (kind is list and item in (int, float)):
    number = item if kind is list else kind
    values = ["x"]
    if meta.get("lower") is not None:
      values.append(str(number(meta["lower"]) - 1))
    if meta.get("above") is not None:
      values.append(str(number(meta["above"])))
    if meta.get("upper") is not None:
      values.append(str(number(meta["upper"]) + 1))
    return values
  return []  # a string: the context gives its cases


def main():
  report = {}
  for command_name, context in json.loads(sys.argv[1]).items():
    command = importlib.import_module(
        f"maskmodels.commands.{command_name}").COMMAND
    # define_flags replaces the previous command's flags with this one's.
    report[command_name] = run_cases(command, command_name, context)
  print(json.dumps(report))


def run_cases(command, command_name, context):
  """Every bad value of every flag of ``command``: the results."""
  cli.define_flags(command)
  from maskmodels.cli import flags as flags_lib  # pylint: disable=import-outside-toplevel
  base = context["base"]
  cases = []
  for section in sections.sections(command):
    for flag in section.flags:
      field = flags_lib.declared_field(flag.name)
      for value in bad_values(flag, field):
        cases.append((flag.name, value, section.chooses +
                      [f"--{flag.name}={value}"]))
  for name, value, extra in context["strings"]:
    cases.append((name, value, extra + [f"--{name}={value}"]))
  results = []
  for index, (name, value, argv) in enumerate(cases):
    argv = [a.replace("{case}", str(index)) for a in base + argv]
    with tempfile.TemporaryFile() as captured:
      sys.stdout.flush()
      sys.stderr.flush()
      saved = os.dup(2)
      os.dup2(captured.fileno(), 2)
      try:
        cli.run(command, [command_name] + argv)
        code = 0
      except SystemExit as stop:
        code = stop.code or 0
      finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
      captured.seek(0)
      stderr = captured.read().decode("utf-8", "replace")
    results.append(dict(flag=name, value=value, argv=argv, code=code,
                        stderr=stderr, index=index))
  defined = [flag.name for section in sections.sections(command)
             for flag in section.flags]
  return {"results": results, "flags": defined}


if __name__ == "__main__":
  main()
