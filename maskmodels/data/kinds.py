"""Input kinds: what a model reads, and everything specific to it.

A run's input kind follows from its data (the reader marks the examples it
returns): ``text`` (strings, tokenized in the graph), ``words`` (lists of
words, one token each) and ``frames`` (float ``[time, channels]`` series,
whose mask comes from their lengths). A kind says what a run learns of its
training split (a vocabulary, per-channel statistics), saves and reloads
that as model-directory assets, which backbone reads it and with what, how
raw inputs become features (:class:`Featurizer`), and how a SavedModel takes
it. Research code registers a kind of its own with
:func:`maskmodels.register_input_kind`.

Features are a dict of tensors, ragged while a batch is built and padded
dense for the model; one of them, ``Featurizer.steps``, holds each
example's steps on its first axis (after the batch), so lengths and
buckets are counted in it.
"""

import numpy as np
import tensorflow as tf

from maskmodels.errors import InputError
from maskmodels.registry import INPUT_KINDS


class Featurizer(tf.Module):
  """Raw inputs -> model features, in the graph (the input pipeline,
  prediction and the SavedModel all run it).

  Attributes:
    kind: the input kind's name.
    steps: the feature whose per-example first axis is the time axis.
  """

  kind = None
  steps = None

  def inputs_dataset(self, examples):
    """A ``tf.data.Dataset`` of the raw input of each example, in order."""
    raise NotImplementedError

  @property
  def ragged_inputs(self):
    """Whether a batch of raw inputs is ragged (word lists, frames)."""
    return False

  def __call__(self, inputs, max_len=None, truncation="head"):
    """A batch of raw inputs -> ``{name: ragged [batch, (time), ...], or
    dense [batch, ...]}``, at most ``max_len`` steps each."""
    raise NotImplementedError

  def dense(self, inputs, max_len=None, truncation="head"):
    """:meth:`__call__` padded dense, for the model."""
    return {name: value.to_tensor() if isinstance(value, tf.RaggedTensor)
            else value for name, value in self(inputs, max_len,
                                               truncation).items()}

  def padding_values(self):
    """``{name: scalar}``: what pads each feature (and fills filler rows)."""
    raise NotImplementedError

  def padded_shapes(self, element_spec, static):
    """``{name: shape}`` of one example's features, padded in a batch:
    every axis to the batch's longest, unless ``static`` fixes one."""
    return {name: [None] * spec.shape.rank if spec.shape.rank else []
            for name, spec in element_spec.items()}

  def lengths(self, features):
    """int32 ``[batch]``: the real steps of each example of a dense
    batch."""
    raise NotImplementedError

  def crop(self, features, starts, lengths, keep_width=False):
    """A dense batch's features cut to windows of steps: ``lengths[i]``
    steps of example ``i`` from step ``starts[i]`` (int32 ``[batch]``),
    right-padded to the longest window (or, ``keep_width``, to the batch's
    width; training's ``--crop_fraction``; a kind that crops sets
    ``InputKind.crops``)."""
    raise NotImplementedError

  def example_lengths(self, examples, max_len=None, truncation="head"):
    """Steps of each example after truncation: int64 ``[n]``."""
    raise NotImplementedError

  def signatures(self):
    """``{signature name: (input signature, to_inputs)}``: what a
    SavedModel takes, and how its arguments become :meth:`__call__`'s
    inputs."""
    raise NotImplementedError


class InputKind:
  """One kind of model input. Subclass it and register an instance.

  Attributes:
    name: the kind's name (``config.json`` keeps it).
    backbone: the registered backbone that reads it unless ``--backbone``
      names another.
    requires: the modules a process that loads an exported model imports.
    describes: what one input is, for messages ("texts", "series").
    like: the built-in kind its model reads like (a task that reads
      ``frames`` reads a research kind whose ``like`` is ``"frames"``).
    crops: whether its featurizer cuts windows (``--crop_fraction``).
  """

  name = None
  like = None
  backbone = None
  requires = ("tensorflow",)
  describes = "inputs"
  crops = False

  def holds(self, inputs):
    """Whether a list of raw inputs is of this kind."""
    raise NotImplementedError

  def check(self, assets, examples):
    """Raises an InputError if ``examples`` cannot be read with the run's
    ``assets`` (another channel count...)."""
    del assets, examples

  def validate(self, config):
    """Raises a SettingError naming a setting this kind cannot work with."""
    del config

  def fit(self, data, train, verbose=1):
    """What a run learns of its training split's inputs (a vocabulary,
    statistics), in memory; nothing is written."""
    raise NotImplementedError

  def files(self, assets):
    """``{file name: bytes}``: the assets as the model directory keeps
    them (``config.json`` holds their checksums)."""
    raise NotImplementedError

  def load(self, data, read):
    """The assets back from the model directory: ``read(name)`` gives a
    file's bytes, checked against its checksum."""
    raise NotImplementedError

  def model_inputs(self, assets):
    """The keyword arguments the backbone is built with (a vocabulary
    size; channels and statistics)."""
    raise NotImplementedError

  def featurizer(self, data, assets, model):
    """The :class:`Featurizer` of a run's inputs for ``model``."""
    raise NotImplementedError

  def arguments(self, inputs):
    """``(signature name, {argument: tensor})``: a batch of raw inputs as a
    SavedModel's signature takes them (prediction from an export)."""
    raise NotImplementedError

  def describe(self, example):
    """One raw input as a prediction line shows it."""
    return str(example)

  def example_call(self, assets):
    """The arguments of a call of the SavedModel's ``serving_default``, as
    Python source (for the loading snippet)."""
    raise NotImplementedError


def kind_of(inputs, source=""):
  """The registered input kind that holds ``inputs`` (a list of raw
  inputs), or an InputError naming ``source``."""
  for name, kind in INPUT_KINDS.items():
    if kind.holds(inputs):
      return kind
  raise InputError(f"{source}: its inputs are of no registered input kind "
                   f"({', '.join(INPUT_KINDS.names())}).")


def clipped(lengths, max_len):
  """``lengths`` (int array) cut to ``max_len`` (None: uncut)."""
  lengths = np.asarray(lengths, np.int64)
  return lengths if max_len is None else np.minimum(lengths, max_len)
