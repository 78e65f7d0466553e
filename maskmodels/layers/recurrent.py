"""Masked GRU, uni- or bidirectional, over a right-padded layout."""

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.layers.base import ExplicitMask


@keras.saving.register_keras_serializable(package="maskmodels")
class MaskedGRU(ExplicitMask, keras.layers.Layer):
  """A Keras GRU that receives its mask explicitly.

  Input is packed to the right-padded layout first (a no-op permutation when
  it already is), so left- and right-padded input give the same result and, on
  a GPU, Keras's cuDNN kernel stays eligible: it is used only for strictly
  right-padded masks. Pad steps are zeroed before the GRU reads them.

  Call args:
    inputs: float ``[batch, time, channels]``.
    mask: bool ``[batch, time]``, True = real step; None = all real.

  Returns:
    With ``return_sequences``: ``(outputs, mask)``, outputs
    ``[batch, time, units * directions]`` right-padded with pad steps zeroed,
    and the right-padded bool mask. Otherwise the final state
    ``[batch, units * directions]``: the state after the last real step (and,
    backwards, after the first); zeros for an empty sequence.
  """

  def __init__(self, units, bidirectional=False, return_sequences=False,
               dropout=0.0, recurrent_dropout=0.0, **kwargs):
    super().__init__(**kwargs)
    if not isinstance(units, int) or units < 1:
      raise ValueError(f"units must be a positive int, got {units!r}.")
    self.units = units
    self.bidirectional = bidirectional
    self.return_sequences = return_sequences
    self.dropout = dropout
    self.recurrent_dropout = recurrent_dropout
    gru = keras.layers.GRU(units, return_sequences=return_sequences,
                           dropout=dropout, recurrent_dropout=recurrent_dropout,
                           dtype=self.dtype_policy, name="gru")
    self.rnn = (keras.layers.Bidirectional(gru, merge_mode="concat",
                                           dtype=self.dtype_policy,
                                           name="bidirectional")
                if bidirectional else gru)

  @property
  def output_dim(self):
    """Channels of the output: ``units`` times the number of directions."""
    return self.units * (2 if self.bidirectional else 1)

  def build(self, input_shape):
    self.rnn.build((None, None, input_shape[-1]))

  def call(self, inputs, mask=None, training=None):
    mask = masking.ensure_mask(inputs, mask)
    inputs, mask, _ = masking.to_right_padded(inputs, mask)
    # Keras's GRU needs at least one step; an empty time axis (a short batch
    # after a "valid" conv) gets one pad step, sliced off again below.
    time = tf.shape(inputs)[1]
    extra = tf.maximum(0, 1 - time)
    padded_mask = tf.pad(mask, [[0, 0], [0, extra]])
    outputs = self.rnn(
        tf.pad(masking.apply_mask(inputs, mask), [[0, 0], [0, extra], [0, 0]]),
        mask=padded_mask, training=training)
    if self.return_sequences:
      return masking.apply_mask(outputs[:, :time], mask), mask
    return outputs

  def get_config(self):
    config = super().get_config()
    config.update(units=self.units, bidirectional=self.bidirectional,
                  return_sequences=self.return_sequences, dropout=self.dropout,
                  recurrent_dropout=self.recurrent_dropout)
    return config
