"""Name -> thing registries, so a flag or a config can pick a component.

Every lookup by name in maskmodels goes through a :class:`Registry`: the
parts of a model (backbones, encoders, word features, poolings, heads,
ensemble members), the models that join a backbone and a head, and tasks
(research code registers its own of each), the kinds of input a model reads
(token ids from text or words, frames), and
the fixed choices behind flags (tokenizers, data formats, optimizers,
schedules, precisions, strategies, normalizations).
"""

import functools
import sys
import types

import keras

from maskmodels.errors import InputError

# Every registry, in the order made: what research_modules searches.
ALL = []


class Registry:
  """A named collection of one kind of thing (encoders, tasks, readers...).

  Args:
    kind: what the entries are, for messages ("encoder").
    keras_serializable: whether ``register`` also makes a class
      Keras-serializable (for layers and models saved in ``.keras`` files).
  """

  def __init__(self, kind, keras_serializable=False):
    self.kind = kind
    self.keras_serializable = keras_serializable
    self._entries = {}
    ALL.append(self)

  def register(self, name):
    """Decorator: ``@ENCODERS.register("my_encoder")`` on a class or function.

    A registered class may declare its own settings as a dataclass named
    ``Config`` (built from :func:`maskmodels.config.setting`): each becomes a
    command-line flag, is saved in the run's config and, if so marked, is
    checked on resume.
    """
    if not isinstance(name, str) or not name:
      raise ValueError(f"A {self.kind} name must be a non-empty string, "
                       f"got {name!r}.")

    def decorator(entry):
      self.add(name, entry)
      if self.keras_serializable and isinstance(entry, type):
        return keras.saving.register_keras_serializable(
            package=f"maskmodels.{self.kind}")(entry)
      return entry

    return decorator

  def add(self, name, entry):
    """Registers ``entry`` (a class, function or value) under ``name``."""
    existing = self._entries.get(name)
    if existing is not None and existing is not entry:
      raise ValueError(f"{self.kind} name {name!r} is already registered.")
    self._entries[name] = entry
    return entry

  def get(self, name):
    """The entry registered as ``name``; an :class:`InputError` lists the
    registered names otherwise."""
    try:
      return self._entries[name]
    except (KeyError, TypeError):
      raise InputError(f"{self.kind} {name!r} is not registered; choose one "
                       f"of {', '.join(self.names())}.") from None

  def config_class(self, name):
    """The ``Config`` dataclass of the entry ``name`` declares, or None."""
    entry = self.get(name)
    while isinstance(entry, functools.partial):
      entry = entry.func
    return getattr(entry, "Config", None)

  def names(self):
    """Registered names, sorted."""
    return sorted(self._entries)

  def items(self):
    """``(name, entry)`` pairs, sorted by name."""
    return sorted(self._entries.items())

  def __contains__(self, name):
    return name in self._entries


def module_of(entry):
  """The module that defines a registered entry: a class's or a
  function's, a data format's read function's, an instance's class's."""
  while isinstance(entry, functools.partial):
    entry = entry.func
  if isinstance(entry, (type, types.FunctionType)):
    return entry.__module__
  read = getattr(entry, "read", None)
  if callable(read):
    return getattr(read, "__module__", None)
  return type(entry).__module__


def research_modules(names):
  """The modules outside maskmodels that registered any of ``names`` (the
  string values of a run's settings), sorted: what a command must
  ``--import`` to read the run back (``__main__`` cannot be; values
  registered as they are, such as strings, have no module of their own)."""
  found = set()
  for registry in ALL:
    for name in names:
      if isinstance(name, str) and name in registry:
        module = module_of(registry.get(name))
        if module and module.split(".")[0] not in (
            "maskmodels", "builtins", "__main__", "keras", "tensorflow"):
          found.add(module)
  return sorted(found)


def missing_modules(modules):
  """Those of ``modules`` this process has not imported."""
  return [m for m in modules if m not in sys.modules]


BACKBONES = Registry("backbone", keras_serializable=True)
ENCODERS = Registry("encoder", keras_serializable=True)
WORD_FEATURES = Registry("word feature", keras_serializable=True)
POOLINGS = Registry("pooling", keras_serializable=True)
HEADS = Registry("head", keras_serializable=True)
MODELS = Registry("model", keras_serializable=True)
MEMBERS = Registry("member", keras_serializable=True)
DECODERS = Registry("decoder", keras_serializable=True)
TASKS = Registry("task")
INPUT_KINDS = Registry("input kind")

register_backbone = BACKBONES.register
register_encoder = ENCODERS.register
register_word_feature = WORD_FEATURES.register
register_pooling = POOLINGS.register
register_head = HEADS.register
register_model = MODELS.register
register_member = MEMBERS.register
register_decoder = DECODERS.register
register_task = TASKS.register


def register_input_kind(name):
  """Decorator: registers an instance of an ``InputKind`` subclass (a kind
  is used as an object, not built by a flag)."""
  def decorator(cls):
    INPUT_KINDS.add(name, cls())
    return cls
  return decorator
