"""tf.data pipelines: examples -> batches of ``(ids, labels, weights)``.

A batch is ``ids`` int32 ``[batch, time]`` (0 = pad, right-padded), ``labels``
int32 ``[batch]`` and ``weights`` float32 ``[batch]``: 1 for a real example,
0 for the filler rows that complete a final evaluation batch. Summing weights
counts every example exactly once.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from maskmodels.data import text as text_lib


@dataclasses.dataclass
class PipelineConfig:
  """How examples become batches.

  Attributes:
    max_len: tokens kept per text.
    batch_size: examples per batch (per replica when built from an
      InputContext, which divides the global batch size).
    truncation: ``"head"``, ``"tail"`` or ``"both"``.
    bucket_boundaries: sequence-length bucket edges (sorted ints), or None to
      pad each batch to its longest sequence without bucketing. See
      :func:`length_boundaries`.
    static_shapes: TPU mode: every batch padded to its bucket's edge; training
      keeps full batches only, evaluation fills the last batch of each bucket
      with zero-weight rows.
    shuffle_buffer: 0 for no shuffling.
    seed: shuffle seed.
  """
  max_len: int = 256
  batch_size: int = 32
  truncation: str = "head"
  bucket_boundaries: tuple = None
  static_shapes: bool = False
  shuffle_buffer: int = 10000
  seed: int = 0

  def __post_init__(self):
    for name in ("max_len", "batch_size"):
      value = getattr(self, name)
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    if self.truncation not in text_lib.TRUNCATIONS:
      raise ValueError(f"truncation must be one of {text_lib.TRUNCATIONS}, "
                       f"got {self.truncation!r}.")
    if self.static_shapes and not self.bucket_boundaries:
      # One bucket of the full width: every batch [batch_size, max_len].
      self.bucket_boundaries = ()


def token_lengths(texts, tokenizer, max_len, truncation="head"):
  """Token counts (after truncation) of ``texts``: int array ``[n]``."""
  dataset = _encoded(tf.data.Dataset.from_tensor_slices(
      tf.constant(texts, tf.string)), tokenizer, max_len, truncation)
  return np.fromiter((len(ids) for ids in dataset.as_numpy_iterator()),
                     np.int64, count=len(texts))


def length_boundaries(lengths, num_buckets=8):
  """Bucket edges at length quantiles, e.g. ``[35, 64, 120]``.

  Args:
    lengths: token lengths of the training examples.
    num_buckets: how many buckets at most.

  Returns:
    A sorted tuple of distinct ints > 0 (bucket ``i`` holds lengths in
    ``[edge[i-1], edge[i])``).
  """
  if num_buckets < 1:
    raise ValueError(f"num_buckets must be >= 1, got {num_buckets}.")
  quantiles = np.quantile(np.asarray(lengths), np.linspace(0, 1,
                                                           num_buckets + 1))
  edges = sorted({int(q) + 1 for q in quantiles[1:-1]} - {0})
  return tuple(edges)


def _encoded(texts, tokenizer, max_len, truncation):
  """A dataset of strings -> a dataset of int32 ids ``[len]``, in order."""
  return (texts.batch(256)
          .map(lambda t: tokenizer.encode(t, max_len, truncation),
               num_parallel_calls=tf.data.AUTOTUNE)
          .unbatch())


def _fill_batch(batch_size, ids, labels, weights):
  """Completes a short batch with zero-weight pad rows."""
  missing = batch_size - tf.shape(ids)[0]
  ids = tf.pad(ids, [[0, missing], [0, 0]])
  return (tf.ensure_shape(ids, [batch_size, ids.shape[1]]),
          tf.ensure_shape(tf.pad(labels, [[0, missing]]), [batch_size]),
          tf.ensure_shape(tf.pad(weights, [[0, missing]]), [batch_size]))


def _batched(dataset, config, training):
  """Pads ``(ids, label, weight)`` elements into batches, maybe bucketed."""
  drop = training and config.static_shapes
  if config.bucket_boundaries is None:
    batches = dataset.padded_batch(config.batch_size, drop_remainder=drop)
  else:
    edges = list(config.bucket_boundaries)
    if config.static_shapes:
      # Every length must fall below the last edge; a batch is padded to
      # (edge - 1), so the widest bucket is padded to exactly max_len.
      edges = [e for e in edges if e <= config.max_len] + [config.max_len + 1]
    batches = dataset.bucket_by_sequence_length(
        lambda ids, label, weight: tf.shape(ids)[0],
        bucket_boundaries=edges,
        bucket_batch_sizes=[config.batch_size] * (len(edges) + 1),
        pad_to_bucket_boundary=config.static_shapes, drop_remainder=drop)
  if config.static_shapes and not training:
    batches = batches.map(
        lambda *batch: _fill_batch(config.batch_size, *batch))
  return batches


def make_dataset(examples, tokenizer, config, training, input_context=None):
  """Builds the batched dataset for ``examples``.

  Texts are tokenized once, in the graph, and cached; training data is then
  reshuffled every epoch and repeats only when the caller asks for it.

  Args:
    examples: ``readers.Examples``.
    tokenizer: a ``text.Tokenizer``.
    config: a :class:`PipelineConfig`.
    training: shuffle (and, in static mode, drop partial batches).
    input_context: a ``tf.distribute.InputContext``: shards by input pipeline
      and sets the per-replica batch size from ``config.batch_size`` (the
      global batch size).

  Returns:
    A ``tf.data.Dataset`` of ``(ids, labels, weights)``.
  """
  if len(examples) == 0:
    raise ValueError(f"No examples in {examples.source}; cannot build a "
                     f"dataset.")
  texts = tf.data.Dataset.from_tensor_slices(
      (tf.constant(examples.texts, tf.string),
       tf.constant(examples.labels, tf.int32)))
  if input_context is not None:
    config = dataclasses.replace(
        config, batch_size=input_context.get_per_replica_batch_size(
            config.batch_size))
    if input_context.num_input_pipelines > 1:
      texts = texts.shard(input_context.num_input_pipelines,
                          input_context.input_pipeline_id)
  ids = _encoded(texts.map(lambda t, _: t), tokenizer, config.max_len,
                 config.truncation)
  labels = texts.map(lambda _, label: label)
  dataset = tf.data.Dataset.zip(ids, labels).map(
      lambda i, label: (i, label, tf.constant(1.0))).cache()
  if training and config.shuffle_buffer:
    dataset = dataset.shuffle(config.shuffle_buffer, seed=config.seed,
                              reshuffle_each_iteration=True)
  return _batched(dataset, config, training).prefetch(tf.data.AUTOTUNE)


def dataset_fn(examples, tokenizer, config, training):
  """A function of a ``tf.distribute.InputContext`` for
  ``strategy.distribute_datasets_from_function``.

  ``config.batch_size`` is the global batch size; each replica gets its share.
  """
  def build(input_context):
    return make_dataset(examples, tokenizer, config, training, input_context)
  return build


def padding_stats(ids):
  """``(real_steps, total_steps)`` of a batch of ids ``[batch, time]``."""
  real = tf.reduce_sum(tf.cast(tf.not_equal(ids, 0), tf.int64))
  return real, tf.size(ids, out_type=tf.int64)


def padded_step_fraction(dataset):
  """Fraction of padded steps over one pass of a dataset of batches."""
  real = total = 0
  for ids, _, _ in dataset:  # zero-weight filler rows count as padding
    batch_real, batch_total = padding_stats(ids)
    real += int(batch_real)
    total += int(batch_total)
  return 1.0 - real / total if total else 0.0
