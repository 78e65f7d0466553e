"""Target sequences of their own length: the labels of CTC and
sequence-to-sequence tasks.

A raw target is a string of whitespace-separated tokens (``"HH AH L OW"``),
or a list of such strings where an example has several acceptable targets
(a word's alternate pronunciations). The target vocabulary is the training
split's tokens, in sorted order after the task's reserved ids; encoded, an
example's targets are int32 ``[references, length]``, 0-padded (0 is
reserved: the pad, and CTC's blank). In training, each reference is an
example of its own; in evaluation an output is right if it equals any
reference, and its token errors count against the closest one
(``maskmodels.sequence_metrics``).
"""

import dataclasses

import numpy as np
import tensorflow as tf
from absl import logging

from maskmodels import sequence_metrics
from maskmodels.data.readers import Examples, where
from maskmodels.errors import InputError
from maskmodels.settings import Settings, setting
from maskmodels.specs import SequenceLabels
from maskmodels.tasks.base import DefaultData, Task

CMUDICT_SAMPLE = DefaultData(
    "cmudict", {"train": "cmudict_sample_train.txt.gz",
                "test": "cmudict_sample_test.txt.gz"},
    "a sample of the CMU Pronouncing Dictionary (BSD-style license), "
    "spelling -> phones")


@dataclasses.dataclass
class Decoding(Settings):
  """How outputs are decoded in evaluation, prediction and export."""
  beam_width: int = setting(
      1, "ctc, seq2seq: prefixes kept by beam search decoding (1: "
      "greedy).", lower=1, upper=256)


def references_of(raw_label):
  """A raw target -> its list of reference strings."""
  if isinstance(raw_label, (list, tuple)):
    return [str(r) for r in raw_label]
  return [str(raw_label)]


def split_targets(labels):
  """Encoded targets ``[batch, references, time]`` -> ``(references,
  lengths [batch, references], count [batch])``: a reference's length is
  its ids before the first 0; the count of references is those that hold
  a token (at least 1)."""
  labels = tf.cast(labels, tf.int32)
  lengths = tf.reduce_sum(tf.math.cumprod(
      tf.cast(tf.not_equal(labels, 0), tf.int32), axis=-1), axis=-1)
  count = tf.maximum(tf.reduce_sum(tf.cast(lengths > 0, tf.int32), axis=1),
                     1)
  return labels, lengths, count


def first_target(labels):
  """The first reference of each example: ``(ids [batch, time], lengths
  [batch])`` (what a training step learns)."""
  references, lengths, _ = split_targets(labels)
  return references[:, 0], lengths[:, 0]


class TargetSequenceTask(Task):
  """Base of tasks whose outputs are token sequences of their own length.

  Subclasses set :attr:`reserved` (the ids before the target tokens) and
  serve the model's decoded output through :meth:`strings`.
  """

  labels = SequenceLabels("int32", pad=0)
  best_metric = "token_error_rate"
  best_mode = "min"
  default_head = "pooled"
  inputs = ("text", "frames")
  reserved = ("<pad>",)
  # One encoder step per input step (a character), the most room for the
  # outputs; spelled inputs: one token per character.
  keeps_steps = True
  run_defaults = {"tokenizer": "char"}
  metric_units = {"loss": "loss per target",
                  "token_error_rate": "edits per reference token",
                  "sequence_error_rate": "fraction of outputs wrong"}
  display = {"output": "output"}

  def validate(self, config):
    if config.model.members:
      raise InputError(f"--members={','.join(config.model.members)}: the "
                       f"{config.train.task} task trains a single network.")
    if config.model.networks > 1:
      raise InputError(f"--networks={config.model.networks}: the "
                       f"{config.train.task} task trains a single network; "
                       f"expected 1.")

  # ---- labels ---------------------------------------------------------------

  def fit_labels(self, raw_labels, source):
    tokens = sorted({token for label in raw_labels
                     for reference in references_of(label)
                     for token in reference.split()})
    clash = sorted(set(tokens) & set(self.reserved))
    if clash:
      raise InputError(f"{source}: the target token(s) {clash} are "
                       f"reserved by the task; rename them.")
    if not tokens:
      raise InputError(f"{source} has no target token; expected targets "
                       f"of whitespace-separated tokens.")
    return list(self.reserved) + tokens

  def encode_labels(self, raw_labels, source):
    index = {name: i for i, name in enumerate(self.label_names)
             if i >= len(self.reserved)}
    encoded = []
    for i, label in enumerate(raw_labels):
      references = [reference.split() for reference in references_of(label)]
      if not references:
        raise InputError(f"{where(source, i)} has no target; expected a "
                         f"string of tokens or a list of them.")
      width = max(len(r) for r in references)
      ids = np.zeros([len(references), width], np.int32)
      for row, tokens in enumerate(references):
        for column, token in enumerate(tokens):
          if token not in index:
            raise InputError(
                f"Unknown target token {token!r} in {where(source, i)}; "
                f"the training split's tokens are "
                f"{self.label_names[len(self.reserved):]}.")
          ids[row, column] = index[token]
      encoded.append(ids)
    return encoded

  def training_examples(self, examples):
    texts, labels, origins = [], [], []
    for i, (text, targets) in enumerate(zip(examples.texts, examples.labels)):
      for reference in targets:
        texts.append(text)
        labels.append(reference[np.newaxis])
        origins.append(examples.origins[i] if examples.origins else None)
    if len(texts) > len(examples):
      logging.info("Training on %d (source, target) pairs of %d sources.",
                   len(texts), len(examples))
    return Examples(texts, labels, examples.source,
                    origins if examples.origins else None)

  @property
  def output_size(self):
    return len(self.label_names)

  # ---- metrics --------------------------------------------------------------

  def build_metrics(self, training):
    metrics = super().build_metrics(training)
    if not training:
      metrics["token_error_rate"] = sequence_metrics.TokenErrorRate()
      metrics["sequence_error_rate"] = sequence_metrics.SequenceErrorRate()
    return metrics

  def update_error_rates(self, metrics, labels, weights, ids, lengths):
    """Adds a batch's decoded ``(ids, lengths)`` to the error rates,
    against each example's closest reference."""
    references, reference_lengths, count = split_targets(labels)
    errors, closest, exact = sequence_metrics.closest_reference_errors(
        ids, lengths, references, reference_lengths, count)
    metrics["token_error_rate"].update_state(errors, closest,
                                             sample_weight=weights)
    metrics["sequence_error_rate"].update_state(exact, sample_weight=weights)

  # ---- serving --------------------------------------------------------------

  def strings(self, ids, lengths):
    """Decoded ids -> ``{"output": strings [batch] (tokens joined by a
    space), "tokens": int32 [batch, time] (0 past each length),
    "lengths": int32 [batch]}``."""
    ids = tf.cast(ids, tf.int32)
    lengths = tf.cast(lengths, tf.int32)
    ids = tf.where(tf.sequence_mask(lengths, tf.shape(ids)[1]), ids, 0)
    tokens = tf.RaggedTensor.from_tensor(ids, lengths=lengths)
    names = tf.constant(self.label_names)
    text = tf.strings.reduce_join(tf.ragged.map_flat_values(
        tf.gather, names, tokens), axis=-1, separator=" ")
    return {"output": text, "tokens": ids, "lengths": lengths}
