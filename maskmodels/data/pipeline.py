"""tf.data pipelines: examples -> batches of ``(features, labels, weights)``.

A batch is ``features``, the input kind's dict (its featurizer's; every
row right-padded, with ``lengths`` int32 ``[batch]``, each example's real
steps); ``labels`` as the task's label spec (``maskmodels.specs``) batches
them (``[batch]``, ``[batch, time]`` with the spec's pad at pad steps,
...); and ``weights`` float32 ``[batch]``: 1 for a real example, 0 for the
filler rows that complete a short batch. Summing weights counts every
example exactly once. Buckets and token budgets count ``lengths``. This
module asks the featurizer and the label spec about everything specific
to an input kind or a label shape.

Order and passes. Training data is permuted as a whole, with a new seeded
permutation every pass, so the order of the input files (sorted by label,
by length) never reaches the batches. One pass (an epoch) is exactly
:func:`batches_per_pass` *global* batches: texts are grouped into length
buckets, and each bucket's last, short batch is completed with filler rows.
Every input pipeline builds the same global batches and keeps its replicas'
rows of each, so all replicas of a step read one bucket and a pass ends at
the same step on every worker.
"""

import contextlib
import dataclasses
import math

import numpy as np
import tensorflow as tf
# The per-device pipelines of MultiDeviceIterator: see distributed_iterator.
from tensorflow.python.data.ops import multi_device_iterator_ops

from maskmodels.data import text as text_lib
from maskmodels.data.kinds import LENGTHS
from maskmodels.errors import InputError, SettingError
from maskmodels.specs import LabelSpec


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
    labels: the task's :class:`LabelSpec`: how its labels batch.
    max_batch: if > 0, no batch holds more rows than this (the training
      split's size): a larger batch size or token budget is cut to it, so
      filler rows never outnumber the data.
    label_shape: with static shapes, the shape labels are padded to (the
      spec's ``static_shape`` of the splits); None: each batch's longest.
    crop_fraction: below 1, every training batch's examples are cut to
      random windows of at least this fraction of their steps (the
      featurizer's :meth:`crop`), drawn anew for every batch from ``seed``
      and the batch's index: the same on every input pipeline and when a
      run resumes (static shapes: batches keep their width).
  """
  max_len: int = 256
  batch_size: int = 32
  batch_tokens: int = 0
  truncation: str = "head"
  bucket_boundaries: tuple = None
  static_shapes: bool = False
  shuffle: bool = True
  seed: int = 0
  labels: LabelSpec = dataclasses.field(default_factory=LabelSpec)
  max_batch: int = 0
  crop_fraction: float = 1.0
  label_shape: tuple = None

  def __post_init__(self):
    for name in ("max_len", "batch_size"):
      value = getattr(self, name)
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive int, got {value!r}.")
    if not 0.0 < self.crop_fraction <= 1.0:
      raise InputError(f"crop_fraction must be in (0, 1], got "
                       f"{self.crop_fraction!r}.")
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
      SettingError: ``batch_size`` is not a multiple of ``replicas``.
    """
    if self.batch_size % replicas:
      raise SettingError(f"--batch_size={self.batch_size}: expected a "
                         f"multiple of the {replicas} replicas in sync.")
    edges = self.bucket_edges()
    if not self.batch_tokens:
      sizes = [self.batch_size] * (len(edges) + 1)
    else:
      widths = [edge - 1 for edge in edges] + [self.max_len]
      sizes = [max(replicas, self.batch_tokens // max(width, 1) // replicas *
                   replicas) for width in widths]
    if self.max_batch:
      most = -(-self.max_batch // replicas) * replicas
      sizes = [min(size, most) for size in sizes]
    return sizes


def _featurized(examples, featurizer, config, batch_size=256):
  """``(features, label)`` per example, in order: features dense (ids
  ``[len]``, word features ``[len, ...]``), the label cut as the steps
  are (the label spec's ``truncate``)."""
  labels = config.labels
  pairs = tf.data.Dataset.zip((featurizer.inputs_dataset(examples),
                               labels.dataset(examples.labels)))
  batches = (pairs.ragged_batch(batch_size) if featurizer.ragged_inputs or
             labels.ragged else pairs.batch(batch_size))

  def featurize(inputs, label):
    return (featurizer(inputs, config.max_len, config.truncation),
            labels.truncate(label, config.max_len, config.truncation))

  def densify(features, label):
    return ({name: value.to_tensor() if isinstance(
        value, tf.RaggedTensor) else value for name, value in
             features.items()}, labels.densify(label))

  return (batches.map(featurize, num_parallel_calls=tf.data.AUTOTUNE)
          .unbatch().map(densify))


def labelled_batches(examples, featurizer, max_len, truncation="head",
                     labels=None, batch_size=256):
  """``(features, labels)`` batches of ``examples`` in order, for counting.

  Yields dense features (padded on the right) and labels ``[batch]``; no
  shuffling, weights or filler rows.
  """
  config = PipelineConfig(max_len=max_len, truncation=truncation,
                          labels=labels or LabelSpec())
  return _featurized(examples, featurizer, config).padded_batch(
      batch_size, padding_values=_padding_values(
          featurizer, config.labels)[:2]).prefetch(2)


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


def _padding_values(featurizer, labels):
  """``(features, label, weight)`` padding: the featurizer's, the label's
  pad, 0."""
  return (featurizer.padding_values(),
          tf.constant(labels.pad, tf.as_dtype(labels.dtype)),
          tf.constant(0.0))


def _fill_rows(batch, size, padding):
  """Completes a short batch with ``size - batch`` filler rows (padding
  values, weight 0)."""
  missing = size - tf.shape(batch[2])[0]

  def fill(tensor, value):
    pads = [[0, missing]] + [[0, 0]] * (tensor.shape.rank - 1)
    return tf.pad(tensor, pads, constant_values=value)

  return tf.nest.map_structure(fill, batch, padding)


def _padded_shapes(element_spec, featurizer, config):
  """The padded shapes of one element: the featurizer's for its features
  (every axis to the batch's longest, or with static shapes the bucket's
  edge), the label spec's for its label (with static shapes, to
  ``config.label_shape`` if the spec gave one)."""
  features, label, _ = element_spec
  static = config.static_shapes
  return (featurizer.padded_shapes(features, static),
          config.labels.padded_shape(label, config.label_shape
                                     if static else None), [])


def _global_batches(dataset, config, replicas, padding, shapes):
  """Pads ``(features, label, weight)`` elements into full global batches
  (buckets by each example's ``lengths``)."""
  sizes = config.bucket_batch_sizes(replicas)
  if config.bucket_boundaries is None:
    batches = dataset.padded_batch(sizes[0], padded_shapes=shapes,
                                   padding_values=padding)
    return batches.map(lambda *b: _fill_rows(b, sizes[0], padding))
  edges = config.bucket_edges()
  batches = dataset.bucket_by_sequence_length(
      lambda features, label, weight: features[LENGTHS],
      bucket_boundaries=edges, bucket_batch_sizes=sizes,
      padded_shapes=shapes, padding_values=padding,
      pad_to_bucket_boundary=config.static_shapes)
  edge_tensor = tf.constant(edges, tf.int32, shape=[len(edges)])
  size_tensor = tf.constant(sizes, tf.int32)

  def fill(*batch):
    # Bucket i's batches hold lengths in [edge[i-1], edge[i]): its longest
    # finds the bucket.
    bucket = tf.searchsorted(edge_tensor, [tf.reduce_max(
        batch[0][LENGTHS])], side="right")[0]
    return _fill_rows(batch, size_tensor[bucket], padding)

  return batches.map(fill)


def random_crop(batch, featurizer, config, index):
  """``(features, labels, weights)`` with every example cut to a random
  window of its steps: at least ``config.crop_fraction`` of them (one, if
  it has any), anywhere in the example; per-step labels are cut with it.
  The draws are stateless, from ``config.seed`` and the global batch's
  ``index`` (int64)."""
  features, labels, weights = batch
  lengths = featurizer.lengths(features)
  seed = tf.stack([tf.constant(config.seed, tf.int64), index])
  size, place = tf.unstack(tf.random.stateless_uniform(
      [2, tf.shape(lengths)[0]], seed, minval=0.0, maxval=1.0))
  real = tf.cast(lengths, tf.float32)
  fraction = config.crop_fraction + (1.0 - config.crop_fraction) * size
  kept = tf.minimum(lengths, tf.maximum(
      tf.cast(tf.math.ceil(fraction * real), tf.int32),
      tf.minimum(lengths, 1)))
  starts = tf.minimum(lengths - kept, tf.cast(
      place * tf.cast(lengths - kept + 1, tf.float32), tf.int32))
  features = featurizer.crop(features, starts, kept,
                             keep_width=config.static_shapes)
  labels = config.labels.crop(labels, starts, kept, config.static_shapes)
  return features, labels, weights


def _replica_batches(dataset, input_context):
  """This input pipeline's replicas' rows of each global batch, one element
  per local replica, in replica order."""
  replicas = input_context.num_replicas_in_sync
  local = replicas // input_context.num_input_pipelines
  if replicas == 1:
    return dataset

  def split(*batch):
    rows = tf.shape(batch[2])[0] // replicas
    start = input_context.input_pipeline_id * local * rows

    def part(t):
      t = t[start:start + local * rows]
      return tf.reshape(t, tf.concat([[local, rows], tf.shape(t)[1:]], 0))

    return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(
        part, batch))

  return dataset.flat_map(split)


def make_dataset(examples, featurizer, config, training, input_context=None,
                 start_batch=0):
  """Builds the batched dataset for ``examples`` (labels encoded).

  Inputs are featurized once, in the graph, and cached. Training data is
  permuted as a whole every pass and repeats without end; evaluation data
  makes one pass in a fixed order.

  Args:
    examples: ``readers.Examples`` whose labels a task encoded.
    featurizer: a ``features.Featurizer``.
    config: a :class:`PipelineConfig`.
    training: permute and repeat.
    input_context: a ``tf.distribute.InputContext``: the elements are then
      this pipeline's per-replica batches (see the module docstring).
    start_batch: global batches to skip (a resumed run's consumed steps).

  Returns:
    A ``tf.data.Dataset`` of ``(features, labels, weights)``.
  """
  if len(examples) == 0:
    raise InputError(f"No examples in {examples.source}; cannot build a "
                     f"dataset.")
  replicas = input_context.num_replicas_in_sync if input_context else 1
  dataset = _featurized(examples, featurizer, config).map(
      lambda features, label: (features, label, tf.constant(1.0))).cache()
  if training and config.shuffle:
    dataset = dataset.shuffle(len(examples), seed=config.seed,
                              reshuffle_each_iteration=True)
  dataset = _global_batches(
      dataset, config, replicas, _padding_values(featurizer, config.labels),
      _padded_shapes(dataset.element_spec, featurizer, config))
  if training:
    dataset = dataset.repeat()
    if config.crop_fraction < 1.0:
      dataset = dataset.enumerate().map(
          lambda index, batch: random_crop(batch, featurizer, config, index),
          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if start_batch:
    dataset = dataset.skip(start_batch)
  if input_context is not None:
    dataset = _replica_batches(dataset, input_context)
  return dataset.prefetch(tf.data.AUTOTUNE).with_options(_OPTIONS)


def _options():
  """Without tf.data's autotuning thread.

  When an iterator that has run for a while is deleted mid-pass (the
  training iterator at the end of a run), the thread misses the
  cancellation and sleeps out its optimization period first: the deletion
  took as long as the iterator had run (42 s after 40 s), or minutes for a
  multi-device iterator's nested pipelines. The pipeline is cached and
  runs far ahead of training, so there is nothing to tune; buffer sizes
  and parallelism keep their defaults.
  """
  options = tf.data.Options()
  options.autotune.enabled = False
  return options


_OPTIONS = _options()


def distributed_iterator(strategy, dataset_fn):
  """``iter(strategy.distribute_datasets_from_function(dataset_fn))``, with
  no pipeline in it running tf.data's autotuning thread.

  With several devices per worker (``MirroredStrategy``,
  ``MultiWorkerMirroredStrategy``), ``MultiDeviceIterator`` feeds each
  replica through a per-device pipeline of its own (a generator over the
  shared iterator, then a prefetch) built with tf.data's default options:
  autotuning on, whatever ``dataset_fn``'s pipeline says. Deleting such an
  iterator mid-pass waited for that thread (see ``_options``): the end of
  training paused for 4-37 s in 8 of 18 runs of the main command. The
  per-device pipelines get this module's options while the iterator is
  built.

  Args:
    strategy: a ``tf.distribute`` strategy.
    dataset_fn: a function of a ``tf.distribute.InputContext`` returning a
      ``tf.data.Dataset`` (e.g. :func:`dataset_fn`).

  Returns:
    The distributed iterator.
  """
  with _per_device_options(_OPTIONS):
    return iter(strategy.distribute_datasets_from_function(dataset_fn))


@contextlib.contextmanager
def _per_device_options(options):
  """Within the block, ``MultiDeviceIterator``'s per-device pipelines carry
  ``options`` (a private TensorFlow function, wrapped only while the block
  runs; a TensorFlow without it keeps its own pipelines)."""
  build = getattr(multi_device_iterator_ops, "_create_device_dataset", None)
  if build is None:
    yield
    return

  def build_with_options(*args, **kwargs):
    return build(*args, **kwargs).with_options(options)

  multi_device_iterator_ops._create_device_dataset = build_with_options  # pylint: disable=protected-access
  try:
    yield
  finally:
    multi_device_iterator_ops._create_device_dataset = build  # pylint: disable=protected-access


def dataset_fn(examples, featurizer, config, training, start_batch=0):
  """A function of a ``tf.distribute.InputContext`` for
  ``strategy.distribute_datasets_from_function``.

  ``config.batch_size`` is the global batch size; each replica gets its rows.
  """
  def build(input_context):
    return make_dataset(examples, featurizer, config, training,
                        input_context, start_batch)
  return build


def padded_step_fraction(dataset, featurizer, batches=None):
  """Fraction of padded steps over a dataset of batches (or its first
  ``batches``), as ``featurizer`` counts them; zero-weight filler rows
  count as padding."""
  real = total = 0
  for features, _, _ in dataset.take(-1 if batches is None else batches):
    batch_real, batch_total = featurizer.padding_stats(features)
    real += int(batch_real)
    total += int(batch_total)
  return 1.0 - real / total if total else 0.0
