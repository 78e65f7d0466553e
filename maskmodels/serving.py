"""The one serving path: raw inputs -> features -> model -> task outputs.

Prediction, export and the benchmarks all go through :class:`Server`:
strings (or, for a pre-tokenized task, their whitespace-separated words,
or given word lists) are featurized in the graph, the model runs once,
and ``task.postprocess`` turns its output into named tensors. A
per-token task's outputs also carry ``lengths``, the words of each input,
so tags align with words; past each input's length every per-step output
is blank (:func:`blank_past_lengths`), so nothing there reads as a word's
tag.
"""

import json

import numpy as np
import tensorflow as tf

from maskmodels.data.features import words_of


def _spec_text(spec):
  """``"string [batch]"``, ``"float32 [batch, time, classes]"``."""
  names = ["batch", "time", "dim"]
  dims = ", ".join(str(d) if d is not None else names[min(i, 2)]
                   for i, d in enumerate(spec.shape))
  return f"{spec.dtype.name} [{dims}]"


class _Held:
  """Keeps an object out of TensorFlow's object graph: the SavedModel holds
  the model's variables and the traced functions, not the Keras object
  (whose default save signature would be traced too)."""

  def __init__(self, value):
    self.value = value


class Server(tf.Module):
  """Serving functions of a trained model.

  Args:
    task: the run's task.
    featurizer: a ``features.Featurizer`` for the model.
    model: the trained model.
    max_len: tokens kept per input (None: all).
    truncation: ``"head"``, ``"tail"`` or ``"both"``.
    metadata: a JSON-able dict served by :meth:`metadata` (the task's
      name, settings and label names, for ``maskmodels-predict``).
  """

  def __init__(self, task, featurizer, model, max_len, truncation,
               metadata=None):
    super().__init__(name="server")
    self.task, self.featurizer = task, featurizer
    self._model = _Held(model)
    # Keras 3 keeps sublayers held in lists out of TensorFlow's object
    # graph; tracking the variables themselves saves every weight.
    self.model_variables = list(model.variables)
    self.max_len, self.truncation = max_len, truncation
    self.metadata_json = json.dumps(metadata or {})
    self.texts = tf.function(self._texts, autograph=False, input_signature=[
        tf.TensorSpec([None], tf.string, name="texts")])
    # Word lists in, for a pre-tokenized task only.
    self.words = tf.function(self._words, autograph=False, input_signature=[
        tf.TensorSpec([None, None], tf.string, name="words"),
        tf.TensorSpec([None], tf.int32, name="lengths")]) if (
            featurizer.inputs == "words") else None
    self.metadata = tf.function(self._metadata, autograph=False,
                                input_signature=[])

  def _metadata(self):
    """The metadata, with each signature's inputs and outputs (traced at
    the first call, as a SavedModel is written)."""
    meta = json.loads(self.metadata_json)
    meta["signatures"] = {
        name: {"inputs": {spec.name: _spec_text(spec)
                          for spec in function.input_signature},
               "outputs": {key: _spec_text(spec) for key, spec in sorted(
                   function.get_concrete_function().structured_outputs
                   .items())}}
        for name, function in (("serving_default", self.texts),
                               ("words", self.words)) if function}
    return tf.constant(json.dumps(meta))

  @property
  def model(self):
    """The served Keras model."""
    return self._model.value

  def outputs(self, inputs):
    """Postprocessed outputs of featurizer inputs (strings ``[batch]`` or
    ragged words ``[batch, (words)]``)."""
    features = self.featurizer.dense(inputs, self.max_len, self.truncation)
    outputs = dict(self.task.postprocess(self.model(features,
                                                    training=False)))
    if self.featurizer.inputs == "words":
      lengths = tf.cast(inputs.row_lengths(), tf.int32)
      outputs = blank_past_lengths(outputs, lengths)
      outputs["lengths"] = lengths
    return outputs

  def _texts(self, texts):
    """Strings ``[batch]`` -> outputs (words split at whitespace for a
    pre-tokenized task)."""
    if self.featurizer.inputs == "words":
      return self.outputs(words_of(texts))
    return self.outputs(texts)

  def _words(self, words, lengths):
    """Words ``[batch, max_words]`` (the first ``lengths`` of each row) ->
    outputs."""
    return self.outputs(tf.RaggedTensor.from_tensor(words, lengths=lengths))

  def predict(self, inputs, batch_size=64):
    """Per-input output rows (dicts of NumPy values) for a list of strings
    or of word lists."""
    return predict_rows(self.texts, self.words, inputs, batch_size)


def blank_past_lengths(outputs, lengths):
  """Per-step outputs with every step past its input's length blank: ""
  for strings, -1 for integers (an id no label has), 0 for numbers.

  Args:
    outputs: ``{name: tensor}``; those of rank 2 or more are per step,
      ``[batch, time, ...]``.
    lengths: int ``[batch]``, the real steps of each input.
  """
  blanked = {}
  for name, value in outputs.items():
    if value.shape.rank is None or value.shape.rank < 2:
      blanked[name] = value
      continue
    real = tf.sequence_mask(lengths, tf.shape(value)[1])
    while real.shape.rank < value.shape.rank:
      real = real[..., tf.newaxis]
    blank = ("" if value.dtype == tf.string else
             -1 if value.dtype.is_integer else 0)
    blanked[name] = tf.where(real, value, tf.constant(blank, value.dtype))
  return blanked


def builtin_ancestor(task):
  """The name of the built-in task ``task`` is (or derives from), or "":
  what formats its predictions where its own code is not imported."""
  from maskmodels import tasks  # pylint: disable=import-outside-toplevel
  for name, cls in (("tagging", tasks.TaggingTask),
                    ("classification", tasks.ClassificationTask)):
    if isinstance(task, cls):
      return name
  return ""


def task_of_saved_model(meta):
  """The task a SavedModel's metadata names; where that task's module is
  not imported, the built-in task it derives from (its predictions read
  the same), else the base task."""
  # pylint: disable=import-outside-toplevel
  from maskmodels import tasks
  from maskmodels.registry import TASKS
  name, config = meta["task"], meta["task_config"]
  if name not in TASKS:
    name, config = meta.get("builtin_task", ""), {}
  if not name:
    return tasks.Task(label_names=meta["label_names"])
  return tasks.build_task(name, config, meta["label_names"])


def predict_rows(texts_fn, words_fn, inputs, batch_size=64):
  """Runs serving functions (a :class:`Server`'s, or a loaded SavedModel's
  signatures) over ``inputs`` in batches.

  Args:
    texts_fn: strings ``texts [batch]`` -> outputs.
    words_fn: ``words [batch, max_words]``, ``lengths [batch]`` -> outputs
      (None if the model takes no word lists).
    inputs: a list of strings, or of word lists.
    batch_size: inputs per call.

  Returns:
    One dict of NumPy values per input.
  """
  rows = []
  for start in range(0, len(inputs), batch_size):
    part = inputs[start:start + batch_size]
    if part and not isinstance(part[0], str):
      lengths = [len(words) for words in part]
      width = max(lengths + [1])
      dense = np.array([list(w) + [""] * (width - len(w)) for w in part],
                       dtype=object).reshape(len(part), width)
      outputs = words_fn(words=tf.constant(dense, tf.string),
                         lengths=tf.constant(lengths, tf.int32))
    else:
      outputs = texts_fn(texts=tf.constant(part, tf.string))
    outputs = {k: v.numpy() for k, v in outputs.items()}
    rows += [{k: v[i] for k, v in outputs.items()} for i in range(len(part))]
  return rows
