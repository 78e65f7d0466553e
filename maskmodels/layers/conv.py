"""Masked 1-D convolution and max-pooling along time."""

import keras
import tensorflow as tf

from maskmodels import cpu, masking
from maskmodels.layers.base import ExplicitMask


@tf.custom_gradient
def conv1d_tapwise(x, kernel):
  """A "valid", stride-1, undilated 1-D convolution whose filter gradient
  is one matrix product per kernel tap (``x[:, j:j+T]^T · dy``).

  The same outputs and gradients as ``tf.nn.conv1d``, for CPUs where
  oneDNN's AVX2 backward-filter kernel is slow (about 1.6x the products'
  time at the IMDb model's shapes: ``benchmarks/conv_gradient.py``).

  Args:
    x: float ``[batch, time, channels]``, ``time >= kernel_size``.
    kernel: ``[kernel_size, channels, filters]``, of ``x``'s dtype.

  Returns:
    ``[batch, time - kernel_size + 1, filters]``.
  """
  y = tf.nn.conv1d(x, kernel, 1, "VALID")

  def gradient(dy):
    return (input_gradient(tf.shape(x), kernel, dy),
            filter_gradient_per_tap(x, dy, kernel.shape[0]))

  return y, gradient


def input_gradient(x_shape, kernel, dy):
  """The input gradient of a "valid", stride-1, undilated 1-D
  convolution: TensorFlow's own kernel (``Conv2DBackpropInput``).

  Args:
    x_shape: int ``[3]``, the input's shape; kernel: ``[kernel_size,
    channels, filters]``; dy: ``[batch, time - kernel_size + 1, filters]``.

  Returns:
    ``[batch, time, channels]``.
  """
  return tf.raw_ops.Conv2DBackpropInput(
      input_sizes=tf.stack([x_shape[0], 1, x_shape[1], x_shape[2]]),
      filter=kernel[tf.newaxis], out_backprop=dy[:, tf.newaxis],
      strides=[1, 1, 1, 1], padding="VALID")[:, 0]


def filter_gradient_per_tap(x, dy, kernel_size):
  """The filter gradient of a "valid", stride-1, undilated 1-D
  convolution, one matrix product per tap: ``x[:, j:j+T]^T · dy``.

  Args:
    x: ``[batch, time, channels]``; dy: ``[batch, time - kernel_size + 1,
    filters]``.

  Returns:
    ``[kernel_size, channels, filters]``.
  """
  steps = tf.shape(dy)[1]
  rows = tf.reshape(dy, [-1, tf.shape(dy)[2]])
  channels = tf.shape(x)[2]
  return tf.stack([
      tf.matmul(tf.reshape(x[:, j:j + steps], [-1, channels]), rows,
                transpose_a=True) for j in range(kernel_size)])


def _windowed(inputs, mask, op, kernel_size, strides, dilation_rate, padding,
              pad_value, zero_pad_outputs=True):
  """Runs a "valid" windowed ``op`` with maskmodels' explicit padding rule.

  Pad steps are set to ``pad_value`` first; left-padded input is packed to the
  right when ``strides > 1`` so the output grid starts at the sequence's first
  step. Returns ``(outputs, mask)``, pad outputs zeroed if
  ``zero_pad_outputs`` (else finite, for finite ``pad_value``).
  """
  mask = masking.ensure_mask(inputs, mask)
  if strides > 1:
    inputs, mask, _ = masking.to_right_padded(inputs, mask)
  fill = tf.constant(pad_value, inputs.dtype)
  x = tf.where(mask[..., tf.newaxis], inputs, fill)
  left, right = masking.conv_padding(kernel_size, dilation_rate, padding)
  out_mask = masking.conv_output_mask(mask, kernel_size, strides,
                                      dilation_rate, padding)
  # A "valid" window needs at least span+1 steps; shorter inputs are padded up
  # and the surplus outputs sliced off, so short sequences give empty outputs.
  span = (kernel_size - 1) * dilation_rate
  time = tf.shape(x)[1]
  right = right + tf.maximum(0, span + 1 - (time + left + right))
  # A batch of no row gets one filler row, sliced off after: TensorFlow's
  # CPU convolution returns a tensor of the wrong shape for zero rows.
  batch = tf.shape(x)[0]
  filler = tf.cast(tf.equal(batch, 0), tf.int32)
  x = tf.pad(x, [[0, filler], [left, right], [0, 0]], constant_values=fill)
  y = op(x)
  y = y[:batch, :tf.shape(out_mask)[1]]
  if zero_pad_outputs:
    y = masking.apply_mask(y, out_mask)
  return y, out_mask


@keras.saving.register_keras_serializable(package="maskmodels")
class MaskedConv1D(ExplicitMask, keras.layers.Layer):
  """1-D convolution that never reads pad steps.

  Pad steps are zeroed before convolving and padding is explicit and anchored
  at the sequence's first step (see ``maskmodels.masking``), so "same" padding
  at a sequence's true end equals convolving the unpadded sequence, and strides
  and dilation shrink the mask with the time axis.

  Call args:
    inputs: float ``[batch, time, channels]``.
    mask: bool ``[batch, time]``, True = real step; None = all real.

  Returns:
    ``(outputs, mask)``: ``[batch, out_time, filters]`` with pad steps zeroed,
    and bool ``[batch, out_time]``. With ``strides > 1`` the outputs are
    right-padded whatever the input layout.
  """

  def __init__(self, filters, kernel_size, strides=1, dilation_rate=1,
               padding="same", activation=None, use_bias=True,
               kernel_initializer="glorot_uniform", bias_initializer="zeros",
               kernel_regularizer=None, bias_regularizer=None, **kwargs):
    super().__init__(**kwargs)
    masking.conv_padding(kernel_size, dilation_rate, padding)  # validates
    if not isinstance(strides, int) or strides < 1:
      raise ValueError(f"strides must be a positive int, got {strides!r}.")
    self.filters = filters
    self.kernel_size = kernel_size
    self.strides = strides
    self.dilation_rate = dilation_rate
    self.padding = padding
    # Keras refuses stride and dilation together: dilate at stride 1, then
    # subsample, which computes the same outputs.
    self._subsample = strides > 1 and dilation_rate > 1
    self.conv = keras.layers.Conv1D(
        filters, kernel_size,
        strides=1 if self._subsample else strides,
        dilation_rate=dilation_rate, padding="valid", activation=activation,
        use_bias=use_bias, kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer,
        kernel_regularizer=kernel_regularizer,
        bias_regularizer=bias_regularizer, dtype=self.dtype_policy,
        name="conv")

  def build(self, input_shape):
    self.conv.build((None, None, input_shape[-1]))

  def _convolve(self, x):
    if self._tapwise():
      conv = self.conv
      y = conv1d_tapwise(x, tf.cast(conv.kernel, x.dtype))
      if conv.use_bias:
        y = tf.nn.bias_add(y, tf.cast(conv.bias, y.dtype))
      return conv.activation(y)
    y = self.conv(x)
    return y[:, ::self.strides] if self._subsample else y

  def _tapwise(self):
    """Whether :func:`conv1d_tapwise` runs: stride 1, no dilation, a host
    without a GPU, and oneDNN below AVX-512."""
    return (self.strides == 1 and self.dilation_rate == 1 and
            not tf.config.list_logical_devices("GPU") and
            cpu.onednn_below_avx512())

  def call(self, inputs, mask=None, training=None):
    return _windowed(inputs, mask, self._convolve, self.kernel_size,
                     self.strides, self.dilation_rate, self.padding, 0.0)

  def convolve(self, inputs, mask=None):
    """:meth:`call` without zeroing the pad outputs, for a caller that
    zeroes them later (``MaskedConvBlock``): they hold finite values that
    no real output reads. Same arguments and returns as :meth:`call`."""
    self.build_for(inputs)
    return _windowed(inputs, mask, self._convolve, self.kernel_size,
                     self.strides, self.dilation_rate, self.padding, 0.0,
                     zero_pad_outputs=False)

  def get_config(self):
    conv = self.conv.get_config()
    config = super().get_config()
    config.update(
        filters=self.filters, kernel_size=self.kernel_size,
        strides=self.strides, dilation_rate=self.dilation_rate,
        padding=self.padding,
        **{key: conv[key] for key in (
            "activation", "use_bias", "kernel_initializer", "bias_initializer",
            "kernel_regularizer", "bias_regularizer")})
    return config


@keras.saving.register_keras_serializable(package="maskmodels")
class MaskedMaxPool1D(ExplicitMask, keras.layers.Layer):
  """Max-pooling along time that ignores pad steps and downsamples the mask.

  Call args:
    inputs: float ``[batch, time, channels]``.
    mask: bool ``[batch, time]``, True = real step; None = all real.

  Returns:
    ``(outputs, mask)``: ``[batch, out_time, channels]`` (pad steps zeroed)
    and bool ``[batch, out_time]``, by the rule of
    ``maskmodels.masking.conv_output_mask``.
  """

  def __init__(self, pool_size=2, strides=None, padding="same", **kwargs):
    super().__init__(**kwargs)
    strides = pool_size if strides is None else strides
    masking.conv_output_length(1, pool_size, strides, 1, padding)  # validates
    self.pool_size = pool_size
    self.strides = strides
    self.padding = padding

  def _pool(self, x):
    return tf.nn.max_pool1d(x, self.pool_size, self.strides, "VALID")

  def call(self, inputs, mask=None, training=None):
    return _windowed(inputs, mask, self._pool, self.pool_size, self.strides,
                     1, self.padding, inputs.dtype.min)

  def get_config(self):
    config = super().get_config()
    config.update(pool_size=self.pool_size, strides=self.strides,
                  padding=self.padding)
    return config
