"""The custom training loop: ``train_step`` / ``eval_step`` under any strategy.

Batches are ``(ids, labels, weights)`` (see ``maskmodels.data.pipeline``).
Losses are averaged over the *global* batch (the real examples of all
replicas), so the loss, gradients and metrics do not depend on the number of
replicas.
"""

import keras
import tensorflow as tf

from maskmodels.data import pipeline


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or Inf loss or gradient."""


class Trainer(tf.Module):
  """Runs training and evaluation steps of a classifier under a strategy.

  Subclasses may override :meth:`compute_loss`, :meth:`train_step` and
  :meth:`eval_step`; :meth:`train` runs ``steps`` train steps inside one
  ``tf.function`` call (the idiom that keeps accelerators busy).

  Args:
    model: a Keras model mapping ids ``[batch, time]`` to logits
      ``[batch, classes]``, built under ``strategy.scope()``.
    optimizer: a Keras optimizer (a ``LossScaleOptimizer`` for float16).
    strategy: the ``tf.distribute.Strategy`` the model was built under.
    clip_norm: clip the aggregated gradient to this global norm (None: off).
    jit_compile: compile the forward and backward pass with XLA.
  """

  def __init__(self, model, optimizer, strategy, clip_norm=None,
               jit_compile=False):
    super().__init__(name="trainer")
    self.model = model
    self.optimizer = optimizer
    self.strategy = strategy
    self.clip_norm = clip_norm
    self.trace_counts = {"train": 0, "eval": 0}
    with strategy.scope():
      self.train_metrics = {
          "loss": keras.metrics.Mean(name="loss"),
          "accuracy": keras.metrics.SparseCategoricalAccuracy(
              name="accuracy"),
          "grad_norm": keras.metrics.Mean(name="grad_norm"),
          "padded_fraction": keras.metrics.Mean(name="padded_fraction")}
      self.eval_metrics = {
          "loss": keras.metrics.Mean(name="loss"),
          "accuracy": keras.metrics.SparseCategoricalAccuracy(
              name="accuracy"),
          "examples": keras.metrics.Sum(name="examples")}
    # XLA compiles the forward and backward pass only. It cannot hold a
    # cross-replica sync point, so with several replicas use a normalization
    # without one ("layer" or none) when jit_compile is on.
    self._forward_backward = (
        tf.function(self.forward_backward, jit_compile=True) if jit_compile
        else self.forward_backward)
    self._train_loop = tf.function(self._train_loop_body)
    self._eval_loop = tf.function(self._eval_loop_body)

  # ---- hooks ---------------------------------------------------------------

  def compute_loss(self, labels, logits):
    """Per-example loss ``[batch]`` from labels ``[batch]``, logits."""
    return keras.losses.sparse_categorical_crossentropy(
        labels, tf.cast(logits, tf.float32), from_logits=True)

  def forward_backward(self, ids, labels, weights, global_weight):
    """Loss over the global batch and its gradients, for one replica.

    ``global_weight`` (int) is the number of real examples summed over
    replicas; this replica's loss is its share of the global mean.
    """
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      logits = self.model(ids, training=True)
      per_example = self.compute_loss(labels, logits)
      loss = tf.nn.compute_average_loss(per_example, sample_weight=weights,
                                        global_batch_size=global_weight)
      if self.model.losses:
        loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
      scaled = self.optimizer.scale_loss(loss)
    return tape.gradient(scaled, variables), per_example, logits

  def train_step(self, batch):
    """One step on this replica's part of the global batch (replica context)."""
    ids, labels, weights = batch
    context = tf.distribute.get_replica_context()
    # Weights are 1 for real examples and 0 for filler rows, so the global
    # batch size is the all-reduced count of real examples.
    global_weight = tf.maximum(tf.cast(tf.round(context.all_reduce(
        tf.distribute.ReduceOp.SUM, tf.reduce_sum(weights))), tf.int32), 1)
    grads, per_example, logits = self._forward_backward(ids, labels, weights,
                                                        global_weight)
    variables = self.model.trainable_variables
    replicas = context.num_replicas_in_sync
    # Dense gradients always: sparse embedding gradients repeat a row once per
    # occurrence of its id, and Keras's Adam squares each repeat separately
    # (sum of squares, not square of the sum); their sizes also differ across
    # replicas, which collective gathers refuse.
    grads = [tf.convert_to_tensor(g) for g in grads]
    # Aggregate here (not in the optimizer) so the norm is the global one.
    grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    scale = tf.cast(self.optimizer.scale_loss(1.0), tf.float32)
    norm = tf.linalg.global_norm(grads) / scale
    if self.clip_norm:
      grads, _ = tf.clip_by_global_norm(grads, self.clip_norm * scale,
                                        use_norm=norm * scale)
    # The optimizer sums over replicas again: hand each its share.
    grads = [g / replicas for g in grads] if replicas > 1 else grads
    self.optimizer.apply_gradients(zip(grads, variables))
    self.train_metrics["loss"].update_state(per_example, sample_weight=weights)
    self.train_metrics["accuracy"].update_state(labels, logits,
                                                sample_weight=weights)
    self.train_metrics["grad_norm"].update_state(
        norm, sample_weight=1.0 / replicas)
    # Padded steps over all steps, filler rows included.
    real, total = (tf.cast(n, tf.float32) for n in pipeline.padding_stats(ids))
    self.train_metrics["padded_fraction"].update_state(
        1.0 - real / tf.maximum(total, 1.0), sample_weight=total)

  def eval_step(self, batch):
    """Updates evaluation metrics on one batch (replica context)."""
    ids, labels, weights = batch
    logits = self.model(ids, training=False)
    per_example = self.compute_loss(labels, logits)
    self.eval_metrics["loss"].update_state(per_example, sample_weight=weights)
    self.eval_metrics["accuracy"].update_state(labels, logits,
                                               sample_weight=weights)
    self.eval_metrics["examples"].update_state(weights)

  # ---- loops ---------------------------------------------------------------

  def _train_loop_body(self, iterator, steps):
    self.trace_counts["train"] += 1  # runs only while tracing
    for _ in tf.range(steps):
      self.strategy.run(self.train_step, args=(next(iterator),))

  def _eval_loop_body(self, dataset):
    self.trace_counts["eval"] += 1
    for batch in dataset:
      self.strategy.run(self.eval_step, args=(batch,))

  def train(self, iterator, steps):
    """Runs ``steps`` train steps from a distributed iterator in one call.

    Returns:
      The training metrics accumulated since the last reset, as floats.
    """
    self._train_loop(iterator, tf.constant(steps, tf.int32))
    return self.results(self.train_metrics)

  def evaluate(self, distributed_dataset):
    """One full pass over a distributed evaluation dataset.

    Returns:
      ``{"loss", "accuracy", "examples"}`` over every real example.
    """
    for metric in self.eval_metrics.values():
      metric.reset_state()
    self._eval_loop(distributed_dataset)
    return self.results(self.eval_metrics)

  def reset_train_metrics(self):
    for metric in self.train_metrics.values():
      metric.reset_state()

  @staticmethod
  def results(metrics):
    return {name: float(metric.result()) for name, metric in metrics.items()}
