"""Export: one SavedModel that takes raw strings and returns predictions.

The serving function tokenizes in the graph (tensorflow-text ops, the
vocabulary file as a SavedModel asset), pads, runs the classifier and returns
probabilities and labels. Loading it needs TensorFlow and tensorflow-text
only (``import tensorflow_text`` registers the tokenizer ops). The GRU is
traced with its generic kernel, so a model exported on a GPU host also
serves on a CPU-only one.
"""

import tensorflow as tf

from maskmodels import progress

SIGNATURE = "serving_default"


class TextClassifierModule(tf.Module):
  """Strings ``[batch]`` -> ``{"probabilities" [batch, classes],
  "label_ids" [batch] int32, "labels" [batch] string}``."""

  def __init__(self, model, tokenizer, class_names, max_len, truncation):
    super().__init__(name="text_classifier")
    self.model = model
    self.tokenizer = tokenizer
    # Keras 3 keeps sublayers held in lists out of TensorFlow's object graph;
    # tracking the variables themselves saves every weight.
    self.model_variables = list(model.variables)
    self.class_names = tf.constant(list(class_names))
    self.max_len = max_len
    self.truncation = truncation

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def serve(self, texts):
    ids = self.tokenizer.encode(texts, self.max_len, self.truncation)
    logits = self.model(ids.to_tensor(), training=False)
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
    label_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    return {"probabilities": probabilities, "label_ids": label_ids,
            "labels": tf.gather(self.class_names, label_ids)}


def export_saved_model(model_dir, export_dir):
  """Exports the trained model in ``model_dir`` to ``export_dir``.

  Returns:
    ``export_dir``, a SavedModel with a ``serving_default`` signature.
  """
  # pylint: disable=import-outside-toplevel
  from maskmodels.layers.recurrent import set_use_cudnn
  from maskmodels.training import inference
  with progress.heartbeat(f"Loading {model_dir}"):
    config, tokenizer, model = inference.load_trained(model_dir)
  # Keras picks cuDNN when it traces on a GPU host; its op has no CPU kernel.
  set_use_cudnn(model, False)
  module = TextClassifierModule(model, tokenizer, config.data.class_names,
                                config.data.inference_max_len,
                                config.data.truncation)
  with progress.heartbeat(f"Tracing and writing the SavedModel to "
                          f"{export_dir}"):
    tf.saved_model.save(module, export_dir,
                        signatures={SIGNATURE: module.serve})
  return export_dir


def is_saved_model(path):
  """Whether ``path`` holds a SavedModel (rather than a model directory)."""
  return tf.saved_model.contains_saved_model(path)


def load_serving_function(export_dir):
  """The ``serving_default`` function of an exported SavedModel."""
  import tensorflow_text  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  return tf.saved_model.load(export_dir).signatures[SIGNATURE]
