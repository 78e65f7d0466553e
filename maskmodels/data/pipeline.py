"""tf.data pipelines: examples -> batches of ``(ids, labels, weights)``.

A batch is ``ids`` int32 ``[batch, time]`` (0 = pad, right-padded), ``labels``
int32 ``[batch]`` and ``weights`` float32 ``[batch]``: 1 for a real example,
0 for the filler rows that complete a short batch. Summing weights counts
every example exactly once.

Order and passes. Training data is permuted as a whole, with a new seeded
permutation every pass, so the order of the input files (sorted by label,
by length) never reaches the batches. One pass (an epoch) is exactly
:func:`batches_per_pass` *global* batches: texts are grouped into length
buckets, and each bucket's last, short batch is completed with filler rows.
Every input pipeline builds the same global batches and keeps its replicas'
rows of each, so all replicas of a step read one bucket and a pass ends at
the same step on every worker.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from maskmodels.data import text as text_lib
from maskmodels.errors import InputError


@dataclasses.dataclass
class PipelineConfig:
  """How examples become batches.

  Attributes:
    max_len: tokens kept per text.
    batch_size: examples per global batch (all replicas together).
    batch_tokens: if > 0, size each length bucket's batch to hold about this
      many tokens (padded width times examples) instead of ``batch_size``
      examples; short texts then travel in larger batches.
    truncation: ``"head"``, ``"tail"`` or ``"both"``.
    bucket_boundaries: sequence-length bucket edges (sorted ints), or None to
      pad each batch to its longest sequence without bucketing. See
      :func:`length_boundaries`.
    static_shapes: TPU mode: every batch padded to its bucket's edge.
    shuffle: permute training data anew every pass.
    seed: permutation seed.
  """
  max_len: int = 256
  batch_size: int = 32
  batch_tokens: int = 0
  truncation: str = "head"
  bucket_boundaries: tuple = None
  static_shapes: bool = False
  shuffle: bool = True
  seed: int = 0

  def __post_init__(self):
    for name in ("max_len", "batch_size"):
      value = getattr(self, name)
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive int, got {value!r}.")
    if self.batch_tokens < 0:
      raise InputError(f"batch_tokens must be >= 0, got {self.batch_tokens}.")
    if self.truncation not in text_lib.TRUNCATIONS:
      raise InputError(f"truncation must be one of {text_lib.TRUNCATIONS}, "
                       f"got {self.truncation!r}.")
    if self.static_shapes and not self.bucket_boundaries:
      # One bucket of the full width: every batch [batch_size, max_len].
      self.bucket_boundaries = ()

  def bucket_edges(self):
    """The bucket edges in use: bucket ``i`` holds lengths below edge ``i``
    (and at or above edge ``i - 1``); the last bucket holds the rest."""
    edges = list(self.bucket_boundaries or ())
    if self.static_shapes:
      # Every length falls below the last edge; a batch is padded to
      # (edge - 1), so the widest bucket is padded to exactly max_len.
      edges = [e for e in edges if e <= self.max_len] + [self.max_len + 1]
    return edges

  def bucket_batch_sizes(self, replicas=1):
    """Global batch size of each bucket, a multiple of ``replicas``.

    Raises:
      InputError: ``batch_size`` is not a multiple of ``replicas``.
    """
    if self.batch_size % replicas:
      raise InputError(f"batch_size={self.batch_size} must be a multiple of "
                       f"the {replicas} replicas in sync.")
    edges = self.bucket_edges()
    if not self.batch_tokens:
      return [self.batch_size] * (len(edges) + 1)
    widths = [edge - 1 for edge in edges] + [self.max_len]
    return [max(replicas, self.batch_tokens // max(width, 1) // replicas *
                replicas) for width in widths]


def token_lengths(texts, tokenizer, max_len, truncation="head"):
  """Token counts (after truncation) of ``texts``: int array ``[n]``."""
  dataset = _encoded(tf.data.Dataset.from_tensor_slices(
      tf.constant(texts, tf.string)), tokenizer, max_len, truncation)
  return np.fromiter((len(ids) for ids in dataset.as_numpy_iterator()),
                     np.int64, count=len(texts))


def labelled_batches(examples, tokenizer, max_len, truncation="head",
                     batch_size=256):
  """``(ids, labels)`` batches of ``examples`` in order, for counting.

  Yields int32 ids ``[batch, time]`` (0-padded on the right) and int32
  labels ``[batch]``; no shuffling, weights or filler rows.
  """
  texts = tf.data.Dataset.from_tensor_slices(
      (tf.constant(examples.texts, tf.string),
       tf.constant(examples.labels, tf.int32)))
  return texts.batch(batch_size).map(
      lambda t, labels: (tokenizer.encode(t, max_len, truncation).to_tensor(),
                         labels),
      num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


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
    raise InputError(f"num_buckets must be >= 1, got {num_buckets}.")
  quantiles = np.quantile(np.asarray(lengths), np.linspace(0, 1,
                                                           num_buckets + 1))
  edges = sorted({int(q) + 1 for q in quantiles[1:-1]} - {0})
  return tuple(edges)


def batches_per_pass(lengths, config, replicas=1):
  """Global batches in one pass over texts of token ``lengths``.

  Args:
    lengths: token lengths after truncation to ``config.max_len``.
    config: a :class:`PipelineConfig`.
    replicas: replicas in sync (bucket batch sizes are multiples of it).
  """
  lengths = np.minimum(np.asarray(lengths), config.max_len)
  sizes = config.bucket_batch_sizes(replicas)
  if config.bucket_boundaries is None:
    return math.ceil(len(lengths) / sizes[0])
  buckets = np.searchsorted(config.bucket_edges(), lengths, side="right")
  counts = np.bincount(buckets, minlength=len(sizes))
  return int(sum(math.ceil(count / size) for count, size in zip(counts,
                                                                sizes)))


def _encoded(texts, tokenizer, max_len, truncation):
  """A dataset of strings -> a dataset of int32 ids ``[len]``, in order."""
  return (texts.batch(256)
          .map(lambda t: tokenizer.encode(t, max_len, truncation),
               num_parallel_calls=tf.data.AUTOTUNE)
          .unbatch())


def _fill_rows(ids, labels, weights, size):
  """Completes a short batch with ``size - batch`` zero-weight pad rows."""
  missing = size - tf.shape(ids)[0]
  return (tf.pad(ids, [[0, missing], [0, 0]]), tf.pad(labels, [[0, missing]]),
          tf.pad(weights, [[0, missing]]))


def _global_batches(dataset, config, replicas):
  """Pads ``(ids, label, weight)`` elements into full global batches."""
  sizes = config.bucket_batch_sizes(replicas)
  if config.bucket_boundaries is None:
    batches = dataset.padded_batch(sizes[0])
    return batches.map(lambda *b: _fill_rows(*b, sizes[0]))
  edges = config.bucket_edges()
  batches = dataset.bucket_by_sequence_length(
      lambda ids, label, weight: tf.shape(ids)[0],
      bucket_boundaries=edges, bucket_batch_sizes=sizes,
      pad_to_bucket_boundary=config.static_shapes)
  edge_tensor = tf.constant(edges, tf.int32, shape=[len(edges)])
  size_tensor = tf.constant(sizes, tf.int32)

  def fill(ids, labels, weights):
    # Bucket i's batches are padded to a width in [edge[i-1], edge[i]):
    # to the longest text, or (static shapes) to edge[i] - 1.
    bucket = tf.searchsorted(edge_tensor, [tf.shape(ids)[1]],
                             side="right")[0]
    return _fill_rows(ids, labels, weights, size_tensor[bucket])

  return batches.map(fill)


def _replica_batches(dataset, input_context):
  """This input pipeline's replicas' rows of each global batch, one element
  per local replica, in replica order."""
  replicas = input_context.num_replicas_in_sync
  local = replicas // input_context.num_input_pipelines
  if replicas == 1:
    return dataset

  def split(*batch):
    rows = tf.shape(batch[0])[0] // replicas
    start = input_context.input_pipeline_id * local * rows

    def part(t):
      t = t[start:start + local * rows]
      return tf.reshape(t, tf.concat([[local, rows], tf.shape(t)[1:]], 0))

    return tf.data.Dataset.from_tensor_slices(tuple(part(t) for t in batch))

  return dataset.flat_map(split)


def make_dataset(examples, tokenizer, config, training, input_context=None,
                 start_batch=0):
  """Builds the batched dataset for ``examples``.

  Texts are tokenized once, in the graph, and cached. Training data is
  permuted as a whole every pass and repeats without end; evaluation data
  makes one pass in a fixed order.

  Args:
    examples: ``readers.Examples``.
    tokenizer: a ``text.Tokenizer``.
    config: a :class:`PipelineConfig`.
    training: permute and repeat.
    input_context: a ``tf.distribute.InputContext``: the elements are then
      this pipeline's per-replica batches (see the module docstring).
    start_batch: global batches to skip (a resumed run's consumed steps).

  Returns:
    A ``tf.data.Dataset`` of ``(ids, labels, weights)``.
  """
  if len(examples) == 0:
    raise InputError(f"No examples in {examples.source}; cannot build a "
                     f"dataset.")
  replicas = input_context.num_replicas_in_sync if input_context else 1
  texts = tf.data.Dataset.from_tensor_slices(
      (tf.constant(examples.texts, tf.string),
       tf.constant(examples.labels, tf.int32)))
  ids = _encoded(texts.map(lambda t, _: t), tokenizer, config.max_len,
                 config.truncation)
  labels = texts.map(lambda _, label: label)
  dataset = tf.data.Dataset.zip(ids, labels).map(
      lambda i, label: (i, label, tf.constant(1.0))).cache()
  if training and config.shuffle:
    dataset = dataset.shuffle(len(examples), seed=config.seed,
                              reshuffle_each_iteration=True)
  dataset = _global_batches(dataset, config, replicas)
  if training:
    dataset = dataset.repeat()
  if start_batch:
    dataset = dataset.skip(start_batch)
  if input_context is not None:
    dataset = _replica_batches(dataset, input_context)
  return dataset.prefetch(tf.data.AUTOTUNE)


def dataset_fn(examples, tokenizer, config, training, start_batch=0):
  """A function of a ``tf.distribute.InputContext`` for
  ``strategy.distribute_datasets_from_function``.

  ``config.batch_size`` is the global batch size; each replica gets its rows.
  """
  def build(input_context):
    return make_dataset(examples, tokenizer, config, training, input_context,
                        start_batch)
  return build


def padding_stats(ids):
  """``(real_steps, total_steps)`` of a batch of ids ``[batch, time]``."""
  real = tf.reduce_sum(tf.cast(tf.not_equal(ids, 0), tf.int64))
  return real, tf.size(ids, out_type=tf.int64)


def padded_step_fraction(dataset, batches=None):
  """Fraction of padded steps over a dataset of batches (or its first
  ``batches``); zero-weight filler rows count as padding."""
  real = total = 0
  for ids, _, _ in dataset.take(-1 if batches is None else batches):
    batch_real, batch_total = padding_stats(ids)
    real += int(batch_real)
    total += int(batch_total)
  return 1.0 - real / total if total else 0.0
