"""Masked GRU, uni- or bidirectional, over a right-padded layout."""

import keras
import tensorflow as tf
from keras.src import backend as keras_backend

from maskmodels import masking
from maskmodels.layers.base import ExplicitMask
from maskmodels.layers.dropout import Dropout
from maskmodels.layers.gru_kernel import gru_sequences

KERNELS = ("fused", "keras")


@keras.saving.register_keras_serializable(package="maskmodels")
class MaskedGRU(ExplicitMask, keras.layers.Layer):
  """A Keras GRU that receives its mask explicitly.

  Keras's GRU reads its input packed to the right-padded layout, so left-
  and right-padded input give the same result and, on a GPU, Keras's cuDNN
  kernel stays eligible: it takes strictly right-padded masks only and
  rejects a row with no real step, so an empty row reads one zero step whose
  outputs are then zeroed. Pad steps are zeroed before the GRU reads them.

  Where Keras would not pick cuDNN (a CPU, XLA, export), the ``"fused"``
  kernel runs the recurrence (``maskmodels.layers.gru_kernel``): the same
  arithmetic and weights as Keras's GRU, over the real steps only, read
  where the mask puts them (packed, rows sorted by length; right-padded and
  padded under XLA), with the input projection of all steps in matrix
  products outside the loop, which carries only ``h·U``.

  Args:
    units: GRU units per direction.
    bidirectional: also read the sequence backwards (outputs concatenated).
    return_sequences: return every step's output, not the final state.
    dropout: rate of the GRU's input dropout: one mask per sequence and
      channel, shared by all its steps, and different on every replica.
    recurrent_dropout: Keras's recurrent dropout (disables cuDNN).
    use_cudnn: Keras's ``use_cudnn`` (``"auto"``, True or False); see also
      :func:`set_use_cudnn`.
    kernel: ``"fused"`` (the CPU kernel above wherever Keras would not use
      cuDNN) or ``"keras"`` (Keras's own choice: its generic loop on a CPU).
      ``recurrent_dropout`` always runs Keras's loop.

  Call args:
    inputs: float ``[batch, time, channels]``.
    mask: bool ``[batch, time]``, True = real step; None = all real.

  Returns:
    With ``return_sequences``: ``(outputs, mask)``, outputs
    ``[batch, time, units * directions]`` in the input's own layout (each
    real step's output where that step was, pad steps zeroed), and the
    input's mask. Otherwise the final state ``[batch, units * directions]``:
    the state after the last real step (and, backwards, after the first);
    zeros for an empty sequence.
  """

  def __init__(self, units, bidirectional=False, return_sequences=False,
               dropout=0.0, recurrent_dropout=0.0, use_cudnn="auto",
               kernel="fused", **kwargs):
    super().__init__(**kwargs)
    if not isinstance(units, int) or units < 1:
      raise ValueError(f"units must be a positive int, got {units!r}.")
    if not 0.0 <= dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    if kernel not in KERNELS:
      raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}.")
    self.units = units
    self.kernel = kernel
    self.bidirectional = bidirectional
    self.return_sequences = return_sequences
    self.dropout = dropout
    self.recurrent_dropout = recurrent_dropout
    self.use_cudnn = use_cudnn
    self.input_dropout = Dropout(dropout, noise_shape=(None, 1, None),
                                 dtype=self.dtype_policy, name="input_dropout")
    gru = keras.layers.GRU(units, return_sequences=return_sequences,
                           recurrent_dropout=recurrent_dropout,
                           use_cudnn=use_cudnn, dtype=self.dtype_policy,
                           name="gru")
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
    if not self._keras_kernel():  # reads real steps in any layout
      sequences, final = gru_sequences(
          self.input_dropout(inputs, training=training), mask, self._cells())
      return (sequences, mask) if self.return_sequences else final
    packed, packed_mask, perm = masking.to_right_padded(inputs, mask)
    x = self.input_dropout(masking.apply_mask(packed, packed_mask),
                           training=training)
    outputs = self._keras_call(x, packed_mask, training)
    if self.return_sequences:
      outputs = masking.apply_mask(outputs, packed_mask)
      return masking.restore_order(outputs, perm), mask
    return outputs

  def _keras_call(self, x, packed_mask, training):
    """Keras's GRU over right-padded ``x``: at least one step, and one real
    step per row, so an empty row reads a zero first step (cuDNN asserts
    against all-pad rows inside a graph) and its outputs are zeroed."""
    time = tf.shape(x)[1]
    x = tf.pad(x, [[0, 0], [0, tf.maximum(0, 1 - time)], [0, 0]])
    empty = tf.logical_not(tf.reduce_any(packed_mask, axis=1))
    first_step = tf.equal(tf.range(tf.shape(x)[1]), 0)
    kernel_mask = tf.logical_or(
        tf.pad(packed_mask, [[0, 0], [0, tf.shape(x)[1] - time]]),
        tf.logical_and(empty[:, tf.newaxis], first_step[tf.newaxis, :]))
    outputs = self.rnn(x, mask=kernel_mask, training=training)
    if self.return_sequences:
      return outputs[:, :time]
    return tf.where(empty[:, tf.newaxis], tf.zeros((), outputs.dtype), outputs)

  def _cells(self):
    """The Keras GRU cells, forward first."""
    if self.bidirectional:
      return [self.rnn.forward_layer.cell, self.rnn.backward_layer.cell]
    return [self.rnn.cell]

  def _keras_kernel(self):
    """Whether Keras's GRU runs: asked for, recurrent dropout, or cuDNN
    (which Keras picks when it traces on a GPU host, and which is faster
    there)."""
    if self.kernel == "keras" or self.recurrent_dropout:
      return True
    use_cudnn = self.rnn.forward_layer.use_cudnn if self.bidirectional else (
        self.rnn.use_cudnn)
    cell = self._cells()[0]
    return use_cudnn in (True, "auto") and keras_backend.cudnn_ok(
        cell.activation, cell.recurrent_activation, False, cell.use_bias,
        reset_after=cell.reset_after)

  def get_config(self):
    config = super().get_config()
    config.update(units=self.units, bidirectional=self.bidirectional,
                  return_sequences=self.return_sequences, dropout=self.dropout,
                  recurrent_dropout=self.recurrent_dropout,
                  use_cudnn=self.use_cudnn, kernel=self.kernel)
    return config


def set_use_cudnn(model, use_cudnn):
  """Sets ``use_cudnn`` on every Keras GRU inside ``model``.

  Keras chooses the cuDNN kernel when it traces a GRU on a host with a GPU.
  Pass False before tracing a function that XLA compiles (XLA cannot compile
  ``CudnnRNNV3``) or that is exported to serve on hosts without a GPU.

  Args:
    model: a Keras layer or model.
    use_cudnn: ``"auto"``, True or False.

  Returns:
    The number of GRU layers changed.
  """
  grus = [layer for layer in model._flatten_layers(include_self=True)  # pylint: disable=protected-access
          if isinstance(layer, (keras.layers.GRU, MaskedGRU))]
  for layer in grus:
    layer.use_cudnn = use_cudnn
  return len(grus)
