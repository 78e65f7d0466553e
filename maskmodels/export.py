"""Export: one SavedModel that takes raw strings and returns predictions.

The serving function is ``maskmodels.serving.Server``'s: it featurizes in
the graph (tensorflow-text ops, the vocabulary file as a SavedModel asset),
runs the model and returns what the task's ``postprocess`` gives
(classification: probabilities, label ids and labels; tagging: one tag per
word and the words' count). Loading it needs TensorFlow and tensorflow-text
only (``import tensorflow_text`` registers the tokenizer ops). The GRU is
traced with a generic kernel, never cuDNN's, so a model exported on a GPU
host also serves on a CPU-only one.
"""

import tensorflow as tf

from maskmodels import progress

SIGNATURE = "serving_default"
WORDS_SIGNATURE = "words"


def export_saved_model(model_dir, export_dir):
  """Exports the trained model in ``model_dir`` to ``export_dir``.

  Returns:
    ``export_dir``, a SavedModel with a ``serving_default`` signature
    (strings ``[batch]``), for a pre-tokenized task also ``words`` (words
    ``[batch, max_words]`` and ``lengths`` ``[batch]``), and the function
    ``metadata()`` (a JSON string: the task, its settings, label names).
  """
  # pylint: disable=import-outside-toplevel
  from maskmodels.layers.recurrent import set_use_cudnn
  from maskmodels.training import inference
  with progress.heartbeat(f"Loading {model_dir}"):
    run = inference.load_trained(model_dir)
  # Keras picks cuDNN when it traces on a GPU host; its op has no CPU kernel.
  set_use_cudnn(run.model, False)
  server = run.server()
  signatures = {SIGNATURE: server.texts}
  if run.featurizer.inputs == "words":
    signatures[WORDS_SIGNATURE] = server.words
  with progress.heartbeat(f"Tracing and writing the SavedModel to "
                          f"{export_dir}"):
    tf.saved_model.save(server, export_dir, signatures=signatures)
  return export_dir


def is_saved_model(path):
  """Whether ``path`` holds a SavedModel (rather than a model directory)."""
  return tf.saved_model.contains_saved_model(path)


def load_saved_model(export_dir):
  """An exported SavedModel (its ``signatures`` and ``metadata()``)."""
  import tensorflow_text  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  return tf.saved_model.load(export_dir)


def load_serving_function(export_dir):
  """The ``serving_default`` function of an exported SavedModel."""
  return load_saved_model(export_dir).signatures[SIGNATURE]
