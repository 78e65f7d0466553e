"""Export: one SavedModel that takes raw inputs and returns predictions.

The serving function is ``maskmodels.serving.Server``'s: it featurizes in
the graph (tensorflow-text ops, the vocabulary held in the graph), runs the
model and returns what the task's ``served_outputs`` gives (classification:
probabilities, label ids and labels; tagging: one tag per word, "" past
each input's words, and the words' count). What a loader needs is in the
SavedModel's ``metadata()`` (``requires``, ``load``), printed by the export
command and shown in ``docs/serving.md``: TensorFlow and, for text,
tensorflow-text, imported before the model is called (it registers the
tokenizer ops). The GRU is traced with a generic kernel, never cuDNN's, so
a model exported on a GPU host also serves on a CPU-only one.

The SavedModel is written to a temporary folder beside ``export_dir`` and
renamed into place: a failed export (a full disk) leaves no partial
folder, and a finished one replaces an earlier SavedModel whole.
"""

import json
import os
import shutil

import tensorflow as tf

from maskmodels import progress
from maskmodels.errors import SettingError, environment_fault

SIGNATURE = "serving_default"
WORDS_SIGNATURE = "words"
# What a loader needs before ``tf.saved_model.load`` (the modules whose ops
# the graph uses), as a plain file beside the graph: readable before it
# loads, where the ``metadata()`` function is not.
REQUIRES_FILE = os.path.join("assets.extra", "maskmodels.json")


def loading_snippet(export_dir, requires, example):
  """Python lines that load the SavedModel at ``export_dir`` and call it
  with ``example`` (the signature's arguments, as Python source)."""
  imports = ", ".join(["tensorflow as tf"] + [
      module for module in requires if module != "tensorflow"])
  return (f"import {imports}\n"
          f"model = tf.saved_model.load({export_dir!r})\n"
          f"outputs = model.signatures[{SIGNATURE!r}]({example})")


def _check_target(export_dir):
  """Refuses an ``export_dir`` that holds something other than a
  SavedModel (it would be replaced)."""
  if os.path.isdir(export_dir) and os.listdir(export_dir) and not (
      tf.saved_model.contains_saved_model(export_dir)):
    raise SettingError(f"--export_dir={export_dir}: a folder that holds "
                       f"files but no SavedModel; expected a new folder (or "
                       f"an earlier export, which is replaced).")


def _write_in_place(server, export_dir, signatures, requires):
  """``tf.saved_model.save`` into a temporary folder (with the modules a
  loader needs, ``REQUIRES_FILE``), renamed to ``export_dir`` once
  whole."""
  export_dir = os.path.normpath(export_dir)
  temporary = f"{export_dir}.tmp-{os.getpid()}"
  replaced = f"{export_dir}.old-{os.getpid()}"
  try:
    tf.saved_model.save(server, temporary, signatures=signatures)
    os.makedirs(os.path.dirname(os.path.join(temporary, REQUIRES_FILE)),
                exist_ok=True)
    with open(os.path.join(temporary, REQUIRES_FILE), "w") as f:
      json.dump({"requires": list(requires)}, f)
    if os.path.exists(export_dir):
      os.rename(export_dir, replaced)
    os.rename(temporary, export_dir)
  except (OSError, tf.errors.OpError) as error:
    shutil.rmtree(temporary, ignore_errors=True)
    if os.path.exists(replaced) and not os.path.exists(export_dir):
      os.rename(replaced, export_dir)
    fault = environment_fault(error, export_dir)
    if fault is None:
      raise
    raise fault from error
  shutil.rmtree(replaced, ignore_errors=True)


def export_saved_model(model_dir, export_dir):
  """Exports the trained model in ``model_dir`` to ``export_dir``.

  Returns:
    ``export_dir``, a SavedModel with the input kind's signatures
    (``serving_default``: strings ``[batch]``, or frames ``[batch, time,
    channels]`` with ``lengths`` ``[batch]``; for word lists also
    ``words``: words ``[batch, max_words]`` and ``lengths``), and the
    function ``metadata()`` (a JSON string: the task, its settings, label
    names, the input kind, the signatures, and what a loader needs).
  """
  # pylint: disable=import-outside-toplevel
  from maskmodels.layers.recurrent import set_use_cudnn
  from maskmodels.training import inference
  _check_target(export_dir)
  with progress.heartbeat(f"Loading {model_dir}"):
    run = inference.load_trained(model_dir)
  # Keras picks cuDNN when it traces on a GPU host; its op has no CPU kernel.
  set_use_cudnn(run.model, False)
  server = run.server(loader=loading_snippet(
      export_dir, run.requires, run.kind.example_call(run.assets)))
  signatures = dict(server.serving_functions)
  with progress.heartbeat(f"Tracing and writing the SavedModel to "
                          f"{export_dir}"):
    _write_in_place(server, export_dir, signatures, run.requires)
  return export_dir


def describe(export_dir):
  """What the export command prints: where the SavedModel is, its
  signatures, and how to load it (from its own metadata)."""
  loaded = tf.saved_model.load(export_dir)
  meta = json.loads(loaded.metadata().numpy().decode())
  lines = [f"Exported a SavedModel to {export_dir}."]
  for name, signature in meta["signatures"].items():
    inputs = ", ".join(f"{k} {v}" for k, v in signature["inputs"].items())
    outputs = ", ".join(f"{k} {v}" for k, v in signature["outputs"].items())
    lines.append(f"Signature {name!r}: {inputs} -> {outputs}.")
  needs = " and ".join(meta["requires"])
  lines += [f"Load it with {needs} (import them before calling it):", ""]
  lines += ["    " + line for line in meta["load"].splitlines()]
  return "\n".join(lines)


def is_saved_model(path):
  """Whether ``path`` holds a SavedModel (rather than a model directory)."""
  return tf.saved_model.contains_saved_model(path)


# The pip package of a module a SavedModel may need, for messages.
_PACKAGES = {"tensorflow_text": "tensorflow-text"}


def required_modules(export_dir):
  """The modules an exported SavedModel's graph needs imported before it
  loads (``REQUIRES_FILE``; a SavedModel without it: TensorFlow's and
  tensorflow-text's)."""
  path = os.path.join(export_dir, REQUIRES_FILE)
  if not os.path.isfile(path):
    return ["tensorflow", "tensorflow_text"]
  with open(path) as f:
    return list(json.load(f).get("requires", []))


def load_saved_model(export_dir):
  """An exported SavedModel (its ``signatures`` and ``metadata()``), with
  the modules it needs imported first.

  Raises:
    InputError: a module it needs is not installed, naming the module and
      its package (``tensorflow_text``: ``pip install tensorflow-text``).
  """
  import importlib  # pylint: disable=import-outside-toplevel
  from maskmodels.errors import InputError  # pylint: disable=import-outside-toplevel
  for module in required_modules(export_dir):
    try:
      importlib.import_module(module)
    except ImportError as error:
      raise InputError(
          f"{export_dir} needs the module {module} to load ({error}); "
          f"install it (pip install {_PACKAGES.get(module, module)}).") from None
  try:
    return tf.saved_model.load(export_dir)
  except (RuntimeError, tf.errors.NotFoundError) as error:
    if "Op type not registered" not in str(error):
      raise
    raise InputError(f"{export_dir} uses an op no imported module registers "
                     f"({str(error).splitlines()[0]}); import the module "
                     f"that defines it before loading.") from None


def metadata_of(loaded):
  """The metadata dict of a loaded SavedModel."""
  return json.loads(loaded.metadata().numpy().decode())


def load_serving_function(export_dir):
  """The ``serving_default`` function of an exported SavedModel."""
  return load_saved_model(export_dir).signatures[SIGNATURE]
