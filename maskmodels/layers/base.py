"""What every maskmodels layer shares."""


class ExplicitMask:
  """Mixin for layers whose mask travels explicitly, never as Keras metadata.

  Keras warns that a layer "will destroy the mask" whenever ``mask=`` is passed
  to a layer without ``compute_mask``. maskmodels layers take the mask as an
  argument and return any new mask themselves, so they attach none to their
  outputs.
  """

  def compute_mask(self, inputs, previous_mask=None):
    return None

  def build_for(self, inputs):
    """Builds the layer from ``inputs``' shape (``[batch, time, channels]``)
    unless it is built: what ``__call__`` does first, for the methods a
    caller runs directly (``MaskedConv1D.convolve``, the normalizations'
    ``normalize``)."""
    if not self.built:
      self.build(tuple(inputs.shape))
