"""Settings declared once: default, bounds, choices and help in one place.

A settings class is a dataclass of :func:`setting` fields deriving from
:class:`Settings`. Command-line flags are generated from it
(``maskmodels.flags``), a run saves it as JSON, and fields marked
``resume=True`` must match when a run resumes. Registered components (an
encoder, a pooling, a task) declare their own settings the same way, as a
nested ``Config`` class.

Field types: ``bool``, ``int``, ``float``, ``str``, ``list[int]``,
``list[str]`` and ``dict`` (JSON); a list setting also takes one item.

:class:`Configurable` makes a Keras layer or model take its ``Config``'s
fields as keyword arguments, so a component's defaults live in its
``Config`` and nowhere else.
"""

import copy
import dataclasses
import inspect
import typing

from maskmodels.errors import InputError
from maskmodels.registry import Registry


def setting(default, help, *, lower=None, upper=None, choices=None,  # pylint: disable=redefined-builtin
            resume=False, flag=True):
  """A dataclass field that is also a flag and a saved setting.

  Args:
    default: the default (lists and dicts are copied for each instance).
    help: one line for ``--help``.
    lower, upper: inclusive bounds of a number.
    choices: allowed values: a tuple, or a :class:`Registry` (looked up when
      a config is built, so research code can register more).
    resume: a run resumes only with the same value (the setting shapes the
      checkpoint or what it means).
    flag: whether the command line can set it.
  """
  metadata = dict(help=help, lower=lower, upper=upper, choices=choices,
                  resume=resume, flag=flag)
  if isinstance(default, (list, dict)):
    return dataclasses.field(default_factory=lambda: copy.deepcopy(default),
                             metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)


def field_kind(field):
  """``(kind, item)``: ``("list", int)`` for ``list[int]``, else the type."""
  if typing.get_origin(field.type) is list:
    return list, typing.get_args(field.type)[0]
  return field.type, None


def _converted(field, value):
  """``value`` as the field's type, or an InputError naming both."""
  kind, item = field_kind(field)
  name = field.name

  def bad(expected):
    return InputError(f"{name}={value!r}: expected {expected}.")

  if kind is bool:
    if not isinstance(value, bool):
      raise bad("true or false")
    return value
  if kind in (int, float):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        kind is int and not float(value).is_integer()):
      raise bad("an integer" if kind is int else "a number")
    return kind(value)
  if kind is str:
    if not isinstance(value, str):
      raise bad("a string")
    return value
  if kind is list:
    if isinstance(value, item) and not isinstance(value, bool):
      value = [value]  # one value for every item
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, item) and not isinstance(v, bool) for v in value):
      raise bad(f"a list of {item.__name__}")
    return list(value)
  if kind is dict:
    if value is None:
      return {}
    if not isinstance(value, dict):
      raise bad("a JSON object")
    return dict(value)
  raise TypeError(f"Unsupported setting type {field.type} for {name}.")


def check_value(field, value):
  """Validates ``value`` for ``field``; returns it converted to its type."""
  value = _converted(field, value)
  meta, name = field.metadata, field.name
  items = value if isinstance(value, list) else [value]  # bounds: each item
  if meta.get("lower") is not None and any(v < meta["lower"] for v in items):
    raise InputError(f"{name}={value!r}: must be >= {meta['lower']}.")
  if meta.get("upper") is not None and any(v > meta["upper"] for v in items):
    raise InputError(f"{name}={value!r}: must be <= {meta['upper']}.")
  choices = meta.get("choices")
  if isinstance(choices, Registry):
    choices.get(value)  # raises, naming the registered choices
  elif choices is not None and value not in choices:
    raise InputError(f"{name}={value!r}: choose one of "
                     f"{', '.join(map(str, choices))}.")
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
    raise InputError(
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
