"""maskmodels: masked sequence models with explicit, padding-invariant masks.

The public API is re-exported here; see ``maskmodels.masking`` for the mask
conventions (bool ``[batch, time]``, True = real step).
"""

from maskmodels import masking
from maskmodels import testing
from maskmodels.layers import (MaskedBatchNormalization, MaskedConv1D,
                               MaskedConvBlock, MaskedGRU,
                               MaskedLayerNormalization, MaskedMaxPool1D,
                               MaskedPooling, Pooling)
from maskmodels.models import ConvGRUEncoder, Encoder, SequenceClassifier
from maskmodels.registry import (ENCODERS, MODELS, POOLINGS, register_encoder,
                                 register_model, register_pooling)

__version__ = "0.1.0"
