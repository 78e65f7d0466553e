"""Name -> class registries, so a flag or a config can pick a component."""

import keras


class Registry:
  """A named collection of classes of one kind (encoders, poolings, models).

  Registering also makes the class Keras-serializable, so models that use it
  save to and load from ``.keras`` files.
  """

  def __init__(self, kind):
    self.kind = kind
    self._classes = {}

  def register(self, name):
    """Class decorator: ``@ENCODERS.register("my_encoder")``."""
    if not isinstance(name, str) or not name:
      raise ValueError(f"A {self.kind} name must be a non-empty string, "
                       f"got {name!r}.")

    def decorator(cls):
      self.add(name, cls)
      return keras.saving.register_keras_serializable(
          package=f"maskmodels.{self.kind}")(cls)

    return decorator

  def add(self, name, factory):
    """Registers a factory (any callable returning a layer) under ``name``."""
    existing = self._classes.get(name)
    if existing is not None and existing is not factory:
      raise ValueError(f"{self.kind} name {name!r} is already registered.")
    self._classes[name] = factory
    return factory

  def get(self, name):
    """The class or factory registered as ``name``; a clear error lists the known names."""
    try:
      return self._classes[name]
    except KeyError:
      raise ValueError(f"Unknown {self.kind} {name!r}; registered: "
                       f"{', '.join(self.names())}.") from None

  def names(self):
    """Registered names, sorted."""
    return sorted(self._classes)

  def __contains__(self, name):
    return name in self._classes


ENCODERS = Registry("encoder")
POOLINGS = Registry("pooling")
MODELS = Registry("model")

register_encoder = ENCODERS.register
register_pooling = POOLINGS.register
register_model = MODELS.register
