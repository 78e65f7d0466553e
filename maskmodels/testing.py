"""Tests for maskmodels layers, models and research code.

Usage::

    from maskmodels import testing
    seqs = testing.random_sequences(8, max_len=20, dim=16)   # float features
    testing.assert_padding_invariant(my_layer, seqs)          # or ids + model
    testing.assert_layer(lambda **kw: MyLayer(32, **kw), seqs)  # every check
    words = testing.random_sentences(8, 12, 10, vocab_size=50,
                                     char_buckets=64)     # words + chars
    testing.assert_nested_padding_invariant(tagger, words, char_buckets=64)

:func:`assert_layer` runs the whole battery on a layer: padding invariance,
a config round trip, finite outputs and gradients on empty sequences, and
the dtype policy of every sublayer under mixed precision. When a model is
not padding invariant, the message names the first sublayer whose real-step
outputs change (:func:`locate_leak`).

Two input kinds are understood:

* token ids: each sequence is int ``[length]``; the model is called as
  ``model(ids, training=False)`` and must derive its mask from ``pad_id``.
* features or frames: each sequence is float ``[length, dim]``; a layer is
  called as ``layer(x, mask=mask, training=False)``, a model (whose
  ``call`` takes no ``mask``: a frame model) as ``model({"frames": x,
  "mask": mask}, training=False)``. Pad steps are filled with large random
  values, and in checks of their own with NaN, so a layer that reads them
  is caught.

The output may be ``[batch, dim]`` (pooled), ``(sequence, mask)``, or a
sequence ``[batch, time, dim]`` on the input's time axis.

:func:`check_nested_padding` checks two levels of padding, words and the
characters inside them (``{"ids": [batch, words], "chars": [batch, words,
chars]}``): extra pad characters, extra pad words, both layouts and
batch-mates must not change a real token's output, and no gradient may
reach a pad token's or a pad character's embedding.
"""

import dataclasses
import inspect

import keras
import numpy as np
import tensorflow as tf

from maskmodels import masking
from maskmodels.outputs import ModelOutputs


class PaddingInvarianceError(AssertionError):
  """Raised by :func:`assert_padding_invariant`; lists every failed check."""


@dataclasses.dataclass
class Failure:
  """One failed check: its name, the sequence, and by how much."""
  check: str
  detail: str
  sequence: int | None = None
  length: int | None = None

  def __str__(self):
    where = ("" if self.sequence is None else
             f" sequence {self.sequence} (length {self.length})")
    return f"[{self.check}]{where}: {self.detail}"


def random_sequences(count, max_len, *, vocab_size=None, dim=None, seed=0,
                     pad_id=0):
  """Random test sequences with lengths spread over ``0..max_len``.

  Lengths always include 0 and ``max_len`` (when ``count >= 2``).

  Args:
    count: number of sequences.
    max_len: the longest length.
    vocab_size: give this for token ids in ``[0, vocab_size)`` minus pad_id.
    dim: give this instead for float features ``[length, dim]``.
    seed: numpy seed.
    pad_id: the id never drawn for a real step.

  Returns:
    A list of numpy arrays, int32 ``[length]`` or float32 ``[length, dim]``.
  """
  if (vocab_size is None) == (dim is None):
    raise ValueError("Give exactly one of vocab_size (ids) or dim (features).")
  rng = np.random.default_rng(seed)
  lengths = list(rng.integers(0, max_len + 1, size=count))
  if count >= 2:
    lengths[0], lengths[1] = 0, max_len
  sequences = []
  for length in lengths:
    if vocab_size is not None:
      ids = rng.integers(1, vocab_size, size=length)
      ids = np.where(ids == pad_id, 0 if pad_id else 1, ids)
      sequences.append(ids.astype(np.int32))
    else:
      sequences.append(rng.normal(size=(length, dim)).astype(np.float32))
  return sequences


def _is_ids(sequences):
  first = np.asarray(sequences[0])
  return first.ndim == 1 and np.issubdtype(first.dtype, np.integer)


def pad_batch(sequences, width, left=False, fill=0, rng=None):
  """Stacks sequences into ``[batch, width, ...]`` plus a bool mask
  ``[batch, width]`` (True = real step), each row's real steps first (or
  last, ``left``).

  ``fill``: the value of pad steps (a pad id, a number, NaN); None for
  large random values from ``rng`` (garbage a layer must not read), and
  ``"nan"`` for NaN."""
  first = np.asarray(sequences[0])
  batch = np.empty((len(sequences), width) + first.shape[1:], first.dtype)
  mask = np.zeros((len(sequences), width), bool)
  for row, seq in enumerate(sequences):
    if fill is None:  # features: garbage the layer must not read
      batch[row] = rng.normal(scale=1e3, size=batch.shape[1:])
    elif fill == "nan":
      batch[row] = np.nan
    else:
      batch[row] = fill
    start = width - len(seq) if left else 0
    batch[row, start:start + len(seq)] = seq
    mask[row, start:start + len(seq)] = True
  return batch, mask


def _call(model, batch, mask, ids):
  """The output of a layer (``(outputs, mask)`` if it returns a mask) or
  of a model (its ``ModelOutputs``: the outputs, with their mask if they
  have one)."""
  if ids:
    outputs = model(tf.constant(batch), training=False)
  elif _takes_mask(model):
    outputs = model(tf.constant(batch), mask=tf.constant(mask),
                    training=False)
  else:  # a model of frames: the mask travels with them
    outputs = model({"frames": tf.constant(batch), "mask": tf.constant(mask)},
                    training=False)
  if isinstance(outputs, ModelOutputs):  # a model's (the combined output)
    return (outputs.outputs if outputs.mask is None else
            (outputs.outputs, outputs.mask))
  return outputs


def _real_outputs(outputs, in_mask, ids, pad_id, batch):
  """Per-sequence outputs restricted to real steps, as numpy arrays."""
  if isinstance(outputs, (tuple, list)):
    values, out_mask = outputs
  else:
    values, out_mask = outputs, None
  values = np.asarray(tf.cast(values, tf.float32))
  if values.ndim == 2:
    return list(values)
  if out_mask is None:
    if values.shape[1] != batch.shape[1]:
      raise ValueError(
          "The output changes the time axis but returns no mask; return "
          "(outputs, mask) so the checker can find the real steps.")
    out_mask = batch != pad_id if ids else in_mask
  out_mask = np.asarray(out_mask).astype(bool)
  return [values[row][out_mask[row]] for row in range(len(values))]


def _compare(check, reference, candidate, lengths, atol, rtol):
  failures = []
  for i, (ref, got) in enumerate(zip(reference, candidate)):
    if ref.shape != got.shape:
      failures.append(Failure(
          check, f"output shape {got.shape} != {ref.shape} alone", i,
          lengths[i]))
      continue
    if not np.all(np.isfinite(got)):
      failures.append(Failure(check, "non-finite output", i, lengths[i]))
      continue
    if ref.size:
      diff = np.abs(got - ref)
      excess = diff - (atol + rtol * np.abs(ref))
      if np.max(excess) > 0:
        failures.append(Failure(
            check, f"max |diff| = {np.max(diff):.3g} exceeds atol {atol:g}"
            f" (+ rtol {rtol:g})", i, lengths[i]))
  return failures


def _pad_gradient(model, batch, mask, ids, pad_id, seed, pad_rows=None):
  """Largest |d loss / d input| over pad positions (embedding rows for ids)."""
  x = tf.constant(batch)
  with tf.GradientTape() as tape:
    if not ids:
      tape.watch(x)
    outputs = _call(model, x, mask, ids)
    if isinstance(outputs, (tuple, list)):
      values, out_mask = outputs
      values = masking.apply_mask(values, out_mask)
    else:
      values = outputs
    values = tf.cast(values, tf.float32)
    weights = tf.random.stateless_normal(tf.shape(values), seed=[seed, 1])
    loss = tf.reduce_sum(values * weights)
  if not ids:
    grad = tape.gradient(loss, x)
    if grad is None:
      return 0.0, True
    grad = np.asarray(grad)
    return float(np.max(np.abs(grad[~mask]), initial=0.0)), bool(
        np.all(np.isfinite(grad)))
  rows = pad_rows if pad_rows is not None else (
      model.pad_rows() if hasattr(model, "pad_rows") else [])
  if not rows:
    raise ValueError(
        "The model names no embedding rows that pad positions look up "
        "(pad_rows()); cannot check their gradient. Pass "
        "check_gradients=False, or check the encoder on float features.")
  worst, finite = 0.0, True
  grads = tape.gradient(loss, [variable for variable, _ in rows])
  for grad, (_, row) in zip(grads, rows):
    if grad is None:
      continue
    if isinstance(grad, tf.IndexedSlices):
      values, indices = np.asarray(grad.values), np.asarray(grad.indices)
      at_pad = values[indices == row]
    else:
      values = np.asarray(grad)
      at_pad = values[row:row + 1]
    finite &= bool(np.all(np.isfinite(values)))
    worst = max(worst, float(np.max(np.abs(at_pad), initial=0.0)))
  return worst, finite


def check_padding_invariance(model, sequences, *, pad_id=0, extra_padding=3,
                             atol=1e-5, rtol=0.0, check_gradients=True,
                             seed=0, pad_rows=None):
  """Runs every padding-invariance check and returns the failures.

  Each sequence's output alone, padded to its own length, is the reference.
  The checks compare it with: the sequence alone with ``extra_padding`` more
  pad steps on the right, alone left-padded, in one batch with all the others
  right-padded, and the same batch left-padded. With ``check_gradients`` the
  gradient of a random projection of the outputs with respect to pad-position
  inputs (embedding rows looked up at pad ids, for id models) must be exactly
  zero, and all gradients finite.

  Args:
    model: a callable Keras layer or model.
    sequences: list of int ``[length]`` ids or float ``[length, dim]`` features.
    pad_id: pad id for id sequences.
    extra_padding: extra pad steps added beyond the needed width.
    atol, rtol: tolerances of the value comparisons.
    check_gradients: whether to run the gradient check.
    seed: seed for pad garbage and gradient projections.
    pad_rows: ``[(embedding variable, row)]`` that pad positions look up
      (default: ``model.pad_rows()``, which maskmodels models give); only
      these rows' gradients are checked.

  Returns:
    A list of :class:`Failure`; empty when the model is padding invariant.
  """
  if not sequences:
    raise ValueError("sequences is empty; give at least one sequence.")
  if extra_padding < 1:
    raise ValueError(f"extra_padding must be >= 1, got {extra_padding!r}.")
  ids = _is_ids(sequences)
  fill = pad_id if ids else None
  rng = np.random.default_rng(seed)
  lengths = [len(s) for s in sequences]

  def outputs_of(seqs, width, left, pads=fill):
    batch, mask = pad_batch(seqs, width, left, pads, rng)
    return _real_outputs(_call(model, batch, mask, ids), mask, ids, pad_id,
                         batch)

  reference = [outputs_of([s], max(len(s), 1), False)[0] for s in sequences]
  failures = []
  width = max(lengths) + extra_padding
  for check, left in (("extra right padding", False), ("left padding", True)):
    alone = [outputs_of([s], len(s) + extra_padding, left)[0]
             for s in sequences]
    failures += _compare(f"alone, {check}", reference, alone, lengths, atol,
                         rtol)
  for check, left in (("batched, right padding", False),
                      ("batched, left padding", True)):
    failures += _compare(check, reference, outputs_of(sequences, width, left),
                         lengths, atol, rtol)
  if not ids:  # NaN at every pad step must not reach a real output
    for check, left in (("batched, NaN padding", False),
                        ("batched, NaN left padding", True)):
      failures += _compare(check, reference, outputs_of(
          sequences, width, left, "nan"), lengths, atol, rtol)
  if check_gradients:
    batch, mask = pad_batch(sequences, width, True, fill, rng)
    worst, finite = _pad_gradient(model, batch, mask, ids, pad_id, seed,
                                  pad_rows)
    if worst != 0.0:
      failures.append(Failure("gradient at pad steps",
                              f"max |grad| = {worst:.3g}, expected exactly 0"))
    if not finite:
      failures.append(Failure("gradient finite", "non-finite gradient"))
  return failures


def assert_padding_invariant(model, sequences, **kwargs):
  """Raises :class:`PaddingInvarianceError` naming every failed check.

  Takes the same arguments as :func:`check_padding_invariance`.
  """
  failures = check_padding_invariance(model, sequences, **kwargs)
  if failures:
    name = getattr(model, "name", type(model).__name__)
    leak = locate_leak(model, sequences, **{
        k: v for k, v in kwargs.items()
        if k in ("pad_id", "extra_padding", "atol", "rtol")})
    raise PaddingInvarianceError(
        f"{name} is not padding invariant; {len(failures)} check(s) failed:\n"
        + "\n".join(f"  {failure}" for failure in failures) +
        (f"\n  first leaking sublayer: {leak}" if leak else ""))


# --------------------------------------------------------------------------
# Which sublayer leaks.
# --------------------------------------------------------------------------


def _takes_mask(layer):
  try:
    return "mask" in inspect.signature(layer.call).parameters
  except (TypeError, ValueError):
    return False


class _Recorder:
  """Records the real-step outputs of every mask-taking sublayer, in the
  order their calls finish (inner layers before the layers around them)."""

  def __init__(self, model):
    self.records = []
    self.layers = [layer for layer in model._flatten_layers(  # pylint: disable=protected-access
        include_self=False) if _takes_mask(layer)]

  def __enter__(self):
    for layer in self.layers:
      layer.call = self._recording(layer, layer.call)
    return self

  def __exit__(self, *exc):
    for layer in self.layers:
      del layer.call

  def _recording(self, layer, call):
    def recorded(inputs, *args, **kwargs):
      outputs = call(inputs, *args, **kwargs)
      mask = kwargs.get("mask")
      try:
        rows = None if mask is None else _real_outputs(
            outputs, np.asarray(mask), False, 0, np.asarray(inputs)[..., 0])
      except (ValueError, TypeError, IndexError):
        rows = None  # output not on a time axis the checker can align
      self.records.append((getattr(layer, "path", layer.name), rows))
      return outputs
    return recorded


def _sublayer_outputs(model, batch, mask, ids):
  with _Recorder(model) as recorder:
    _call(model, batch, mask, ids)
  return recorder.records


def locate_leak(model, sequences, *, pad_id=0, extra_padding=3, atol=1e-5,
                rtol=0.0):
  """The first sublayer whose real-step outputs change with padding.

  Runs each sequence alone and then all of them in one left-padded and one
  right-padded batch, recording the real-step outputs of every sublayer
  that takes ``mask=``, and compares them in the order the sublayers'
  calls finish (inner layers first).

  Returns:
    ``"<layer path> (max |diff| = .., sequence i)"``, or None when every
    sublayer agrees (the leak then lies outside them, or only in gradients).
  """
  ids = _is_ids(sequences)
  rng = np.random.default_rng(0)
  fill = pad_id if ids else None
  alone = []
  for seq in sequences:
    batch, mask = pad_batch([seq], max(len(seq), 1), False, fill, rng)
    alone.append(_sublayer_outputs(model, batch, mask, ids))
  width = max(len(s) for s in sequences) + extra_padding
  for left in (False, True):
    batch, mask = pad_batch(sequences, width, left, fill, rng)
    together = _sublayer_outputs(model, batch, mask, ids)
    for index, (path, rows) in enumerate(together):
      if rows is None:
        continue
      for i, reference in enumerate(alone):
        ref = reference[index][1] if index < len(reference) else None
        if ref is None or ref[0].shape != rows[i].shape or not ref[0].size:
          continue
        diff = np.abs(rows[i] - ref[0])
        if np.max(diff - (atol + rtol * np.abs(ref[0]))) > 0:
          return f"{path} (max |diff| = {np.max(diff):.3g}, sequence {i})"
  return None


# --------------------------------------------------------------------------
# The battery every layer passes.
# --------------------------------------------------------------------------


def _sample(sequences):
  """A right-padded batch and mask of ``sequences`` (pads zero)."""
  batch, mask = pad_batch(sequences, max(len(s) for s in sequences) or 1,
                           False, 0 if _is_ids(sequences) else None,
                           np.random.default_rng(1))
  if not _is_ids(sequences):
    batch = np.where(mask[..., None], batch, 0.0).astype(np.float32)
  return batch, mask


def check_config_round_trip(layer, sequences):
  """``from_config(get_config())`` with the same weights gives the same
  outputs; returns failures."""
  batch, mask = _sample(sequences)
  ids = _is_ids(sequences)
  want = tf.nest.flatten(_call(layer, batch, mask, ids))
  try:
    clone = type(layer).from_config(layer.get_config())
    _call(clone, batch, mask, ids)
    clone.set_weights(layer.get_weights())
    got = tf.nest.flatten(_call(clone, batch, mask, ids))
  except Exception as error:  # pylint: disable=broad-except
    return [Failure("config round trip", f"{type(error).__name__}: {error}")]
  if len(got) != len(want) or not all(
      np.array_equal(np.asarray(g), np.asarray(w)) for g, w in zip(got, want)):
    return [Failure("config round trip", "outputs differ after "
                    "from_config(get_config()) with the same weights")]
  return []


def check_empty_sequences(layer, sequences):
  """Outputs and gradients are finite for a batch whose sequences are all
  empty, on a time axis of its usual width and of width 0, and for a batch
  of no sequence at all (zero rows)."""
  ids = _is_ids(sequences)
  failures = []
  template = np.asarray(sequences[0])
  for rows, width in ((3, max(len(s) for s in sequences)), (3, 0),
                      (0, max(len(s) for s in sequences))):
    shape = (rows, width) + template.shape[1:]
    batch = np.zeros(shape, template.dtype)
    mask = np.zeros((rows, width), bool)
    x = tf.constant(batch)
    check = f"empty sequences, {rows} rows of width {width}"
    try:
      with tf.GradientTape() as tape:
        if not ids:
          tape.watch(x)
        outputs = _call(layer, x, mask, ids)
        loss = sum(tf.reduce_sum(tf.cast(t, tf.float32))
                   for t in tf.nest.flatten(outputs) if t.dtype.is_floating)
      grads = tape.gradient(loss, ([] if ids else [x]) +
                            layer.trainable_variables)
    except (tf.errors.OpError, ValueError) as error:
      failures.append(Failure(check, f"raises {type(error).__name__}: "
                              f"{str(error).strip().splitlines()[0][:200]}"))
      continue
    finite = all(np.all(np.isfinite(np.asarray(tf.cast(t, tf.float32))))
                 for t in tf.nest.flatten(outputs) if t.dtype.is_floating)
    finite_grads = all(np.all(np.isfinite(np.asarray(tf.convert_to_tensor(
        g)))) for g in grads if g is not None)
    if not (finite and finite_grads):
      failures.append(Failure(check, "non-finite " + (
          "outputs" if not finite else "gradients")))
  return failures


def check_dtype_policy(factory, sequences, policy="mixed_bfloat16"):
  """Every sublayer of ``factory(dtype=policy)`` computes in ``policy``
  (or, deliberately, in float32).

  The global policy is set to another mixed policy meanwhile, so a
  sublayer created without ``dtype=self.dtype_policy`` shows up.
  """
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(
      "mixed_float16" if policy != "mixed_float16" else "mixed_bfloat16")
  try:
    layer = factory(dtype=policy)
    batch, mask = _sample(sequences)
    _call(layer, batch, mask, _is_ids(sequences))
  finally:
    keras.mixed_precision.set_global_policy(previous)
  return [Failure("dtype policy", f"sublayer {sub.path or sub.name} computes in "
                  f"{sub.dtype_policy.name}, not {policy}; pass "
                  f"dtype=self.dtype_policy when creating it")
          for sub in layer._flatten_layers(include_self=False)  # pylint: disable=protected-access
          if sub.dtype_policy.name not in (policy, "float32")]


def check_layer(factory, sequences, *, atol=1e-5, mixed_precision=True,
                **invariance_kwargs):
  """Runs the whole battery on the layer ``factory(**kwargs)`` builds.

  Args:
    factory: builds the layer (or model); it must accept ``dtype=``.
    sequences: test sequences (:func:`random_sequences`), ids or features.
    atol: tolerance of the padding-invariance comparisons.
    mixed_precision: also check sublayer dtype policies.
    **invariance_kwargs: more arguments for :func:`check_padding_invariance`.

  Returns:
    Failures of every check; empty when the layer passes.
  """
  layer = factory()
  failures = check_padding_invariance(layer, sequences, atol=atol,
                                      **invariance_kwargs)
  failures += check_config_round_trip(layer, sequences)
  failures += check_empty_sequences(layer, sequences)
  if mixed_precision:
    failures += check_dtype_policy(factory, sequences)
  return failures


def assert_layer(factory, sequences, **kwargs):
  """Raises :class:`PaddingInvarianceError` listing every failed check of
  :func:`check_layer` (and the first leaking sublayer, if any)."""
  failures = check_layer(factory, sequences, **kwargs)
  if failures:
    layer = factory()
    leak = locate_leak(layer, sequences) if any(
        f.sequence is not None for f in failures) else None
    raise PaddingInvarianceError(
        f"{layer.name}: {len(failures)} check(s) failed:\n" +
        "\n".join(f"  {failure}" for failure in failures) +
        (f"\n  first leaking sublayer: {leak}" if leak else ""))


# --------------------------------------------------------------------------
# Cross-replica reductions in a training step.
# --------------------------------------------------------------------------


class CollectiveCounter:
  """Records the cross-replica reductions traced inside ``trainer.train_step``.

  Use as a context manager around the first ``trainer.train`` call (the one
  that traces): ``calls`` then lists ``(kind, values)`` per reduction, kind
  being ``batch_reduce_to`` (an all-reduce of ``values`` tensors),
  ``reduce_to`` (an aggregated variable update) or ``broadcast_to``.

  Args:
    strategy: the trainer's ``tf.distribute`` strategy.
    trainer: a :class:`~maskmodels.training.Trainer`.
  """

  KINDS = ("reduce_to", "batch_reduce_to", "broadcast_to")

  def __init__(self, strategy, trainer):
    self.strategy, self.trainer = strategy, trainer
    self.calls, self._active = [], False

  def _counted(self, kind, method):
    def counted(*args, **kwargs):
      if self._active:
        values = args[1] if kind == "batch_reduce_to" else [args[0]]
        self.calls.append((kind, len(values)))
      return method(*args, **kwargs)
    return counted

  def _step(self, step):
    def counted_step(batch):
      self._active = True
      try:
        return step(batch)
      finally:
        self._active = False
    return counted_step

  def __enter__(self):
    extended = self.strategy.extended
    for kind in self.KINDS:
      setattr(extended, kind, self._counted(kind, getattr(extended, kind)))
    self.trainer.train_step = self._step(self.trainer.train_step)
    return self

  def __exit__(self, *exc):
    for kind in self.KINDS:
      delattr(self.strategy.extended, kind)
    del self.trainer.train_step

  def gradient_all_reduces(self):
    """All-reduces that carry every trainable variable's gradient."""
    size = len(self.trainer.model.trainable_variables)
    return self.calls.count(("batch_reduce_to", size))


# --------------------------------------------------------------------------
# Two levels of padding: words, and characters inside words.
# --------------------------------------------------------------------------


def random_sentences(count, max_words, max_chars, *, vocab_size,
                     char_buckets, seed=0):
  """Random sentences of words with characters, for nested padding checks.

  Lengths always include an empty sentence, a full one, one-character and
  ``max_chars``-character words.

  Returns:
    A list of ``(ids, chars)``: int32 ``[words]`` token ids (never 0) and a
    list of int32 ``[length]`` character ids per word (never 0).
  """
  rng = np.random.default_rng(seed)
  sentences = []
  for index in range(count):
    words = int(rng.integers(0, max_words + 1))
    words = {0: 0, 1: max_words}.get(index, words)
    ids = rng.integers(1, vocab_size, size=words).astype(np.int32)
    chars = [rng.integers(1, char_buckets, size=int(rng.integers(
        1, max_chars + 1))).astype(np.int32) for _ in range(words)]
    if words:
      chars[0] = chars[0][:1]  # a one-character word
      chars[-1] = rng.integers(1, char_buckets, size=max_chars).astype(
          np.int32)
    sentences.append((ids, chars))
  return sentences


def _nested_batch(sentences, words, chars, left_words, left_chars, rng,
                  char_buckets):
  """Features ``{"ids": [b, words], "chars": [b, words, chars]}`` and the
  word mask; pad words hold random character ids (a model must not read
  them)."""
  batch = len(sentences)
  ids = np.zeros((batch, words), np.int32)
  codes = rng.integers(1, char_buckets, size=(batch, words, chars)).astype(
      np.int32)
  mask = np.zeros((batch, words), bool)
  for row, (sentence_ids, sentence_chars) in enumerate(sentences):
    start = words - len(sentence_ids) if left_words else 0
    ids[row, start:start + len(sentence_ids)] = sentence_ids
    mask[row, start:start + len(sentence_ids)] = True
    for offset, word in enumerate(sentence_chars):
      slot = codes[row, start + offset]
      slot[:] = 0
      begin = chars - len(word) if left_chars else 0
      slot[begin:begin + len(word)] = word
  return {"ids": ids, "chars": codes}, mask


def _nested_call(model, features, mask):
  features = {k: tf.constant(v) for k, v in features.items()}
  if getattr(model, "feature", None):  # a word-feature layer
    return model(features, mask=tf.constant(mask), training=False)
  outputs = model(features, training=False)
  if isinstance(outputs, ModelOutputs):  # a model's (per step: in the
    return outputs.outputs               # input's layout, as the words)
  return outputs


def _per_sentence(outputs, mask):
  values = np.asarray(tf.cast(outputs, tf.float32))
  if values.ndim == 2:
    return list(values)
  return [values[row][mask[row]] for row in range(len(values))]


def check_nested_padding(model, sentences, *, char_buckets, extra_words=3,
                         extra_chars=3, atol=1e-5, check_gradients=True,
                         seed=0, pad_rows=None):
  """Padding checks at both levels; returns the failures.

  Each sentence alone, with as many word slots as words and as many
  character slots as its longest word, is the reference. The checks
  compare it with: extra pad characters inside every word, its characters
  aligned to the end of their slots (left-padded words), extra pad words
  on the right and on the left, and all sentences in one batch (right- and
  left-padded). Pad words always hold random character ids, which must
  not matter. With ``check_gradients``, the gradient of a random
  projection of the outputs at the embedding rows that pad positions look
  up (``model.pad_rows()``: pad tokens and pad characters) must be
  exactly zero, and every gradient finite.

  Args:
    model: a model taking features ``{"ids", "chars"}`` (its output per
      sequence ``[batch, dim]`` or per token ``[batch, words, ...]``), or a
      word-feature layer (``layer(features, mask=word_mask)``).
    sentences: :func:`random_sentences` output.
    char_buckets: character ids are below this.
    extra_words, extra_chars: pad words and pad characters added.

  Returns:
    A list of :class:`Failure`.
  """
  rng = np.random.default_rng(seed)
  lengths = [len(ids) for ids, _ in sentences]

  def longest(group):
    return max([len(w) for _, chars in group for w in chars] + [1])

  def run(group, words, chars, left_words=False, left_chars=False):
    features, mask = _nested_batch(group, words, chars, left_words,
                                   left_chars, rng, char_buckets)
    return _per_sentence(_nested_call(model, features, mask), mask)

  reference = [run([s], max(len(s[0]), 1), longest([s]))[0]
               for s in sentences]
  failures = []
  for check, options in (
      ("extra pad characters", dict(extra_chars=extra_chars)),
      ("characters left-padded", dict(extra_chars=extra_chars,
                                      left_chars=True)),
      ("extra pad words", dict(extra_words=extra_words)),
      ("words left-padded", dict(extra_words=extra_words, left_words=True))):
    extra_w, extra_c = (options.pop("extra_words", 0),
                        options.pop("extra_chars", 0))
    alone = [run([s], max(len(s[0]), 1) + extra_w, longest([s]) + extra_c,
                 **options)[0] for s in sentences]
    failures += _compare(f"alone, {check}", reference, alone, lengths, atol,
                         0.0)
  width, chars = max(lengths) + extra_words, longest(sentences) + extra_chars
  for check, left in (("batched, right padding", False),
                      ("batched, left padding", True)):
    failures += _compare(check, reference, run(
        sentences, width, chars, left_words=left, left_chars=left),
                         lengths, atol, 0.0)
  if check_gradients:
    failures += _nested_gradient_failures(model, sentences, width, chars,
                                          rng, char_buckets, seed, pad_rows)
  return failures


def _nested_gradient_failures(model, sentences, words, chars, rng,
                              char_buckets, seed, pad_rows):
  features, mask = _nested_batch(sentences, words, chars, True, False, rng,
                                 char_buckets)
  rows = pad_rows if pad_rows is not None else (
      model.pad_rows() if hasattr(model, "pad_rows") else [])
  if not rows:
    raise ValueError("The model names no embedding rows that pad positions "
                     "look up (pad_rows()); pass check_gradients=False.")
  with tf.GradientTape() as tape:
    outputs = tf.cast(_nested_call(model, features, mask), tf.float32)
    if outputs.shape.rank > 2:
      outputs = masking.apply_mask(outputs, tf.constant(mask))
    loss = tf.reduce_sum(outputs * tf.random.stateless_normal(
        tf.shape(outputs), seed=[seed, 2]))
  failures, worst = [], 0.0
  for grad, (_, row) in zip(tape.gradient(loss, [v for v, _ in rows]), rows):
    if grad is None:
      continue
    if isinstance(grad, tf.IndexedSlices):
      values, indices = np.asarray(grad.values), np.asarray(grad.indices)
      at_pad = values[indices == row]
    else:
      values = np.asarray(grad)
      at_pad = values[row:row + 1]
    if not np.all(np.isfinite(values)):
      failures.append(Failure("gradient finite", "non-finite gradient"))
    worst = max(worst, float(np.max(np.abs(at_pad), initial=0.0)))
  if worst != 0.0:
    failures.append(Failure("gradient at pad tokens and characters",
                            f"max |grad| = {worst:.3g}, expected exactly 0"))
  return failures


def assert_nested_padding_invariant(model, sentences, **kwargs):
  """Raises :class:`PaddingInvarianceError` naming every failed check of
  :func:`check_nested_padding` (same arguments)."""
  failures = check_nested_padding(model, sentences, **kwargs)
  if failures:
    name = getattr(model, "name", type(model).__name__)
    raise PaddingInvarianceError(
        f"{name} is not invariant to padding at both levels; "
        f"{len(failures)} check(s) failed:\n" +
        "\n".join(f"  {failure}" for failure in failures))
