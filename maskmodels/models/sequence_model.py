"""SequenceModel: a backbone and a head, one ``call`` for training and
serving."""

import keras
import tensorflow as tf

from maskmodels.models.backbone import SequenceBackbone
from maskmodels.models.heads import PerStepHead, PooledHead
from maskmodels.outputs import model_outputs
from maskmodels.registry import ENCODERS, register_model


def layer_of(spec):
  """A Keras layer, or the layer its serialized dict describes."""
  return (keras.saving.deserialize_keras_object(spec)
          if isinstance(spec, dict) else spec)


@register_model("sequence")
class SequenceModel(keras.Model):
  """``head(backbone(inputs))``: the model the training loop and serving
  both call.

  Subclass it and override ``call`` to change what the model computes;
  training, evaluation, prediction and export all go through ``call``.
  :meth:`classifier` and :meth:`tagger` build the usual pairs.

  Args:
    backbone: a backbone layer (``maskmodels.models.backbone``) or its
      serialized dict.
    head: a head layer (``maskmodels.models.heads``) or its serialized dict.

  Call args:
    inputs: int ``[batch, time]`` token ids (pad id at pad steps, either
      side), or a dict of features with ``"ids"``.

  Returns:
    The head's ``ModelOutputs`` (``maskmodels.outputs``): float32
    ``[batch, outputs]`` (pooled), or ``[batch, time, outputs]`` (per
    step) with their mask.
  """

  def __init__(self, backbone, head, **kwargs):
    super().__init__(**kwargs)
    self.backbone, self.head = layer_of(backbone), layer_of(head)
    self.head.check_backbone(self.backbone)

  @classmethod
  def classifier(cls, vocab_size, num_classes, *, encoder="conv_gru",
                 encoder_config=None, word_features=(),
                 word_features_config=None, pad_id=0, pooling="max",
                 pooling_config=None, head_units=(), head_dropout=0.1,
                 dtype=None, name=None, **backbone_settings):
    """A backbone and a pooled head with ``num_classes`` logits
    (``backbone_settings``: ``embedding_dim``, ``token_dropout``)."""
    return cls(SequenceBackbone(
        vocab_size, encoder, encoder_config, word_features,
        word_features_config, pad_id, dtype=dtype, **backbone_settings),
               PooledHead(num_classes, pooling=pooling,
                          pooling_config=pooling_config or {},
                          head_units=list(head_units),
                          head_dropout=head_dropout, dtype=dtype),
               dtype=dtype, name=name)

  @classmethod
  def tagger(cls, vocab_size, num_tags, *, encoder="conv_gru",
             encoder_config=None, word_features=(),
             word_features_config=None, pad_id=0, head_units=(),
             head_dropout=0.1, dtype=None, name=None, **backbone_settings):
    """A backbone and a per-step head with ``num_tags`` logits per token
    (``backbone_settings``: ``embedding_dim``, ``token_dropout``). A
    named encoder keeps one step per token (its ``defaults_for``: conv_gru
    does not pool) unless ``encoder_config`` says otherwise, as
    ``--task=tagging`` does."""
    if isinstance(encoder, str):
      defaults = getattr(ENCODERS.get(encoder), "defaults_for", None)
      encoder_config = dict(defaults(keeps_steps=True) if defaults else {},
                            **(encoder_config or {}))
    return cls(SequenceBackbone(
        vocab_size, encoder, encoder_config, word_features,
        word_features_config, pad_id, dtype=dtype, **backbone_settings),
               PerStepHead(num_tags, head_units=list(head_units),
                           head_dropout=head_dropout, dtype=dtype),
               dtype=dtype, name=name)

  def build(self, input_shape=None):
    """Creates every weight by running ``call`` on a batch of 8 steps.

    Loading from a ``.keras`` file or ``get_config`` calls this; the
    weights' shapes do not depend on ``input_shape``. A per-step head
    refuses here an encoder that changes the time axis.
    """
    if not self.built:
      dummy = getattr(self.backbone, "dummy_features", None)
      self.call(dummy(1, 8) if dummy else tf.ones([1, 8], tf.int32),
                training=False)
      self.built = True

  def pad_rows(self):
    """The embedding rows pad positions look up (``backbone.pad_rows``)."""
    return self.backbone.pad_rows()

  def call(self, inputs, training=None):
    return model_outputs(self.head(self.backbone(inputs, training=training),
                                   training=training))

  def get_config(self):
    return {"name": self.name,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "head": keras.saving.serialize_keras_object(self.head)}
