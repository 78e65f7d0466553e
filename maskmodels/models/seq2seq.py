"""An encoder-decoder: the masked backbone, then a registered decoder.

The decoder (``--decoder``, ``attention_gru`` unless research code
registers another) reads the backbone's steps with their mask; it takes
``vocab_size`` and its ``--decoder_config`` settings, and has
``call(targets_in, memory, memory_mask, training)`` -> logits ``[batch,
time, vocab]`` (teacher forcing), ``beam_decode(memory, memory_mask,
max_len, beam_width)`` -> ``(ids, lengths, log_probability)``, and
``start_id`` / ``end_id``. The model returns ``ModelOutputs``: the
teacher-forced logits with the targets' mask, or the decoded ids with
theirs (``maskmodels.outputs``).
"""

import keras
import tensorflow as tf

from maskmodels.models.sequence_model import layer_of
from maskmodels.outputs import ModelOutputs
from maskmodels.registry import DECODERS


@keras.saving.register_keras_serializable(package="maskmodels")
class Seq2SeqModel(keras.Model):
  """``decoder(backbone(inputs))``: teacher forcing in training, beam
  search in the graph when called.

  Args:
    backbone: a backbone layer or its serialized dict.
    decoder: a decoder layer or its serialized dict.
    max_output_len: the most tokens written per output.
    beam_width: prefixes kept by beam search (1: greedy).

  Call args:
    inputs: the backbone's features (token ids ``[batch, time]``, 0 =
      pad, or frames with lengths).

  Returns:
    ``ModelOutputs(ids int32 [batch, max_output_len] (0 past each
    length), mask bool [batch, max_output_len], {"scores": float32
    [batch]})``: the decoded outputs and their log probabilities.
  """

  def __init__(self, backbone, decoder, max_output_len=32, beam_width=1,
               **kwargs):
    super().__init__(**kwargs)
    self.backbone, self.decoder = layer_of(backbone), layer_of(decoder)
    self.max_output_len, self.beam_width = max_output_len, beam_width

  @classmethod
  def from_settings(cls, backbone, decoder, decoder_config, vocab_size,
                    max_output_len, beam_width, name="seq2seq"):
    """The backbone with the registered ``decoder`` over ``vocab_size``
    target ids."""
    policy = keras.mixed_precision.global_policy()
    return cls(backbone, DECODERS.get(decoder)(
        vocab_size=vocab_size, dtype=policy, name="decoder",
        **decoder_config), max_output_len, beam_width, name=name)

  def build(self, input_shape=None):
    """Creates every weight with a batch of 8 steps and a short target."""
    if not self.built:
      dummy = getattr(self.backbone, "dummy_features", None)
      features = dummy(1, 8) if dummy else tf.ones([1, 8], tf.int32)
      self.teacher_forced(features, tf.ones([1, 3], tf.int32), False)
      self.built = True

  def encode(self, inputs, training=None):
    """The backbone's ``(steps [batch, time, dim], mask [batch, time])``:
    what :meth:`teacher_forced` and :meth:`decode` read (pass it to both to
    encode a batch once)."""
    outputs = self.backbone(inputs, training=training)
    return outputs["steps"], outputs["mask"]

  def teacher_forced(self, inputs, targets_in, training=None, encoded=None):
    """``ModelOutputs`` of the logits ``[batch, time, vocab]`` of the next
    token after each of ``targets_in`` (int ``[batch, time]``:
    ``start_id`` then the target, 0 past it), with the mask of
    ``targets_in``'s real steps; ``encoded``: :meth:`encode`'s, if it
    already ran."""
    memory, mask = encoded or self.encode(inputs, training)
    logits = self.decoder(targets_in, memory, mask, training=training)
    return ModelOutputs(logits, tf.not_equal(targets_in, 0))

  def decode(self, inputs, beam_width=None, encoded=None):
    """``ModelOutputs`` of the ids beam search (greedy at width 1) writes
    over the inputs' encoding: int32 ``[batch, max_output_len]`` (0 past
    each length), their mask, and ``extras["scores"]`` (log
    probabilities); ``encoded``: :meth:`encode`'s, if it already ran."""
    memory, mask = encoded or self.encode(inputs, False)
    ids, lengths, scores = self.decoder.beam_decode(
        memory, mask, self.max_output_len,
        beam_width=beam_width or self.beam_width)
    return ModelOutputs(ids, tf.sequence_mask(lengths, tf.shape(ids)[1]),
                        {"scores": scores})

  def pad_rows(self):
    """The embedding rows pad positions look up (``backbone.pad_rows``)."""
    return self.backbone.pad_rows()

  def call(self, inputs, training=None):
    del training
    return self.decode(inputs)

  def get_config(self):
    return {"name": self.name,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "max_output_len": self.max_output_len,
            "beam_width": self.beam_width}
