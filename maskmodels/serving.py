"""The one serving path: raw inputs -> features -> model -> task outputs.

Prediction, export and the benchmarks all go through :class:`Server`: raw
inputs of the run's input kind (strings; words split at whitespace, or
given word lists; frames with their lengths) are featurized in the graph,
the model runs once, and ``task.postprocess`` turns its output into named
tensors. A per-step task's outputs also carry ``lengths``, the steps of
each input, so labels align with words or frames; past each input's
length every per-step output is blank (:func:`blank_past_lengths`), so
nothing there reads as a step's label.
"""

import functools
import json

import tensorflow as tf


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
    featurizer: the run's featurizer (``maskmodels.data.kinds``).
    model: the trained model.
    max_len: steps kept per input (None: all).
    truncation: ``"head"``, ``"tail"`` or ``"both"``.
    metadata: a JSON-able dict served by :meth:`metadata` (the task's
      name, settings and label names, the input kind, for
      ``maskmodels-predict``).
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
    # One function per signature of the input kind; each takes its
    # arguments and turns them into the featurizer's inputs.
    self.serving_functions = {
        name: tf.function(functools.partial(self._serve, to_inputs),
                          autograph=False, input_signature=specs)
        for name, (specs, to_inputs) in featurizer.signatures().items()}
    self.texts = self.serving_functions["serving_default"]
    self.words = self.serving_functions.get("words")
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
        for name, function in self.serving_functions.items()}
    return tf.constant(json.dumps(meta))

  @property
  def model(self):
    """The served Keras model."""
    return self._model.value

  def outputs(self, inputs):
    """Postprocessed outputs of featurizer inputs (strings ``[batch]``,
    ragged words ``[batch, (words)]``, ragged frames ``[batch, (time),
    channels]``)."""
    features = self.featurizer.dense(inputs, self.max_len, self.truncation)
    outputs = dict(self.task.inference_step(self.model, features))
    if self.task.labels.per_token:
      lengths = tf.cast(self.featurizer.lengths(features), tf.int32)
      outputs = blank_past_lengths(outputs, lengths)
      outputs["lengths"] = lengths
    return outputs

  def _serve(self, to_inputs, *arguments):
    """A signature's arguments -> outputs."""
    return self.outputs(to_inputs(*arguments))

  def predict(self, inputs, batch_size=64):
    """Per-input output rows (dicts of NumPy values) for a list of raw
    inputs of the run's kind (strings, word lists, frame arrays)."""
    from maskmodels.registry import INPUT_KINDS  # pylint: disable=import-outside-toplevel
    return predict_rows(self.call, INPUT_KINDS.get(
        self.featurizer.kind).arguments, inputs, batch_size)

  def call(self, name, arguments):
    """Signature ``name``'s outputs for ``{argument name: tensor}`` (as a
    SavedModel's signature takes them)."""
    function = self.serving_functions[name]
    return function(*[arguments[spec.name]
                      for spec in function.input_signature])


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


def predict_rows(call, arguments, inputs, batch_size=64):
  """Runs serving functions (a :class:`Server`'s, or a loaded SavedModel's
  signatures) over ``inputs`` in batches.

  Args:
    call: ``call(signature name, {argument: tensor})`` -> outputs.
    arguments: the input kind's ``arguments``: a batch of raw inputs ->
      ``(signature name, {argument: tensor})``.
    inputs: a list of raw inputs (strings, word lists, frame arrays).
    batch_size: inputs per call.

  Returns:
    One dict of NumPy values per input.
  """
  rows = []
  for start in range(0, len(inputs), batch_size):
    part = inputs[start:start + batch_size]
    outputs = {k: v.numpy() for k, v in call(*arguments(part)).items()}
    rows += [{k: v[i] for k, v in outputs.items()} for i in range(len(part))]
  return rows
