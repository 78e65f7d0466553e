"""Label specs: what a task's labels are, and everything about batching them.

A task declares its labels with one of these (``Task.labels``). The data
pipeline and the run ask the spec, never the shape's name: how a split's
encoded labels become a dataset, whether they are cut with the inputs'
steps (and with a random crop), how a batch pads them and to what shape
with static shapes, whether they must align with the inputs' steps (the
spec checks it before a run writes anything), and the weight of each loss
item. Research code subclasses :class:`LabelSpec` for a label shape of its
own (``docs/extending.md``: several labels per example).

Shapes: a per-example label is ``[]`` or a fixed ``[...]``
(:class:`LabelSpec`); a per-step label ``[time]`` (:class:`StepLabels`); a
target sequence of its own length ``[references, length]``
(:class:`SequenceLabels`). In a batch each gets a leading ``[batch]`` axis.

The input side is an input kind (``maskmodels.data.kinds``).
"""

import dataclasses
import importlib.resources

import numpy as np
import tensorflow as tf

from maskmodels import masking
from maskmodels.errors import InputError


@dataclasses.dataclass(frozen=True)
class LabelSpec:
  """One label per example: a number, or an array of one fixed shape.

  Attributes:
    dtype: ``"int32"`` (class indices) or ``"float32"`` (targets).
    pad: the label of filler rows (and pad steps); it never counts.
  """
  dtype: str = "int32"
  pad: float = 0

  # One output per input step (a head or member must give per-step
  # outputs exactly when its task's labels are per step).
  per_step = False

  @property
  def per_token(self):
    """:attr:`per_step` (its earlier name)."""
    return self.per_step

  # ---- a split's labels ---------------------------------------------------

  def check(self, examples, steps):
    """Raises an :class:`InputError` naming the example (its file and
    line) whose encoded label cannot go with its input.

    Args:
      examples: ``readers.Examples`` whose labels a task encoded.
      steps: a function returning the steps of every input, int ``[n]``
        (called only by a spec that needs them).
    """
    del examples, steps

  def dataset(self, labels):
    """A ``tf.data.Dataset`` of the encoded labels of a split, in order."""
    return tf.data.Dataset.from_tensor_slices(tf.constant(
        np.asarray(labels), tf.as_dtype(self.dtype)))

  @property
  def ragged(self):
    """Whether labels differ in shape between examples (a batch of them is
    built ragged, then padded)."""
    return False

  def static_shape(self, splits):
    """The shape every batch pads a label to with static shapes (TPU), from
    the encoded labels of ``splits`` (a list of ``Examples``); None: each
    batch's own."""
    del splits
    return None

  # ---- batching -------------------------------------------------------------

  def truncate(self, labels, max_len, truncation):
    """A batch of labels as the inputs are cut to ``max_len`` steps."""
    del max_len, truncation
    return labels

  def densify(self, label):
    """One example's label, dense (a ragged one padded with :attr:`pad`)."""
    if isinstance(label, tf.RaggedTensor):
      return label.to_tensor(tf.cast(self.pad, label.dtype))
    return label

  def padded_shape(self, element_spec, static_shape=None):
    """The padded shape of one label in a batch: every axis to the batch's
    longest, or ``static_shape``."""
    if static_shape is not None:
      return list(static_shape)
    return [None] * element_spec.shape.rank

  def crop(self, labels, starts, lengths, keep_width):
    """A batch of labels as the inputs are cut to windows of steps
    (``masking.crop_steps``); a per-example label stays."""
    del starts, lengths, keep_width
    return labels

  def evaluation_length(self, max_len):
    """Steps of an input evaluation and serving keep (None: every step),
    given the run's ``max_len``."""
    return max_len

  # ---- loss items -------------------------------------------------------------

  def item_weights(self, labels, weights):
    """The weight of every loss item: ``weights`` float32 ``[batch]`` (0
    for filler rows) as they are, one item per example."""
    del labels
    return weights

  def per_item(self, values, weights):
    """``(values, weights)`` with one row per loss item, for Keras
    metrics (per example: as they are)."""
    return values, weights


@dataclasses.dataclass(frozen=True)
class StepLabels(LabelSpec):
  """One label per input step (a word's tag, a frame's label): ``[time]``,
  aligned with the steps (checked), cut with them, :attr:`pad` at pad
  steps; evaluation reads every step."""
  pad: float = -1

  per_step = True

  def check(self, examples, steps):
    counts = steps()
    for index, (label, count) in enumerate(zip(examples.labels, counts)):
      if len(label) != count:
        raise InputError(f"{examples.where(index)}: {len(label)} labels for "
                         f"{count} steps; expected one label per step.")

  def dataset(self, labels):
    values = [np.asarray(label) for label in labels]
    return tf.data.Dataset.from_tensor_slices(tf.RaggedTensor.from_row_lengths(
        tf.constant(np.concatenate(values) if values else [],
                    tf.as_dtype(self.dtype)), [len(v) for v in values]))

  @property
  def ragged(self):
    return True

  def truncate(self, labels, max_len, truncation):
    return masking.truncate_steps(labels, max_len, truncation)

  def crop(self, labels, starts, lengths, keep_width):
    return masking.crop_steps(labels, starts, lengths, self.pad,
                              keep_width=keep_width)

  def evaluation_length(self, max_len):
    del max_len
    return None  # each step gets its label

  def item_weights(self, labels, weights):
    real = tf.not_equal(labels, tf.cast(self.pad, labels.dtype))
    return weights[:, tf.newaxis] * tf.cast(real, weights.dtype)

  def per_item(self, values, weights):
    """``[batch, time, ...]`` -> ``[batch * time, ...]``: a Keras metric
    reduces a ``[batch, time]`` update to one value per row, divided by
    the row's width, before it weighs rows, so batches of different widths
    would weigh their steps differently. Flat, every real step counts once
    and alike."""
    values = tf.reshape(values, tf.concat([[-1], tf.shape(values)[2:]], 0))
    return values, tf.reshape(weights, [-1])


@dataclasses.dataclass(frozen=True)
class SequenceLabels(LabelSpec):
  """A target sequence of its own length: int ids ``[references,
  length]`` (one row per acceptable target, each :attr:`pad`-padded to
  the longest; a batch pads both axes), never cut. A reference's length is
  its ids before the first :attr:`pad`, so :attr:`pad` is no target's
  id."""

  def dataset(self, labels):
    return tf.data.Dataset.from_tensor_slices(sequence_targets(
        labels, tf.as_dtype(self.dtype)))

  @property
  def ragged(self):
    return True

  def static_shape(self, splits):
    """``(references, length)``: the most of any label of ``splits``."""
    shapes = [np.shape(label) for split in splits for label in split.labels]
    return tuple(int(max([s[axis] for s in shapes] + [1])) for axis in (0, 1))


def sequence_targets(labels, dtype=tf.int32):
  """Per-example target arrays ``[references, length]`` -> one ragged
  tensor ``[examples, (references), length_i]`` (each example keeps its
  own width)."""
  rows = [np.asarray(label).reshape(len(label), -1) if len(label) else
          np.zeros([0, 0]) for label in labels]
  flat = np.concatenate([r.reshape(-1) for r in rows]) if rows else []
  return tf.RaggedTensor.from_nested_row_lengths(
      tf.constant(np.asarray(flat), dtype),
      [[r.shape[0] for r in rows],
       [r.shape[1] for r in rows for _ in range(r.shape[0])]])


@dataclasses.dataclass(frozen=True)
class DefaultData:
  """Data shipped with the package: a task's ``--data_format=default``, or
  a format's data when no ``--data_path`` is given.

  Attributes:
    data_format: the reader's name (``"jsonl"``, ``"conllu"``).
    files: ``{split: file name}`` inside ``maskmodels/data``.
    description: one line for messages.
  """
  data_format: str
  files: dict
  description: str = ""

  def path(self, split):
    """A context manager yielding the local path of ``split``'s file."""
    if split not in self.files:
      from maskmodels.data.readers import UnknownSplit  # pylint: disable=import-outside-toplevel,cyclic-import
      raise UnknownSplit(f"the embedded data has no split {split!r}; "
                         f"expected one of {', '.join(self.files)}.")
    return importlib.resources.as_file(importlib.resources.files(
        "maskmodels.data").joinpath(self.files[split]))
