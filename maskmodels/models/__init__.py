"""Models, composed: backbones, encoders, heads, ensemble members.

Importing this package registers the built-in components by name.
"""

from maskmodels.models.attention_decoder import (AttentionGRUDecoder,
                                                 MaskedAttention)
from maskmodels.models.backbone import SequenceBackbone
from maskmodels.models.frame_backbone import FrameBackbone
from maskmodels.models.baselines import UnmaskedConvGRUEncoder
from maskmodels.models.encoders import ConvGRUEncoder, Encoder
from maskmodels.models.ensemble import Ensemble, fit_member_weights
from maskmodels.models.heads import CTCHead, Head, PerStepHead, PooledHead
from maskmodels.models.members import (Member, NaiveBayesClassifier,
                                       NgramBagClassifier)
from maskmodels.models.seq2seq import Seq2SeqModel
from maskmodels.models.sequence_model import SequenceModel
