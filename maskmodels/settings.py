"""Settings declared once: default, bounds, choices and help in one place.

A settings class is a dataclass of :func:`setting` fields deriving from
:class:`Settings`. Command-line flags are generated from it
(``maskmodels.flags``), a run saves it as JSON, and fields marked
``resume=True`` must match when a run resumes. Registered components (an
encoder, a pooling, a task) declare their own settings the same way, as a
nested ``Config`` class.

Field types: ``bool``, ``int``, ``float``, ``str``, ``list[int]``,
``list[str]`` and ``dict`` (JSON); a list setting also takes one item.
``int | None`` (or ``float | None``) is a number that may be unset, for a
setting whose default follows another ("unset: --max_len"): no number
stands for something else. :func:`describe` says what a setting allows,
for help and for errors.

:class:`Configurable` makes a Keras layer or model take its ``Config``'s
fields as keyword arguments, so a component's defaults live in its
``Config`` and nowhere else.
"""

import copy
import dataclasses
import inspect
import json
import types
import typing

from maskmodels.errors import InputError, SettingError
from maskmodels.registry import Registry


# Upper bounds of the settings that size a model's memory: a width
# (channels, units, an embedding) or a window far beyond any model a
# machine could hold, so a typo is an error before any weight is made.
MAX_WIDTH = 16_384
MAX_WINDOW = 1_024
MAX_BUCKETS = 1 << 27


def setting(default, help, *, lower=None, upper=None, above=None,  # pylint: disable=redefined-builtin
            below=None, choices=None, resume=False, flag=True,
            required=False, unset=""):
  """A dataclass field that is also a flag and a saved setting.

  Args:
    default: the default (lists and dicts are copied for each instance).
    help: one line for ``--help``.
    lower, upper: inclusive bounds of a number.
    above: an exclusive lower bound (a learning rate is above 0).
    below: an exclusive upper bound (a fraction held out is below 1).
    choices: allowed values: a tuple, or a :class:`Registry` (looked up when
      a config is built, so research code can register more); for a list,
      of each item.
    resume: a run resumes only with the same value (the setting shapes the
      checkpoint or what it means).
    flag: whether the command line can set it.
    required: the command needs a value (a string setting: not empty).
    unset: what an unset (``None``) value means, for help ("--max_len").
  """
  metadata = dict(help=help, lower=lower, upper=upper, above=above,
                  below=below, choices=choices, resume=resume, flag=flag,
                  required=required, unset=unset)
  if isinstance(default, (list, dict)):
    return dataclasses.field(default_factory=lambda: copy.deepcopy(default),
                             metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)


def field_kind(field):
  """``(kind, item)``: ``(list, int)`` for ``list[int]``, ``(int, None)``
  for ``int`` and for ``int | None``, else ``(type, None)``."""
  if typing.get_origin(field.type) is list:
    return list, typing.get_args(field.type)[0]
  if nullable(field):
    return next(t for t in typing.get_args(field.type)
                if t is not type(None)), None
  return field.type, None


def nullable(field):
  """Whether ``field`` may be unset (``int | None``)."""
  return isinstance(field.type, types.UnionType) and type(None) in (
      typing.get_args(field.type))


def _number(value):
  return str(value) if isinstance(value, int) else f"{value:g}"


def _bounds(meta):
  lower, upper, above, below = (
      None if meta.get(name) is None else _number(meta.get(name))
      for name in ("lower", "upper", "above", "below"))
  low = f"[{lower}" if lower is not None else (
      f"({above}" if above is not None else None)
  high = f"{upper}]" if upper is not None else (
      f"{below})" if below is not None else None)
  if low and high:
    return f" in {low}, {high}"
  if lower is not None:
    return f" >= {lower}"
  if above is not None:
    return f" > {above}"
  if upper is not None:
    return f" <= {upper}"
  if below is not None:
    return f" < {below}"
  return ""


def _in_bounds(meta, value):
  lower, upper, above, below = (meta.get(name) for name in (
      "lower", "upper", "above", "below"))
  return not ((lower is not None and value < lower) or
              (upper is not None and value > upper) or
              (above is not None and value <= above) or
              (below is not None and value >= below))


def choice_names(field):
  """The names a setting chooses from (a registry's, as registered now),
  or None."""
  choices = field.metadata.get("choices")
  if isinstance(choices, Registry):
    return choices.names()
  return None if choices is None else [str(c) for c in choices]


def describe(field, unset=True):
  """What ``field`` allows, in words: ``"an integer >= 1"``, ``"one of
  adam, sgd"``, ``"comma-separated integers >= 1"`` (and with ``unset``,
  what leaving it unset means)."""
  kind, item = field_kind(field)
  meta, names = field.metadata, choice_names(field)
  if kind is bool:
    return "true or false"
  if kind is dict:
    return "a JSON object"
  if kind is list:
    if names is not None:
      return "comma-separated names, each one of " + ", ".join(names)
    return ("comma-separated " + {int: "integers", float: "numbers"}.get(
        item, "strings") + _bounds(meta))
  if names is not None:
    text = "one of " + ", ".join(names)
  else:
    text = {int: "an integer", float: "a number", str: "a string"}[kind]
    text += _bounds(meta)
  if nullable(field) and unset:
    text += f", or unset ({meta.get('unset') or 'none'})"
  return text


def show(value):
  """A setting's value as a flag writes it."""
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, list):
    return ",".join(map(show, value))
  if isinstance(value, dict):
    return json.dumps(value)
  return "" if value is None else str(value)


def _converted(field, value):
  """``value`` as the field's type, or a SettingError naming both."""
  kind, item = field_kind(field)
  name = field.name

  def bad():
    return SettingError(f"--{name}={show(value)}: expected "
                        f"{describe(field)}.")

  if value is None and nullable(field):
    return None
  if kind is bool:
    if not isinstance(value, bool):
      raise bad()
    return value
  if kind in (int, float):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        kind is int and not float(value).is_integer()):
      raise bad()
    return kind(value)
  if kind is str:
    if not isinstance(value, str):
      raise bad()
    return value
  if kind is list:
    if isinstance(value, item) and not isinstance(value, bool):
      value = [value]  # one value for every item
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, item) and not isinstance(v, bool) for v in value):
      raise bad()
    return list(value)
  if kind is dict:
    if value is None:
      return {}
    if not isinstance(value, dict):
      raise bad()
    return dict(value)
  raise TypeError(f"Unsupported setting type {field.type} for {name}.")


def check_value(field, value):
  """Validates ``value`` for ``field``; returns it converted to its type.

  Raises:
    SettingError: naming the setting as its flag, the value, and what the
      setting allows.
  """
  value = _converted(field, value)
  meta = field.metadata
  if meta.get("required") and value in ("", None):
    raise SettingError(f"--{field.name} is required: "
                       f"{meta.get('help', '').rstrip('.')}.")
  if value is None:
    return value
  items = value if isinstance(value, list) else [value]  # bounds: each item
  names = choice_names(field)
  if (not all(_in_bounds(meta, v) for v in items
             if isinstance(v, (int, float))) or
      (names is not None and any(str(v) not in names for v in items))):
    raise SettingError(f"--{field.name}={show(value)}: expected "
                       f"{describe(field)}.")
  return value


class Settings:
  """Base of settings dataclasses: every field is validated when built."""

  def __post_init__(self):
    for field in dataclasses.fields(self):
      setattr(self, field.name, check_value(field, getattr(self, field.name)))

  @classmethod
  def from_dict(cls, values, source):
    """Builds from a dict; an unknown key is an InputError naming ``source``."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
      raise InputError(f"{source}: unknown setting(s) {', '.join(unknown)}; "
                       f"known: {', '.join(sorted(names))}.")
    return cls(**values)

  def to_dict(self):
    return dataclasses.asdict(self)


def component_settings(registry, name, values, source):
  """The full settings of registered component ``name`` as a dict.

  Args:
    registry: the component's registry (encoders, poolings, tasks).
    name: the chosen component.
    values: settings given for it (flags, JSON); each must be one of its
      settings: the fields of its ``Config`` class if it declares one, else
      its constructor's named parameters.
    source: what gave ``values``, for messages (``"--encoder_config"``).

  Returns:
    Every setting, defaults filled in: the ``Config`` class's fields
    (validated), else the constructor's parameters with plain defaults.
  """
  config_class = registry.config_class(name)
  defaults = {}
  if config_class is not None:
    accepted = [f.name for f in dataclasses.fields(config_class)]
  else:
    parameters = [p for p in inspect.signature(
        registry.get(name)).parameters.values() if p.kind in (
            p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    accepted = [p.name for p in parameters]
    defaults = {p.name: _plain(p.default) for p in parameters
                if _plain(p.default) is not None}
  unknown = sorted(set(values) - set(accepted))
  if unknown:
    raise SettingError(
        f"{source}: {', '.join(unknown)} {'is not a setting' if len(unknown) == 1 else 'are not settings'} "
        f"of {registry.kind} {name!r}; its settings: "
        f"{', '.join(accepted) or 'none'}.")
  if config_class is None:
    return dict(defaults, **values)
  return config_class(**values).to_dict()


def _plain(value):
  """``value`` if JSON can hold it as is (tuples as lists), else None."""
  if isinstance(value, (bool, int, float, str)):
    return value
  if isinstance(value, (list, tuple)) and all(
      isinstance(v, (bool, int, float, str)) for v in value):
    return list(value)
  return None


class Configurable:
  """Mixin: a Keras layer or model whose settings are its ``Config``.

  The constructor takes the ``Config`` fields by name (their defaults come
  from the ``Config`` only, so ``MyEncoder()`` is the component the
  command line builds by default); every other keyword goes on to Keras.
  The validated settings are ``self.settings``, and ``get_config`` holds
  them with Keras's own entries, so ``from_config`` rebuilds the same
  component. Put it first among the bases::

      class MyEncoder(mm.Configurable, mm.Encoder):
        @dataclasses.dataclass
        class Config(mm.Settings):
          width: int = mm.setting(32, "Channels.", lower=1, resume=True)
  """

  Config = None

  def __init__(self, *args, **kwargs):
    names = {f.name for f in dataclasses.fields(self.Config)}
    values = {name: kwargs.pop(name) for name in list(kwargs)
              if name in names}
    settings = self.Config(**values)
    super().__init__(*args, **kwargs)
    self.settings = settings

  def get_config(self):
    return dict(super().get_config(), **self.settings.to_dict())
