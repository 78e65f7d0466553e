"""Building a run's parts from its ExperimentConfig: task, model, featurizer.

Shared by training, evaluation, prediction and export, so each builds the
same task, model and features from the same settings.
"""

import tensorflow as tf

from maskmodels.data import text
from maskmodels.data.features import Featurizer
from maskmodels.tasks import build_task


def task_of(config):
  """The run's task, with its label vocabulary."""
  train = config.train
  return build_task(train.task, train.task_config, config.data.label_names)


def build_model(config, task, vocab_size, strategy=None):
  """The run's model (``task.build_model``), its weights created under
  ``strategy``."""
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    model = task.build_model(config.model, vocab_size)
    model.build()
  return model


def word_features_of(model):
  """The word-feature layers of ``model``'s backbones, in order."""
  found = []
  for layer in model._flatten_layers(include_self=True):  # pylint: disable=protected-access
    for feature in getattr(layer, "word_features", ()) or ():
      if all(feature is not f for f in found):
        found.append(feature)
  return found


VOCAB_FILE = "vocab.txt"


def tokenizer_of(config, vocab):
  """The run's tokenizer over ``vocab``, a list of tokens."""
  return text.build_tokenizer(config.data.tokenizer, vocab,
                              config.data.num_oov_buckets,
                              config.data.case_fold)


def load_tokenizer(config, directory):
  """The run's tokenizer over its model directory's vocabulary (checked
  against its checksum)."""
  return tokenizer_of(config, text.parse_vocabulary(
      directory.read_asset(VOCAB_FILE), directory.file(VOCAB_FILE)))


def featurizer_of(tokenizer, model, task):
  """Inputs -> ``model``'s features, for ``task``'s kind of input."""
  return Featurizer(tokenizer, word_features_of(model), task.inputs)


def inference_length(config, task):
  """Tokens kept per example in evaluation, prediction and export: every
  token of a per-token task (each must get its label), else
  ``--eval_max_len`` or ``--max_len``."""
  return None if task.labels.per_token else config.data.inference_max_len
