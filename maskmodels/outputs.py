"""ModelOutputs: what every maskmodels model returns.

One contract between a model and what reads it (the task's loss, metrics
and served outputs, an ensemble, serving): a named tuple, so it crosses
``tf.function``, ``tf.nest`` and ``tf.distribute`` like a tuple of
tensors.

* ``outputs``: the model's main output: float32 logits ``[batch,
  classes]`` (a label per example), ``[batch, time, classes]`` (per step,
  in the input's own layout; CTC's per encoder step), decoded token ids
  ``[batch, time]`` (a decoder), or what a research model gives;
* ``mask``: bool ``[batch, time]``, True at the real steps of a per-step
  ``outputs`` (None for one output per example);
* ``extras``: a dict of anything else (an ensemble's ``members``, each a
  ``ModelOutputs``; a decoder's ``scores``), empty if nothing.
"""

import collections

import tensorflow as tf


class ModelOutputs(collections.namedtuple("ModelOutputs",
                                          ["outputs", "mask", "extras"])):
  """What a model returns: ``(outputs, mask, extras)`` (module docstring).

  Build one with ``ModelOutputs(outputs, mask=None, extras=None)``.
  """

  __slots__ = ()

  def __new__(cls, outputs, mask=None, extras=None):
    return super().__new__(cls, outputs, mask, dict(extras or {}))

  @property
  def lengths(self):
    """int32 ``[batch]``: the real steps of a per-step output (from its
    mask)."""
    return tf.reduce_sum(tf.cast(self.mask, tf.int32), axis=1)

  @property
  def members(self):
    """``{name: ModelOutputs}`` of an ensemble's members, or None."""
    return self.extras.get("members")


def model_outputs(value):
  """``value`` as :class:`ModelOutputs`: itself, or a bare tensor (a
  research head's or member's output) as the outputs of one."""
  if isinstance(value, ModelOutputs):
    return value
  return ModelOutputs(value)
