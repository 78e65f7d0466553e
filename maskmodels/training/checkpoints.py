"""Checkpoints of a model and optimizer, with a manifest of what they hold.

Keras 3 keeps sublayers held in Python lists (an encoder's blocks, a head)
out of TensorFlow's object graph, so attribute tracking would silently skip
their weights; checkpoints therefore hold ``model.variables`` and
``optimizer.variables`` as ordered lists. A list is keyed by position, so
each checkpoint also carries a manifest: one ``path shape dtype`` line per
saved value, by Keras variable path (layer names with Keras's automatic
``_<n>`` suffixes removed, so a rebuilt model in the same process matches).
Restoring compares the manifests first and refuses a mismatch, naming the
first differing entry, instead of loading ``beta`` into ``gamma``.
"""

import json
import re

import tensorflow as tf

from maskmodels.errors import InputError

MANIFEST_KEY = "manifest/.ATTRIBUTES/py_state"
_AUTO_SUFFIX = re.compile(r"_\d+$")


def _stable(path, root=None):
  """A Keras variable path from below the model ``root`` names (else
  without its first part), auto suffixes removed: the same for a rebuilt
  model in the same process, whatever name scopes were open around it."""
  parts = [_AUTO_SUFFIX.sub("", part) for part in path.split("/")]
  root = _AUTO_SUFFIX.sub("", root) if root else None
  if root in parts[:-1]:
    return "/".join(parts[parts.index(root) + 1:])
  return "/".join(parts[1:] if len(parts) > 2 else parts)


def _entry(name, variable):
  shape = "x".join(str(d) for d in variable.shape) or "scalar"
  dtype = getattr(variable.dtype, "name", variable.dtype)
  return f"{name} {shape} {dtype}"


def variable_manifest(model, optimizer=None):
  """``["path shape dtype", ...]`` of the model's (and optimizer's)
  variables, in checkpoint order."""
  entries = [_entry("model/" + _stable(v.path, model.name), v)
             for v in model.variables]
  if optimizer is not None:
    # Keras names a slot after its variable's path with "/" as "_".
    slots = sorted(((v.path.replace("/", "_"), _stable(v.path, model.name))
                    for v in model.trainable_variables),
                   key=lambda pair: -len(pair[0]))
    kind = type(getattr(optimizer, "inner_optimizer", optimizer)).__name__
    for variable in optimizer.variables:
      name = variable.path.split("/")[-1]
      for prefix, stable in slots:
        if name.startswith(prefix):
          name = stable + name[len(prefix):]
          break
      entries.append(_entry(f"optimizer/{kind}/{name}", variable))
  return entries


class _Manifest(tf.train.experimental.PythonState):
  """The manifest as Python state inside a TensorFlow checkpoint."""

  def __init__(self, entries):
    self.entries = entries

  def serialize(self):
    return json.dumps(self.entries)

  def deserialize(self, string_value):
    del string_value  # compared before restoring, by check_manifest


def weights_checkpoint(model, optimizer=None, **extra):
  """A ``tf.train.Checkpoint`` of a model's (and optimizer's) variables.

  ``model.variables`` also holds the dropout seed states, so a resumed run
  draws the same dropout masks. ``extra`` trackables (a step counter) are
  saved alongside.
  """
  if optimizer is not None:
    extra["optimizer"] = list(optimizer.variables)
  return tf.train.Checkpoint(
      model=list(model.variables),
      manifest=_Manifest(variable_manifest(model, optimizer)), **extra)


def check_manifest(path, checkpoint):
  """Raises an InputError if checkpoint file ``path`` holds other values
  than ``checkpoint`` (a :func:`weights_checkpoint`) expects.

  Only the entries ``checkpoint`` holds are compared, so a model-only
  checkpoint can read a full one.
  """
  reader = tf.train.load_checkpoint(path)
  if not reader.has_tensor(MANIFEST_KEY):
    raise InputError(f"Checkpoint {path} has no manifest of its values (it "
                     f"was written by maskmodels 0.1); retrain in a new "
                     f"--model_dir.")
  saved = json.loads(reader.get_tensor(MANIFEST_KEY))
  expected = checkpoint.manifest.entries
  for group in ("model/", "optimizer/"):
    mine = [e for e in expected if e.startswith(group)]
    theirs = [e for e in saved if e.startswith(group)]
    if not mine:
      continue
    for index, (want, got) in enumerate(zip(mine, theirs + [None] * len(
        mine))):
      if want != got:
        raise InputError(
            f"Checkpoint {path} does not match this model: {group[:-1]} "
            f"value {index} is {got or 'missing'!r} there, {want!r} here. Use "
            f"a new --model_dir, or the settings the checkpoint was trained "
            f"with.")
    if len(theirs) > len(mine):
      raise InputError(f"Checkpoint {path} holds {len(theirs)} {group[:-1]} "
                       f"values, this model {len(mine)}; first extra: "
                       f"{theirs[len(mine)]!r}.")


def restore(checkpoint, path):
  """Checks ``path`` against ``checkpoint``'s manifest, then restores it."""
  check_manifest(path, checkpoint)
  checkpoint.restore(path).expect_partial().assert_existing_objects_matched()


def checkpoint_step(path):
  """The step a checkpoint path names (``.../ckpt-348`` -> 348)."""
  return int(path.rsplit("-", 1)[1])


def restore_weights(model, path):
  """Loads the model weights of checkpoint ``path`` (other state ignored)."""
  restore(weights_checkpoint(model), path)


def unreadable(path):
  """Why checkpoint ``path`` cannot be read (its index or any value: a
  truncated or damaged file), or None if every value reads."""
  try:
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_dtype_map():
      reader.get_tensor(name)
  except (tf.errors.OpError, IndexError, ValueError, OSError) as error:
    return str(error).strip().splitlines()[0] if str(error).strip() else (
        type(error).__name__)
  return None
