"""The one serving path: raw inputs -> features -> model -> task outputs.

Prediction, export and the benchmarks all go through :class:`Server`: raw
inputs of the run's input kind (its featurizer's signatures: strings,
words with lengths, frames with lengths...) are featurized in the graph,
the model runs once, and the task's ``inference_step`` turns its
``ModelOutputs`` into the named tensors it serves (a per-step output blank
past each input's steps, with ``lengths``). The SavedModel carries what
serving needs: the graph, and in its ``metadata()`` the signatures and how
a prediction line shows a row (:func:`describe_row`), so a model whose
task or components came from research code serves, and
``maskmodels-predict`` reads it, in a process that never imports that
code.
"""

import functools
import json
import re

import tensorflow as tf


def _spec_text(spec):
  """``"string [batch]"``, ``"float32 [batch, time, classes]"``: what a
  signature takes or gives."""
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
    """The task's served outputs of featurizer inputs (strings
    ``[batch]``, ragged words ``[batch, (words)]``, ragged frames
    ``[batch, (time), channels]``)."""
    features = self.featurizer.dense(inputs, self.max_len, self.truncation)
    return dict(self.task.inference_step(self.model, features))

  def _serve(self, to_inputs, *arguments):
    """A signature's arguments -> outputs."""
    return self.outputs(to_inputs(*arguments))

  def predict(self, inputs, batch_size=64):
    """Per-input output rows (dicts of NumPy values) for a list of raw
    inputs of the run's kind (strings, word lists, frame arrays)."""
    from maskmodels.registry import INPUT_KINDS  # pylint: disable=import-outside-toplevel
    return predict_rows(self.call, INPUT_KINDS.get(
        self.featurizer.kind).arguments, inputs, batch_size,
                        lambda name: signature_specs(
                            self.serving_functions[name]))

  def call(self, name, arguments):
    """Signature ``name``'s outputs for ``{argument name: tensor}`` (as a
    SavedModel's signature takes them)."""
    function = self.serving_functions[name]
    return function(*[arguments[spec.name]
                      for spec in function.input_signature])


def _text(value):
  """A served string (bytes) as text."""
  return value.decode() if isinstance(value, bytes) else str(value)


def describe_row(inputs, row, display):
  """One prediction line of a served row, as a task's ``display`` says:
  ``{"output": name, "score": name}`` (the score's largest value beside
  the output). A string output per example: ``output<TAB>score<TAB>
  input``; per step (it comes with ``lengths``): each word with its label
  (``word/TAG``), or the labels of a series' frames; numbers are joined.

  Args:
    inputs: the example as given (a string, a word list, frames).
    row: its row of the served outputs (NumPy values).
    display: ``{"output": ..., "score": ...}`` (a task's ``display``).
  """
  # pylint: disable=import-outside-toplevel
  import numpy as np
  from maskmodels.tasks.base import shown
  value = np.asarray(row[display["output"]])
  if "lengths" in row and value.ndim >= 1:
    labels = [_text(v) for v in value[:int(row["lengths"])]]
    if isinstance(inputs, (str, list, tuple)) and value.dtype.kind in "SUO":
      words = inputs.split() if isinstance(inputs, str) else list(inputs)
      return " ".join(f"{w}/{t}" for w, t in zip(words, labels))
    return " ".join(labels)
  if value.dtype.kind in "SUO":
    parts = [_text(value.item() if value.ndim == 0 else value)]
  else:
    parts = [" ".join(f"{v:.4f}" for v in value.ravel())]
  if display.get("score") in row:
    parts.append(f"{np.asarray(row[display['score']]).max():.4f}")
  return "\t".join(parts + [shown(inputs)])


def refusal(error):
  """The reason a serving signature refused a request (an
  ``InvalidArgumentError`` from one of its checks), as one line: the
  check's message and the values it names."""
  message = str(error)
  found = re.search(r"assertion failed: (.*)", message)
  if not found:  # run eagerly: the message is the first line
    return message.splitlines()[0] if message else type(error).__name__
  parts = []
  for part in re.findall(r"\[([^\[\]]*)\]", found.group(1)):
    if part.startswith("Condition"):
      break  # then the compared tensors' names and values
    parts.append(part)
  return " ".join(" ".join(parts).split())


def predict_rows(call, arguments, inputs, batch_size=64, specs=None):
  """Runs serving functions (a :class:`Server`'s, or a loaded SavedModel's
  signatures) over ``inputs`` in batches.

  Args:
    call: ``call(signature name, {argument: tensor})`` -> outputs.
    arguments: the input kind's ``arguments``: a batch of raw inputs ->
      ``(signature name, {argument: tensor})``.
    inputs: a list of raw inputs (strings, word lists, frame arrays).
    batch_size: inputs per call.
    specs: ``specs(signature name)`` -> ``{argument: tf.TensorSpec}``, to
      check a batch's arguments against before the call (None: no check).

  Returns:
    One dict of NumPy values per input.

  Raises:
    InputError: the signature refused a batch (frames of another channel
      count, NaN in a real frame...), naming the inputs and why.
  """
  from maskmodels.errors import InputError  # pylint: disable=import-outside-toplevel
  rows = []
  for start in range(0, len(inputs), batch_size):
    part = inputs[start:start + batch_size]
    refused = f"The model refused inputs {start + 1} to {start + len(part)}"
    name, given = arguments(part)
    for argument, spec in (specs(name) if specs else {}).items():
      value = given[argument]
      if value.dtype != spec.dtype or not spec.shape.is_compatible_with(
          value.shape):
        raise InputError(
            f"{refused}: {argument} {value.dtype.name} "
            f"{list(value.shape)}; the model takes {_spec_text(spec)}.")
    try:
      outputs = {k: v.numpy() for k, v in call(name, given).items()}
    except tf.errors.InvalidArgumentError as error:
      raise InputError(f"{refused}: {refusal(error)}.") from None
    rows += [{k: v[i] for k, v in outputs.items()} for i in range(len(part))]
  return rows


def signature_specs(function):
  """``{argument: tf.TensorSpec}`` of a serving function: a ``tf.function``
  with an input signature, or a loaded SavedModel's signature."""
  if getattr(function, "input_signature", None) is not None:
    return {spec.name: spec for spec in function.input_signature}
  return dict(function.structured_input_signature[1])
