"""The custom training loop: a task's steps under any ``tf.distribute`` strategy.

Batches are ``(features, labels, weights)`` (see
``maskmodels.data.pipeline``). The task says what a batch means: its loss
per item (example or token) and each item's weight; the loss is the sum of
weighted item losses over the sum of weights of the *global* batch (every
real item of all replicas), so the loss, gradients and metrics do not
depend on the number of replicas or on how items fall into batches. The
task owns what a step computes (``Task.train_step``, ``validation_step``:
the forward pass, the loss, an ensemble's members each learning from their
own loss); the trainer owns how it is distributed. A step holds one
gradient all-reduce: the trainer sums gradients across replicas (so
clipping sees the global norm) and the optimizer takes them as they are.
"""

import keras
import tensorflow as tf

from maskmodels.data import pipeline
from maskmodels.layers.recurrent import set_use_cudnn


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or Inf loss or gradient."""


def dense_gradient(grad):
  """A gradient as a dense tensor; an embedding's ``IndexedSlices`` summed
  per distinct id first.

  An embedding gradient repeats a row for every occurrence of its id (each
  pad step, each frequent word); the repeats are summed with ``unique`` +
  ``unsorted_segment_sum`` before scattering into the table. Whether that
  beats converting the repeats directly depends on the CPU:
  ``benchmarks/training_throughput.py`` times both
  (``embedding_gradient_ms``).
  """
  if not isinstance(grad, tf.IndexedSlices):
    return grad
  rows, positions = tf.unique(grad.indices)
  values = tf.math.unsorted_segment_sum(grad.values, positions,
                                        tf.shape(rows)[0])
  return tf.scatter_nd(rows[:, tf.newaxis], values,
                       tf.cast(grad.dense_shape, rows.dtype))


class Trainer:
  """Runs a task's train and evaluation steps (Orbit's trainer shape).

  :meth:`train` runs ``steps`` train steps inside one ``tf.function`` call;
  the trainer owns its training iterator (and, on resume, the skip past the
  batches earlier runs consumed) and the step counter. :meth:`close`
  releases the input pipelines when the run is done.

  Args:
    task: a :class:`~maskmodels.tasks.Task`.
    model: a Keras model built under ``strategy.scope()``.
    optimizer: a Keras optimizer from ``optimization.make_optimizer`` (it
      takes gradients already summed over replicas), or None to evaluate
      only.
    strategy: the ``tf.distribute.Strategy`` the model was built under.
    clip_norm: clip the aggregated gradient to this global norm (None or 0:
      off).
    jit_compile: compile the forward and backward pass with XLA (the GRU
      then uses its generic kernel: XLA cannot compile cuDNN's).
    padding_stats: ``padding_stats(features)`` -> ``(real steps, all
      steps)`` of a batch (the featurizer's), for the ``padded_fraction``
      metric; None: not counted.
  """

  def __init__(self, task, model, optimizer, strategy, clip_norm=None,
               jit_compile=False, padding_stats=None):
    self.task = task
    self.model = model
    self.optimizer = optimizer
    self.strategy = strategy
    self.clip_norm = clip_norm
    self.padding_stats = padding_stats
    self.trace_counts = {"train": 0, "eval": 0}
    with strategy.scope():
      self.global_step = tf.Variable(
          0, dtype=tf.int64, trainable=False, name="global_step",
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.train_metrics = dict(
          task.step_metrics(model, training=True),
          grad_norm=keras.metrics.Mean(name="grad_norm"),
          learning_rate=keras.metrics.Mean(name="learning_rate"),
          examples=keras.metrics.Sum(name="examples"))
      if padding_stats is not None:
        self.train_metrics["padded_fraction"] = keras.metrics.Mean(
            name="padded_fraction")
      self.eval_metrics = dict(task.step_metrics(model, training=False),
                               examples=keras.metrics.Sum(name="examples"))
    if jit_compile:
      set_use_cudnn(model, False)
    self._forward_backward = (
        tf.function(self.forward_backward, jit_compile=True) if jit_compile
        else self.forward_backward)
    # The loops are written with tf.while_loop: AutoGraph need not convert
    # them (it still converts research code the model calls).
    self._train_loop = tf.function(self._train_loop_body, autograph=False)
    self._eval_loop = tf.function(self._eval_loop_body, autograph=False)
    self._dataset_fn = None
    self._iterator = None

  # ---- steps (replica context) ---------------------------------------------

  def forward_backward(self, batch, loss_weights, total_weight):
    """The task's :meth:`~maskmodels.tasks.Task.train_step` under a tape:
    this replica's gradients and the step's state for the metrics."""
    with tf.GradientTape() as tape:
      objective, state = self.task.train_step(self.model, batch,
                                              loss_weights, total_weight)
      if self.model.losses:
        objective += tf.nn.scale_regularization_loss(
            tf.add_n(self.model.losses))
      scaled = self.optimizer.scale_loss(objective)
    return tape.gradient(scaled, self.model.trainable_variables), state

  def train_step(self, batch):
    """One step on this replica's part of the global batch."""
    features, labels, weights = batch
    context = tf.distribute.get_replica_context()
    loss_weights = self.task.loss_weights(labels, weights)
    # Weights are 1 for real items and 0 for filler rows and pad tokens.
    total_weight = tf.maximum(context.all_reduce(
        tf.distribute.ReduceOp.SUM, tf.reduce_sum(loss_weights)), 1.0)
    grads, state = self._forward_backward(batch, loss_weights, total_weight)
    # A variable the objective does not read (a research layer's unused
    # part) has no gradient: it is left out, as Keras's optimizers do.
    variables = [v for g, v in zip(grads, self.model.trainable_variables)
                 if g is not None]
    grads = [g for g in grads if g is not None]
    # Dense: Keras's Adam on IndexedSlices would square each repeated row on
    # its own (and decay only the touched rows' moments), and replicas'
    # slices differ in size, which collective gathers refuse.
    grads = context.all_reduce(tf.distribute.ReduceOp.SUM,
                               [dense_gradient(g) for g in grads])
    scale = tf.cast(self.optimizer.scale_loss(1.0), tf.float32)
    norm = tf.linalg.global_norm(grads) / scale
    if self.clip_norm:
      grads, _ = tf.clip_by_global_norm(grads, self.clip_norm * scale,
                                        use_norm=norm * scale)
    optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)
    self.train_metrics["learning_rate"].update_state(
        tf.cast(optimizer.learning_rate, tf.float32))
    self.optimizer.apply_gradients(zip(grads, variables))
    self.task.update_train_metrics(self.train_metrics, batch, loss_weights,
                                   state)
    self.train_metrics["grad_norm"].update_state(
        norm, sample_weight=1.0 / context.num_replicas_in_sync)
    self.train_metrics["examples"].update_state(weights)
    if self.padding_stats is not None:
      # Padded steps over all steps, filler rows included.
      real, total = (tf.cast(n, tf.float32)
                     for n in self.padding_stats(features))
      self.train_metrics["padded_fraction"].update_state(
          1.0 - real / tf.maximum(total, 1.0), sample_weight=total)

  def eval_step(self, batch):
    """Updates evaluation metrics with one batch (the task's
    :meth:`~maskmodels.tasks.Task.validation_step`)."""
    self.task.validation_step(self.model, batch, self.eval_metrics)
    self.eval_metrics["examples"].update_state(batch[2])

  # ---- loops ---------------------------------------------------------------

  def _train_loop_body(self, iterator, steps):
    self.trace_counts["train"] += 1  # runs only while tracing

    def step(i):
      self.strategy.run(self.train_step, args=(next(iterator),))
      self.global_step.assign_add(1)
      return i + 1

    tf.while_loop(lambda i: i < steps, step, [tf.constant(0)])

  def _eval_loop_body(self, iterator, steps):
    self.trace_counts["eval"] += 1

    def step(i, done):
      batch = iterator.get_next_as_optional()
      done = tf.logical_not(batch.has_value())
      tf.cond(done, lambda: None, lambda: self.strategy.run(
          self.eval_step, args=(batch.get_value(),)))
      return i + 1, done

    return tf.while_loop(lambda i, done: (i < steps) & tf.logical_not(done),
                         step, [tf.constant(0), tf.constant(False)])[1]

  def set_train_data(self, dataset_fn):
    """Trains on ``dataset_fn(input_context, start_batch)``, a function for
    ``distribute_datasets_from_function`` of the global batches to skip
    (the steps already taken, so a resumed run continues the same order)."""
    self._dataset_fn = dataset_fn
    self._iterator = None

  @property
  def step(self):
    """The number of train steps taken (restored on resume)."""
    return int(self.global_step.numpy())

  def train(self, steps):
    """Runs ``steps`` train steps in one call.

    Returns:
      The training metrics of these steps, as floats (``examples``: the
      real examples they trained on).
    """
    for metric in self.train_metrics.values():
      metric.reset_state()
    if self._iterator is None:
      start = self.step
      self._iterator = pipeline.distributed_iterator(
          self.strategy, lambda context: self._dataset_fn(context, start))
    self._train_loop(self._iterator, tf.constant(steps, tf.int32))
    return self.results(self.train_metrics)

  def evaluate(self, dataset_fn, progress=None, steps_per_call=50):
    """One full pass over ``dataset_fn(input_context)``'s batches.

    Args:
      dataset_fn: a function for ``distribute_datasets_from_function``.
      progress: a progress display (``maskmodels.progress.bar``) counting
        examples, or None.
      steps_per_call: batches per ``tf.function`` call (between progress
        updates).

    Returns:
      The evaluation metrics over every real example, as floats.
    """
    for metric in self.eval_metrics.values():
      metric.reset_state()
    iterator = pipeline.distributed_iterator(self.strategy, dataset_fn)
    done = False
    while not done:
      done = bool(self._eval_loop(iterator, tf.constant(steps_per_call)))
      if progress is not None:
        progress.update(int(self.eval_metrics["examples"].result()))
    del iterator  # its pipeline's threads end here, not at exit
    return self.results(self.eval_metrics)

  def close(self):
    """Releases the training input pipeline now.

    A distributed iterator that is still prefetching, left for the garbage
    collector or for interpreter shutdown, tears its threads down while
    TensorFlow's runtime is going away, which can hold the process for
    tens of seconds or forever after its work is done. The trainer is in
    reference cycles (its traced functions hold it), so only this frees
    the iterator before exit: the iterator itself is in none, and goes
    when its last reference does. Call this when a run ends (the runner
    does); training again rebuilds the iterator.
    """
    self._iterator = None

  @staticmethod
  def results(metrics):
    return {name: float(metric.result()) for name, metric in metrics.items()}
