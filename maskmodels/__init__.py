"""maskmodels: masked sequence models with explicit, padding-invariant masks.

The public API is re-exported here; see ``maskmodels.masking`` for the mask
conventions (bool ``[batch, time]``, True = real step). Names load on first
use, so ``import maskmodels`` alone does not load TensorFlow (the command-line
tools quiet TensorFlow's start-up before it loads).
"""

import importlib

__version__ = "0.4.0"

_EXPORTS = {
    "maskmodels.layers": (
        "MaskedBatchNormalization", "MaskedConv1D", "MaskedConvBlock",
        "MaskedGRU", "MaskedLayerNormalization", "MaskedMaxPool1D",
        "MaskedPooling", "Pooling", "Dropout", "HashedNgramBag",
        "NaiveBayesNgrams", "WordFeature", "CharacterFeatures"),
    "maskmodels.models": (
        "AttentionGRUDecoder", "ConvGRUEncoder", "Encoder", "Ensemble",
        "FrameBackbone", "Head", "MaskedAttention", "Member",
        "NaiveBayesClassifier", "NgramBagClassifier", "PerStepHead",
        "PooledHead", "Seq2SeqModel", "SequenceBackbone", "SequenceModel"),
    "maskmodels.registry": (
        "BACKBONES", "DECODERS", "ENCODERS", "HEADS", "INPUT_KINDS", "MEMBERS", "MODELS",
        "POOLINGS", "TASKS", "WORD_FEATURES", "Registry", "register_backbone",
        "register_decoder", "register_encoder", "register_head", "register_input_kind",
        "register_member", "register_model", "register_pooling",
        "register_task", "register_word_feature"),
    "maskmodels.settings": ("Configurable", "Settings", "setting"),
    "maskmodels.outputs": ("ModelOutputs",),
    "maskmodels.specs": ("SequenceLabels", "StepLabels"),
    "maskmodels.export": ("load_saved_model",),
    "maskmodels.errors": ("InputError", "SettingError"),
    "maskmodels.data.kinds": ("InputKind",),
    "maskmodels.tasks": ("CTCTask", "ClassificationTask", "LabelSpec",
                         "Seq2SeqTask", "TaggingTask", "TargetSequenceTask",
                         "Task"),
}
_SUBMODULES = ("ctc", "data", "errors", "export", "layers", "masking",
               "models", "outputs", "specs", "registry", "sequence_metrics",
               "serving", "settings", "tasks", "testing", "training")
_ORIGIN = {name: module for module, names in _EXPORTS.items()
           for name in names}
__all__ = sorted(_ORIGIN) + list(_SUBMODULES)


def __getattr__(name):
  if name in _SUBMODULES:
    value = importlib.import_module(f"maskmodels.{name}")
  elif name in _ORIGIN:
    value = getattr(importlib.import_module(_ORIGIN[name]), name)
  else:
    raise AttributeError(f"module 'maskmodels' has no attribute {name!r}")
  globals()[name] = value
  return value


def __dir__():
  return sorted(set(globals()) | set(__all__))
