"""Input kinds: what a model reads, and every decision about it.

A run's input kind follows from its data (the reader's examples are of a
registered kind): ``text`` (strings, tokenized in the graph), ``words``
(lists of words, one token each) and ``frames`` (float ``[time,
channels]`` series, whose mask comes from their lengths). A kind owns
everything specific to its inputs, so nothing else in maskmodels names it:
the steps a run keeps by default (:attr:`InputKind.default_max_len`) and
whether it crops, how it reports inputs it cuts, what a run learns of its
training split (a vocabulary, per-channel statistics), saved and reloaded
as model-directory assets, which backbone reads it and with what, how raw
inputs become features (:class:`Featurizer`, which also counts real and
padded steps), and how a SavedModel takes it. Research code registers a
kind of its own with :func:`maskmodels.register_input_kind`.

Features are a dict of tensors, ragged while a batch is built and padded
dense for the model. Every featurizer emits :data:`LENGTHS`, int32
``[batch]``: the real steps of each example (what buckets, token budgets
and the padded-step fraction count); one feature, ``Featurizer.steps``,
holds each example's steps on its first axis (after the batch).
"""

import numpy as np
import tensorflow as tf

from maskmodels.errors import InputError
from maskmodels.registry import INPUT_KINDS

# The feature every featurizer emits: int32 [batch], each example's real
# steps (buckets and padding statistics count them).
LENGTHS = "lengths"


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
    dense [batch, ...]}``, at most ``max_len`` steps each, with
    :data:`LENGTHS` int32 ``[batch]``."""
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
    del static
    return {name: [None] * spec.shape.rank if spec.shape.rank else []
            for name, spec in element_spec.items()}

  def lengths(self, features):
    """int32 ``[batch]``: the real steps of each example of a dense
    batch (:data:`LENGTHS`)."""
    return tf.cast(features[LENGTHS], tf.int32)

  def padding_stats(self, features):
    """``(real steps, all steps)`` int64 scalars of a dense batch: what the
    padded-step fraction counts (filler rows are all padding)."""
    real = tf.reduce_sum(tf.cast(self.lengths(features), tf.int64))
    shape = tf.shape(features[self.steps], out_type=tf.int64)
    return real, shape[0] * shape[1]

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
    inputs (a check of a request goes there: a bad one is an
    ``InvalidArgumentError`` naming what is wrong)."""
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
    default_max_len: the steps a training example keeps unless
      ``--max_len`` says (None: every step).
    crops: whether its featurizer cuts windows (``--crop_fraction``).
  """

  name = None
  like = None
  backbone = None
  requires = ("tensorflow",)
  describes = "inputs"
  default_max_len = None
  crops = False

  def holds(self, inputs):
    """Whether a list of raw inputs is of this kind."""
    raise NotImplementedError

  def accepts(self, inputs):
    """Whether a model of this kind predicts for ``inputs`` (a list of raw
    inputs: its own kind, or what its ``arguments`` turn into it)."""
    return self.holds(inputs)

  def budget(self, steps_per_epoch, examples):
    """``(steps, why)``: how long a run trains when no flag says
    (``--train_steps``, ``--epochs``), for a training split of
    ``examples`` in ``steps_per_epoch`` batches; ``why`` says so in
    words. Here 3 passes."""
    del examples
    return 3 * steps_per_epoch, "3 passes over the training data"

  def max_len(self, data):
    """Steps a training example keeps (None: every step): ``--max_len``,
    else :attr:`default_max_len`."""
    return data.max_len if data.max_len is not None else self.default_max_len

  def check(self, assets, examples):
    """Raises an InputError if ``examples`` cannot be read with the run's
    ``assets`` (another channel count...)."""
    del assets, examples

  def validate(self, config):
    """Raises a SettingError naming a setting this kind cannot work with."""
    del config

  def report_cuts(self, splits, featurizer, max_len, truncation):
    """Says (a warning) how many inputs of ``splits`` (``Examples``) the
    run cuts to ``max_len`` steps, when a user would want to know: here
    nothing (texts are cut by design)."""
    del splits, featurizer, max_len, truncation

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

  def featurizer(self, config, assets):
    """The :class:`Featurizer` of a run's inputs: from the run's
    ``ExperimentConfig`` (its data settings, and the model's word
    features) and its ``assets``; it does not depend on the model's
    weights."""
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
  for _, kind in INPUT_KINDS.items():
    if kind.holds(inputs):
      return kind
  raise InputError(f"{source}: its inputs are of no registered input kind "
                   f"({', '.join(INPUT_KINDS.names())}).")


def clipped(lengths, max_len):
  """``lengths`` (int array) cut to ``max_len`` (None: uncut)."""
  lengths = np.asarray(lengths, np.int64)
  return lengths if max_len is None else np.minimum(lengths, max_len)
