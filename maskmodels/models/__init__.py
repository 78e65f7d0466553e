"""Encoders and models; each is registered by name."""

from maskmodels.models.classifier import SequenceClassifier
from maskmodels.models.baselines import UnmaskedConvGRUEncoder
from maskmodels.models.encoders import ConvGRUEncoder, Encoder
