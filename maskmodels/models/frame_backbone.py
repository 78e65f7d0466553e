"""The frame backbone: frames + lengths -> mask -> standardized frames ->
encoder -> steps + mask.

It returns the same dict as the token backbone (``steps``, ``mask``, the
input steps' mask ``token_mask`` and the ``order`` that took the input to
the right-padded layout), so every head and task reads frames as it reads
tokens: a label per series, or a label per frame.
"""

import dataclasses

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.layers.base import ExplicitMask
from maskmodels.models.backbone import component
from maskmodels.registry import ENCODERS, register_backbone
from maskmodels.settings import MAX_WIDTH, Configurable, Settings, setting


STANDARDIZATIONS = ("training", "series", "none")


@register_backbone("frames")
class FrameBackbone(Configurable, ExplicitMask, keras.layers.Layer):
  """Per-channel standardization, an optional projection, a registered
  encoder; the mask comes from lengths (or a given mask), never from a pad
  value.

  Pad steps may hold anything (0.0, random values, NaN): they are replaced
  by zeros after standardizing, with ``tf.where``, so nothing of them
  reaches a real step's output or receives a gradient.

  Args:
    channels: the channels of a frame.
    channel_mean, channel_std: per-channel statistics of the training
      split's real frames (``maskmodels.data.frames``); None: 0 and 1.
    encoder: a registered encoder name, a Keras layer, or a serialized dict.
    encoder_config: the named encoder's settings.
    frame_projection, standardize: the :class:`Config` settings.

  Call args:
    inputs: a dict with ``"frames"`` float ``[batch, time, channels]`` and
      ``"lengths"`` int ``[batch]`` (the first ``lengths`` frames of each
      row are real), or ``"mask"`` bool ``[batch, time]`` instead of
      lengths (any layout); or a bare frames tensor, every frame real.

  Returns:
    ``{"steps": [batch, time', dim], "mask": bool [batch, time'],
    "token_mask": bool [batch, time], "order": int32 [batch, time]}``.
  """

  input_kind = "frames"

  @dataclasses.dataclass
  class Config(Settings):
    """The frame backbone's own settings."""
    frame_projection: int | None = setting(
        None, "frames: project each standardized frame to this width "
        "(ReLU) before the encoder.", lower=1, upper=MAX_WIDTH,
        resume=True, unset="no projection")
    standardize: str = setting(
        "training", "frames: standardize each channel with the training "
        "split's mean and standard deviation; or each series by its own "
        "(over its real frames), its log standard deviation and its mean "
        "joining the channels (so its scale is kept); or not at all.",
        choices=STANDARDIZATIONS, resume=True)

  # What maskmodels-tune searches of it by default.
  search_space = {"standardize": {"choices": ["training", "series"]}}

  def __init__(self, channels, channel_mean=None, channel_std=None,
               encoder="conv_gru", encoder_config=None, **kwargs):
    super().__init__(**kwargs)
    if not isinstance(channels, int) or channels < 1:
      raise ValueError(f"channels must be an int >= 1, got {channels!r}.")
    self.channels = channels
    self.channel_mean = list(channel_mean or [0.0] * channels)
    self.channel_std = list(channel_std or [1.0] * channels)
    if len(self.channel_mean) != channels or len(self.channel_std) != channels:
      raise ValueError(f"channel_mean and channel_std need {channels} values "
                       f"each, got {len(self.channel_mean)} and "
                       f"{len(self.channel_std)}.")
    width = self.settings.frame_projection
    self.projection = (keras.layers.Dense(
        width, activation="relu", dtype=self.dtype_policy,
        name="frame_projection") if width else None)
    self.encoder = component(encoder, encoder_config, ENCODERS,
                             self.dtype_policy)

  def build(self, input_shape=None):
    if not self.built:
      self.call(self.dummy_features(1, 1), training=False)
      self.built = True

  def dummy_features(self, batch, time):
    """Features of ``[batch, time]`` real frames, to build weights with."""
    return {"frames": tf.ones([batch, time, self.channels]),
            "lengths": tf.fill([batch], time)}

  def pad_rows(self):
    """No embedding rows: the checker reads the gradient at pad frames."""
    return []

  def call(self, inputs, training=None):
    if not isinstance(inputs, dict):
      inputs = {"frames": inputs}
    frames = tf.convert_to_tensor(inputs["frames"])
    time = tf.shape(frames)[1]
    if "mask" in inputs:
      mask = tf.cast(inputs["mask"], tf.bool)
    elif "lengths" in inputs:
      mask = tf.sequence_mask(inputs["lengths"], time)
    else:
      mask = masking.full_mask(frames)
    order = masking.right_padding_permutation(mask)
    frames = masking.reorder(frames, order)
    mask = masking.reorder(mask, order)
    x = self.standardized(frames, mask)
    x = masking.apply_mask(tf.cast(x, self.compute_dtype), mask)
    if self.projection is not None:
      x = masking.apply_mask(self.projection(x), mask)
    steps, steps_mask = self.encoder(x, mask=mask, training=training)
    return {"steps": steps, "mask": steps_mask, "token_mask": mask,
            "order": order}

  def standardized(self, frames, mask):
    """float32 frames ``[batch, time, channels']`` as ``standardize``
    says (pad frames may hold anything: they are not read)."""
    x = masking.apply_mask(tf.cast(frames, tf.float32), mask)
    mean = tf.constant(self.channel_mean, tf.float32)
    std = tf.constant(self.channel_std, tf.float32)
    if self.settings.standardize == "training":
      return (x - mean) / std
    if self.settings.standardize == "none":
      return x
    # Each series by its own real frames (zeros for one of none), and its
    # scale and level, on the training split's scale, as channels.
    own_mean = masking.masked_mean(x, mask)[:, tf.newaxis]
    own_std = tf.sqrt(masking.masked_mean(tf.square(x - own_mean), mask)[
        :, tf.newaxis] + 1e-6)
    time = tf.shape(x)[1]
    return tf.concat([
        (x - own_mean) / own_std,
        tf.repeat(tf.math.log(own_std / std + 1e-3), time, axis=1),
        tf.repeat((own_mean - mean) / std, time, axis=1)], axis=-1)

  def get_config(self):
    return dict(
        super().get_config(), channels=self.channels,
        channel_mean=self.channel_mean, channel_std=self.channel_std,
        encoder=keras.saving.serialize_keras_object(self.encoder))
