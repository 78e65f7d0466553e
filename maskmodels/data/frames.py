"""Frame inputs: sequences of measurements, float ``[time, channels]``.

Time series, audio features, sensor readings: each example is an array of
frames, and its mask comes from its length, never from a pad value (0.0 is
a measurement like any other). What is specific to frames lives here: the
per-channel statistics a run learns from its training split's real frames
(kept as ``channel_statistics.json``, checksummed like a vocabulary), the
featurizer (``"frames"`` float32 ``[batch, time, channels]`` and
``"lengths"`` int32 ``[batch]``), and the SavedModel signature that takes
frames and lengths. The readers are in ``maskmodels.data.frame_readers``.
"""

import dataclasses
import json

import numpy as np
import tensorflow as tf
from absl import logging

from maskmodels import masking
from maskmodels.data import kinds
from maskmodels.errors import DamagedFile, InputError, SettingError
from maskmodels.registry import register_input_kind

STATISTICS_FILE = "channel_statistics.json"


@dataclasses.dataclass(frozen=True)
class ChannelStatistics:
  """Per-channel mean and standard deviation of real training frames.

  Attributes:
    mean, std: one float per channel (a constant channel's std is 1).
    frames: the frames they were counted over.
  """
  mean: tuple
  std: tuple
  frames: int

  @property
  def channels(self):
    return len(self.mean)

  @classmethod
  def of(cls, series):
    """Statistics of a list of ``[time, channels]`` arrays: every frame of
    every series, and nothing else (no padding)."""
    frames = np.concatenate([np.asarray(s, np.float64) for s in series], 0)
    std = frames.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return cls(tuple(float(v) for v in frames.mean(axis=0)),
               tuple(float(v) for v in std), int(frames.shape[0]))

  def to_bytes(self):
    return json.dumps({"channels": self.channels, "mean": list(self.mean),
                       "std": list(self.std), "frames": self.frames},
                      indent=1).encode("utf-8")

  @classmethod
  def from_bytes(cls, data, source):
    try:
      values = json.loads(data.decode("utf-8"))
      statistics = cls(tuple(map(float, values["mean"])),
                       tuple(map(float, values["std"])), int(values["frames"]))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
            ValueError) as error:
      raise DamagedFile(f"{source} is corrupt ({error}); restore the file "
                        f"the run wrote, or retrain in a new --model_dir."
                        ) from None
    if len(statistics.std) != statistics.channels or not all(
        s > 0 for s in statistics.std):
      raise DamagedFile(f"{source} is corrupt: a mean and a positive std "
                        f"per channel expected.")
    return statistics


def truncated(series, max_len, truncation="head"):
  """The frames of ``series`` ``[time, channels]`` a run keeps: at most
  ``max_len`` (None: all), the head, the tail or both ends, as
  ``maskmodels.data.text.truncate_tokens`` keeps them in the graph."""
  if max_len is None or len(series) <= max_len:
    return series
  head = {"head": max_len, "tail": 0, "both": max_len // 2}[truncation]
  return np.concatenate([series[:head], series[len(series) - (max_len -
                                                              head):]], 0)


class FrameFeaturizer(kinds.Featurizer):
  """Frames ``[batch, (time), channels]`` -> ``{"frames", "lengths"}``.

  Args:
    channels: the channels of every frame.
  """

  kind = "frames"
  steps = "frames"

  def __init__(self, channels):
    super().__init__(name="frame_featurizer")
    self.channels = int(channels)

  @property
  def ragged_inputs(self):
    return True

  def inputs_dataset(self, examples):
    series = [np.asarray(s, np.float32).reshape(-1, self.channels)
              for s in examples.texts]
    values = (np.concatenate(series, 0) if series else
              np.zeros([0, self.channels], np.float32))
    return tf.data.Dataset.from_tensor_slices(tf.RaggedTensor.from_row_lengths(
        values, [len(s) for s in series]))

  def __call__(self, inputs, max_len=None, truncation="head"):
    """Ragged frames ``[batch, (time), channels]`` -> ``{"frames": ragged
    float32 [batch, (time), channels], "lengths": int32 [batch]}``, at
    most ``max_len`` frames each."""
    frames = tf.cast(inputs, tf.float32)
    if max_len is not None:
      frames = masking.truncate_steps(frames, max_len, truncation)
    return {"frames": frames,
            kinds.LENGTHS: tf.cast(frames.row_lengths(), tf.int32)}

  def padding_values(self):
    return {"frames": tf.constant(0.0), kinds.LENGTHS: tf.constant(0)}

  def padded_shapes(self, element_spec, static):
    del element_spec, static
    return {"frames": [None, self.channels], kinds.LENGTHS: []}

  def example_lengths(self, examples, max_len=None, truncation="head"):
    return kinds.clipped([len(s) for s in examples.texts], max_len)

  def crop(self, features, starts, lengths, keep_width=False):
    return {"frames": masking.crop_steps(features["frames"], starts, lengths,
                                         keep_width=keep_width),
            kinds.LENGTHS: lengths}

  def signatures(self):
    return {"serving_default": (
        [tf.TensorSpec([None, None, self.channels], tf.float32,
                       name="frames"),
         tf.TensorSpec([None], tf.int32, name="lengths")],
        self.checked_request)}

  def checked_request(self, frames, lengths):
    """A request's ``frames`` float32 ``[batch, time, channels]`` and
    ``lengths`` int32 ``[batch]`` -> ragged frames, or an
    ``InvalidArgumentError`` naming what is wrong with them: the channel
    count, one length per row of frames, each length in ``[0, time]``, and
    every value of a real frame finite (pad frames may hold anything).
    A bad request gets no answer rather than one that looks valid."""
    rows, time = tf.shape(frames)[0], tf.shape(frames)[1]
    shape_checks = [
        tf.debugging.assert_equal(
            tf.shape(frames)[2], self.channels,
            message=f"frames must have {self.channels} channels"),
        tf.debugging.assert_equal(
            tf.shape(lengths)[0], rows, message="lengths must have one "
            "entry per row of frames"),
        tf.debugging.assert_non_negative(lengths,
                                         message="lengths must be >= 0"),
        tf.debugging.assert_less_equal(
            lengths, time, message="a length exceeds the time axis of "
            "frames")]
    with tf.control_dependencies(shape_checks):
      real = tf.sequence_mask(lengths, time)
      bad = tf.reduce_any(tf.logical_and(real, tf.reduce_any(
          tf.logical_not(tf.math.is_finite(frames)), axis=-1)), axis=1)
      finite = tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [
          "frames hold NaN or Inf in a real frame (within its length) of "
          "rows", tf.where(bad)[:, 0], "; expected finite values (pad "
          "frames past a length may hold anything)"], summarize=20)
    with tf.control_dependencies([finite]):
      return tf.RaggedTensor.from_tensor(frames, lengths=lengths)


# The most steps a frame run's default budget trains (see FramesKind.budget).
MOST_STEPS = 3000


@register_input_kind("frames")
class FramesKind(kinds.InputKind):
  """Float series ``[time, channels]``; the mask comes from their lengths.

  The run learns each channel's mean and standard deviation over the real
  frames of its training split (the frame backbone standardizes with them);
  the model directory keeps them in ``channel_statistics.json``.
  """

  name = like = "frames"
  backbone = "frames"
  requires = ("tensorflow",)
  describes = "series"
  crops = True

  def budget(self, steps_per_epoch, examples):
    """A series problem often holds a few dozen series, a handful of
    steps a pass: 100 passes (as the frame flagfiles and the common deep
    recipes train), fewer when that passes ``MOST_STEPS`` steps, never
    fewer than 3."""
    del examples
    passes = max(3, min(100, MOST_STEPS // max(steps_per_epoch, 1)))
    return passes * steps_per_epoch, (
        f"{passes} passes over the training data (100 on a small problem, "
        f"at most about {MOST_STEPS:,} steps, at least 3 passes)")

  def holds(self, inputs):
    return all(isinstance(value, np.ndarray) and value.ndim == 2 and
               value.dtype.kind == "f" for value in inputs)

  def validate(self, config):
    model = config.model
    if model.word_features:
      raise SettingError(f"--word_features={','.join(model.word_features)}: "
                         f"word features read words; this run's inputs are "
                         f"frames. Expected none.")
    if model.members:
      raise SettingError(f"--members={','.join(model.members)}: these "
                         f"members read token ids; this run's inputs are "
                         f"frames. Expected none.")

  def check(self, assets, examples):
    """Every series of ``examples`` has the training data's channels."""
    channels = assets.channels
    for index, series in enumerate(examples.texts):
      if series.shape[1] != channels:
        raise InputError(
            f"{examples.source}: series {index} has {series.shape[1]} "
            f"channels; the training data has {channels}.")

  def fit(self, data, train, verbose=1):
    """The channel statistics of the training frames a run reads: each
    series cut to ``--max_len`` frames as ``--truncation`` says."""
    del verbose
    return ChannelStatistics.of([truncated(s, data.max_len, data.truncation)
                                 for s in train.texts])

  def files(self, assets):
    return {STATISTICS_FILE: assets.to_bytes()}

  def load(self, data, read):
    return ChannelStatistics.from_bytes(read(STATISTICS_FILE),
                                        STATISTICS_FILE)

  def model_inputs(self, assets):
    return {"channels": assets.channels, "channel_mean": list(assets.mean),
            "channel_std": list(assets.std)}

  def featurizer(self, config, assets):
    return FrameFeaturizer(assets.channels)

  def report_cuts(self, splits, featurizer, max_len, truncation):
    """Says how many series of each split ``--max_len`` cuts (a series is
    read whole unless it is given)."""
    if max_len is None:
      return
    for split in splits:
      whole = featurizer.example_lengths(split)
      if (whole > max_len).any():
        logging.warning("%d of the %d series of %s are longer than "
                        "--max_len=%d frames: %s kept (--truncation).",
                        int((whole > max_len).sum()), len(split),
                        split.source, max_len, {
                            "head": "their first", "tail": "their last",
                            "both": "their first and last"}[truncation] +
                        f" {max_len}")

  def arguments(self, inputs, channels=None):
    """As the base's; ``channels`` sizes a batch of no series."""
    lengths = [len(s) for s in inputs]
    channels = inputs[0].shape[1] if inputs else channels or 1
    frames = np.zeros([len(inputs), max(lengths + [0]), channels], np.float32)
    for row, series in enumerate(inputs):
      frames[row, :len(series)] = series
    return "serving_default", {"frames": tf.constant(frames),
                               "lengths": tf.constant(lengths, tf.int32)}

  def describe(self, example):
    return f"a series of {len(example)} frames"

  def example_call(self, assets):
    return (f"frames=tf.zeros([1, 20, {assets.channels}]), "
            f"lengths=tf.constant([20])")
