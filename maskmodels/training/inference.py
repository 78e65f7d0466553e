"""Using a trained model directory: load it, predict, evaluate."""

import keras
import numpy as np
import tensorflow as tf

from maskmodels.data import pipeline
from maskmodels.errors import InputError
from maskmodels.training import checkpoints, optimization
from maskmodels.training.builders import build_model, load_tokenizer
from maskmodels.training.model_dir import ModelDirectory
from maskmodels.training.tasks import build_task
from maskmodels.training.trainer import Trainer


def load_trained(model_dir):
  """``(config, tokenizer, model)`` of a trained model directory.

  Restores the checkpoint the config's ``evaluate_checkpoint`` names: the
  best by validation metric (else the latest), or the final one.
  """
  directory = ModelDirectory(model_dir)
  config = directory.load_config()
  optimization.set_precision(config.train.precision)
  tokenizer = load_tokenizer(config, directory.vocab_path)
  model = build_model(config, tokenizer.vocab_size)
  checkpoints.restore_weights(model, directory.serving_checkpoint(
      config.checkpoint.evaluate_checkpoint))
  return config, tokenizer, model


class Predictor:
  """Raw strings -> class probabilities, in one ``tf.function``.

  Tokenization (tensorflow-text ops) and the model run as one graph with a
  ``[None]`` string signature, traced once for every batch shape.

  Args:
    config: the run's ExperimentConfig.
    tokenizer: its tokenizer.
    model: the trained model.
  """

  def __init__(self, config, tokenizer, model):
    self.config, self.tokenizer, self.model = config, tokenizer, model
    self.num_classes = len(config.data.class_names)
    self.probabilities = tf.function(
        self._probabilities,
        input_signature=[tf.TensorSpec([None], tf.string)])

  def _probabilities(self, texts):
    """Strings ``[batch]`` -> float32 probabilities ``[batch, classes]``."""
    ids = self.tokenizer.encode(texts, self.config.data.inference_max_len,
                                self.config.data.truncation)
    logits = self.model(ids.to_tensor(), training=False)
    return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

  def __call__(self, texts, batch_size=64):
    """Probabilities ``[len(texts), classes]`` as a NumPy array."""
    parts = [self.probabilities(tf.constant(texts[start:start + batch_size],
                                            tf.string)).numpy()
             for start in range(0, len(texts), batch_size)]
    return (np.concatenate(parts) if parts else
            np.zeros((0, self.num_classes), np.float32))


def predict(config, tokenizer, model, texts, batch_size=64):
  """Class probabilities ``[len(texts), classes]`` for raw strings."""
  return Predictor(config, tokenizer, model)(texts, batch_size)


def evaluate(model_dir, examples, verbose=1):
  """Metrics of a trained model on ``examples`` (with a progress bar).

  Returns:
    The task's evaluation metrics (``loss``, ``accuracy``...) and
    ``examples``, the number of examples counted (each exactly once).
  """
  config, tokenizer, model = load_trained(model_dir)
  if list(examples.class_names) != list(config.data.class_names):
    raise InputError(f"The data's classes {examples.class_names} differ from "
                     f"the model's {config.data.class_names}.")
  task = build_task(config.train.task, config.train.task_config,
                    config.data.class_names)
  trainer = Trainer(task, model, None, tf.distribute.get_strategy())
  batching = pipeline.PipelineConfig(
      max_len=config.data.inference_max_len,
      batch_size=config.data.batch_size, truncation=config.data.truncation,
      bucket_boundaries=None)
  bar = keras.utils.Progbar(len(examples), verbose=verbose,
                            unit_name="examples")
  return trainer.evaluate(
      lambda context: pipeline.make_dataset(examples, tokenizer, batching,
                                            False, context), progress=bar)
