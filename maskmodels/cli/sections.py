"""A command's flags as titled sections of settings, and their help.

Every flag is a :func:`~maskmodels.settings.setting` of some settings class:
the command's own (``maskmodels.commands.settings``), for training each
``ExperimentConfig`` group and each registered component's ``Config``, the
runtime settings, and the flags every command shares. :func:`sections`
lists them in order; :func:`help_text` writes them for ``--helpshort`` and
:func:`markdown` for ``docs/cli.md``, each flag with its default, what it
allows (bounds, or the registered names to choose from, research code's
included) and its help.
"""

import dataclasses
import textwrap

from maskmodels.settings import describe, nullable, show


@dataclasses.dataclass(frozen=True)
class Flag:
  """One flag as help shows it."""
  name: str
  default: str
  allowed: str
  help: str
  boolean: bool = False
  required: bool = False

  @property
  def usage(self):
    """``--name`` as it is typed (``--[no]name`` for a boolean)."""
    return f"--[no]{self.name}" if self.boolean else f"--{self.name}"


@dataclasses.dataclass
class Section:
  """A titled group of flags.

  Attributes:
    title: the section's title ("Data", "encoder conv_gru").
    flags: its :class:`Flag` entries.
    note: one line under the title (what the section is for, or the
      choice that makes its settings count).
    chooses: the flags that make its settings count (``["--members=
      naive_bayes"]``; none for a component chosen by default).
  """
  title: str
  flags: list
  note: str = ""
  chooses: list = dataclasses.field(default_factory=list)


def flag_of(field):
  """The :class:`Flag` of a settings dataclass field."""
  meta = field.metadata
  if field.default is not dataclasses.MISSING:
    default = field.default
  else:
    default = field.default_factory()
  if meta.get("required") and default in ("", None):
    shown = "required"
  elif default is None and nullable(field):
    shown = f"unset: {meta.get('unset') or 'none'}"
  else:
    shown = show(default)
    shown = repr(shown) if shown == "" else shown
  return Flag(field.name, shown, describe(field, unset=False),
              meta.get("help", ""), boolean=field.type is bool,
              required=bool(meta.get("required")))


def settings_section(title, settings_class, note=""):
  """The section of a settings class's command-line settings."""
  return Section(title, [flag_of(f) for f in dataclasses.fields(
      settings_class) if f.metadata.get("flag", True)], note)


# The flags every command takes (defined by maskmodels.cli.app, and by absl).
COMMON = Section("Every command", [
    Flag("import", "''", "comma-separated module names", "Python modules to "
         "import first (research code that registers encoders, tasks, data "
         "formats...): from the working directory or installed."),
    Flag("traceback", "false", "true or false", "Show the traceback of an "
         "error too.", boolean=True),
    Flag("flagfile", "''", "a file of flags, one a line", "Read flags from "
         "a file (configs/*.flags)."),
    Flag("version", "false", "true or false", "Print the version and exit.",
         boolean=True),
    Flag("helpshort", "false", "true or false", "This help: the command's "
         "flags, by section.", boolean=True),
    Flag("helpfull", "false", "true or false", "This help, then every other "
         "flag the process defines (absl's, TensorFlow's).", boolean=True),
])


def component_sections():
  """One section per registered component's settings (``Config``),
  registered research components included. A setting several components
  declare (a base ``Config``'s) shows once, in a section naming them all."""
  # pylint: disable=import-outside-toplevel
  from maskmodels.training import config as config_lib
  owners, fields = {}, {}
  for _, choice, _, registry in config_lib.COMPONENTS:
    for name, _ in registry.items():
      config_class = registry.config_class(name)
      for field in dataclasses.fields(config_class) if config_class else ():
        if field.metadata.get("flag", True):
          owners.setdefault(field.name, []).append((registry, choice, name))
          fields.setdefault(field.name, field)
  groups = {}
  for field_name, owned in owners.items():
    groups.setdefault(tuple(owned), []).append(fields[field_name])
  sections = []
  for owned, group in groups.items():
    registry, choice, _ = owned[0]
    names = [name for _, _, name in owned]
    default = _default_choice(choice)
    sections.append(Section(
        f"{registry.kind} {', '.join(names)}", [flag_of(f) for f in group],
        "With " + " or ".join(f"--{choice}={name}" for name in names) +
        (" (the default)" if default in names else "") +
        "; the component's own settings.",
        [] if default in names else [f"--{choice}={names[0]}"]))
  return sections


def _default_choice(choice):
  # pylint: disable=import-outside-toplevel
  from maskmodels.training import config as config_lib
  for group in config_lib.GROUPS.values():
    for field in dataclasses.fields(group):
      if field.name == choice and isinstance(field.default, str):
        return field.default
  return None


def experiment_sections():
  """The sections of a training run's settings, in the order data flows."""
  # pylint: disable=import-outside-toplevel
  from maskmodels.training import config as config_lib

  def first_line(cls):
    return (cls.__doc__ or "").strip().splitlines()[0]

  return ([settings_section("Data", config_lib.DataConfig,
                            first_line(config_lib.DataConfig)),
           settings_section("Model", config_lib.ModelConfig,
                            first_line(config_lib.ModelConfig))] +
          component_sections() +
          [settings_section("Training", config_lib.TrainConfig,
                            first_line(config_lib.TrainConfig)),
           settings_section("Checkpoints", config_lib.CheckpointConfig,
                            first_line(config_lib.CheckpointConfig)),
           settings_section("Runtime", config_lib.RuntimeConfig,
                            first_line(config_lib.RuntimeConfig))])


def sections(command):
  """Every section of ``command``'s flags: its own, the run's (for
  training), then the common ones."""
  own = settings_section(f"maskmodels-{command.name}", command.settings(),
                         "The command's own flags.")
  return ([own] + (experiment_sections() if command.experiment else []) +
          [COMMON])


def _wrap(text, indent):
  return textwrap.fill(text, 79, initial_indent=indent,
                       subsequent_indent=indent)


def help_text(command, version):
  """``--helpshort``: the command's usage, then its flags by section."""
  lines = [command.doc.strip(), "",
           f"maskmodels {version}. Flags by section (--helpfull also lists "
           f"absl's and TensorFlow's):"]
  for section in sections(command):
    lines += ["", section.title + (f": {section.note}" if section.note
                                   else "")]
    for flag in section.flags:
      if flag.default == "required" or flag.default.startswith("unset"):
        lines.append(f"  {flag.usage}  [{flag.default}; {flag.allowed}]")
      else:
        lines.append(f"  {flag.usage}={flag.default}  [{flag.allowed}]")
      if flag.help:
        lines.append(_wrap(flag.help, "      "))
  return "\n".join(lines) + "\n"


def _cell(text):
  return text.replace("|", "\\|").replace("\n", " ")


def markdown(command):
  """The command's flags as a Markdown section of ``docs/cli.md``."""
  lines = [f"## maskmodels-{command.name}", "",
           command.doc.strip().splitlines()[0], ""]
  for section in sections(command):
    lines += [f"### {section.title}", ""]
    if section.note:
      lines += [section.note, ""]
    lines += ["| flag | default | allowed | what it does |",
              "| --- | --- | --- | --- |"]
    lines += [f"| `{flag.usage}` | {_cell(flag.default)} | "
              f"{_cell(flag.allowed)} | {_cell(flag.help)} |"
              for flag in section.flags]
    lines.append("")
  return "\n".join(lines)
