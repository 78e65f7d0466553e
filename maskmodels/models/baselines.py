"""A deliberately padding-unaware encoder, for comparisons only."""

import keras
import tensorflow as tf

from maskmodels.models.encoders import Encoder
from maskmodels.registry import register_encoder


@register_encoder("unmasked_conv_gru")
class UnmaskedConvGRUEncoder(Encoder):
  """The textbook mistake, kept as a baseline: plain Keras Conv1D -> GRU.

  It ignores the mask it is given (as a Keras Conv1D drops the implicit
  mask), so the GRU reads padding as data, and it returns an all-real mask.
  maskmodels' padding-invariance checker fails on it; use it only to measure
  what masking buys.

  Args:
    conv_filters, kernel_size, pool_size, gru_units, bidirectional, dropout:
      as ``ConvGRUEncoder``.
  """

  def __init__(self, conv_filters=(128,), kernel_size=5, pool_size=1,
               gru_units=(128,), bidirectional=True, dropout=0.0, **kwargs):
    super().__init__(**kwargs)
    self.config = dict(conv_filters=list(conv_filters),
                       kernel_size=kernel_size, pool_size=pool_size,
                       gru_units=list(gru_units), bidirectional=bidirectional,
                       dropout=dropout)
    self.stack = []
    for filters in conv_filters:
      self.stack.append(keras.layers.Conv1D(filters, kernel_size,
                                            padding="same", activation="relu"))
      if pool_size > 1:
        self.stack.append(keras.layers.MaxPooling1D(pool_size,
                                                    padding="same"))
    for units in gru_units:
      gru = keras.layers.GRU(units, return_sequences=True, dropout=dropout)
      self.stack.append(keras.layers.Bidirectional(gru) if bidirectional
                        else gru)

  def call(self, inputs, mask=None, training=None):
    x = inputs
    for layer in self.stack:
      x = layer(x, training=training)
    return x, tf.ones(tf.shape(x)[:2], tf.bool)

  def get_config(self):
    return dict(self.config, name=self.name)
