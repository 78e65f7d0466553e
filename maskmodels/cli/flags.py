"""absl flags defined from settings classes, and read back as settings.

Every setting of a command (its own, and for training every
:class:`~maskmodels.training.ExperimentConfig` setting and every
registered component's ``Config`` setting) is a flag of the same name.
absl checks only a flag's type while parsing; bounds and choices are the
setting's own, checked when the parsed values become settings
(:func:`experiment_config_from_flags`, :func:`settings_from_flags`), so
every bad value gets the same message: the flag, the value, and what the
setting allows. Research modules given to ``--import`` are imported before
the flags are defined, so their components' settings are flags too.
"""

import dataclasses
import json

from absl import flags

from maskmodels.errors import SettingError
from maskmodels.settings import describe, field_kind
from maskmodels.training import config as config_lib

FLAGS = flags.FLAGS
# name -> (field, owner) of every flag defined from a settings class.
_declared = {}


def _default(field):
  if field.default is not dataclasses.MISSING:
    return field.default
  return field.default_factory()


def _define(field):
  """Defines the absl flag of one setting."""
  name, meta = field.name, field.metadata
  default, (kind, _) = _default(field), field_kind(field)
  text = meta.get("help", "")
  if kind is bool:
    flags.DEFINE_bool(name, default, text)
  elif kind is int:
    flags.DEFINE_integer(name, default, text)
  elif kind is float:
    flags.DEFINE_float(name, default, text)
  elif kind is list:
    flags.DEFINE_list(name, [str(v) for v in default], text)
  elif kind is dict:
    flags.DEFINE_string(name, json.dumps(default) if default else "",
                        text + " (JSON object)")
  else:
    flags.DEFINE_string(name, default, text)


def forget_settings_flags():
  """Removes every flag defined from a settings class: a process that runs
  one command after another (tests, research code) gets the flags of the
  one it runs (commands share flag names with other meanings:
  ``--model_dir``'s default, ``--data_format``'s)."""
  for name in list(_declared):
    if name in FLAGS:
      delattr(FLAGS, name)
  _declared.clear()


def declared_field(name):
  """The settings field behind flag ``name``, or None."""
  known = _declared.get(name)
  return known[0] if known else None


def define_settings_flags(settings_class, owner=None):
  """Defines a flag for every flag-settable field of ``settings_class``.

  A name already defined by another settings class must mean the same
  setting (same type and default); anything else is an error naming both.
  """
  for field in dataclasses.fields(settings_class):
    if not field.metadata.get("flag", True):
      continue
    if field.name in FLAGS:
      known = _declared.get(field.name)
      if known and (known[0].type, _default(known[0])) == (
          field.type, _default(field)):
        continue
      raise ValueError(
          f"Setting {field.name!r} of {owner or settings_class.__name__} "
          f"clashes with flag --{field.name} "
          f"({known[1] if known else 'defined elsewhere'}); rename one.")
    _define(field)
    _declared[field.name] = (field, owner or settings_class.__name__)


def define_experiment_flags():
  """Flags of every ExperimentConfig setting and every registered
  component's settings (call after research modules are imported)."""
  for settings_class in config_lib.GROUPS.values():
    define_settings_flags(settings_class)
  for _, _, _, registry in config_lib.COMPONENTS:
    for name, _ in registry.items():
      config_class = registry.config_class(name)
      if config_class is not None:
        define_settings_flags(config_class, f"{registry.kind} {name!r}")


def define_runtime_flags():
  """Flags of the RuntimeConfig (strategy, devices)."""
  define_settings_flags(config_lib.RuntimeConfig)


def _value(field):
  """A flag's value as the setting's type; a SettingError if it is not."""
  flag = FLAGS[field.name]
  kind, item = field_kind(field)
  if kind is list:
    try:
      return [item(v) for v in flag.value]
    except ValueError:
      raise SettingError(f"--{field.name}={','.join(flag.value)}: expected "
                         f"{describe(field)}.") from None
  if kind is dict:
    if not flag.value:
      return {}
    try:
      value = json.loads(flag.value)
    except json.JSONDecodeError as error:
      raise SettingError(f"--{field.name}={flag.value}: not valid JSON "
                         f"({error}); expected a JSON object.") from None
    if not isinstance(value, dict):
      raise SettingError(f"--{field.name}={flag.value}: expected a JSON "
                         f"object.")
    return value
  return flag.value


def experiment_config_from_flags():
  """The ExperimentConfig the parsed flags describe."""
  values, explicit = {}, set()
  owners = config_lib.component_flag_owners()
  for name, (field, _) in _declared.items():
    if name not in config_lib.leaf_fields() and name not in owners:
      continue
    if FLAGS[name].present:
      explicit.add(name)
    # A component's settings come from its own defaults unless set here.
    if name in config_lib.leaf_fields() or FLAGS[name].present:
      values[name] = _value(field)
  return config_lib.resolve(values, explicit)


def settings_from_flags(settings_class):
  """An instance of ``settings_class`` from the parsed flags of its fields
  (validated: a bad value is a SettingError)."""
  return settings_class(**{
      field.name: _value(field) for field in dataclasses.fields(
          settings_class) if field.metadata.get("flag", True)})


def runtime_config_from_flags():
  """The RuntimeConfig the parsed flags describe."""
  return settings_from_flags(config_lib.RuntimeConfig)
