"""Mask-aware Keras layers; each takes ``mask=`` (bool ``[batch, time]``)."""

from maskmodels.layers.conv import MaskedConv1D, MaskedMaxPool1D
from maskmodels.layers.conv_block import MaskedConvBlock
from maskmodels.layers.dropout import Dropout
from maskmodels.layers.normalization import (MaskedBatchNormalization,
                                             MaskedLayerNormalization,
                                             masked_moments)
from maskmodels.layers.ngrams import HashedNgramBag, NaiveBayesNgrams
from maskmodels.layers.pooling import MaskedPooling, Pooling
from maskmodels.layers.recurrent import MaskedGRU, set_use_cudnn
from maskmodels.layers.characters import CharacterFeatures, WordFeature
