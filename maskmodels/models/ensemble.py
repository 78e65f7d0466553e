"""Ensemble: named member models, each trained on its own loss.

The output is ``sum_m weight_m * member_m(inputs)``. The weights are a
non-trainable variable (saved with the model): ones until
:func:`fit_member_weights` sets them on held-out data, which the training
run does at its end. ``call`` returns ``{"output": combined, "members":
{name: output}}`` in training and serving alike; the task trains each
member on its own loss and reports the combined output's.
"""

import itertools

import keras
import numpy as np
import tensorflow as tf

from maskmodels.errors import InputError

# Weights tried for every member after the first (which keeps weight 1).
WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0,
               8.0)


@keras.saving.register_keras_serializable(package="maskmodels")
class Ensemble(keras.Model):
  """Any number of named members with the same output shape.

  Args:
    members: ``{name: model}`` in order (the first is the reference member,
      usually the network); a model may be a serialized dict.

  Call args:
    inputs: what every member takes (ids ``[batch, time]`` or a feature
      dict).

  Returns:
    ``{"output": [batch, ...] float32, "members": {name: [batch, ...]}}``.
  """

  def __init__(self, members, **kwargs):
    super().__init__(**kwargs)
    if not members:
      raise InputError("An ensemble needs at least one member.")
    self.names = list(members)
    self.members = [keras.saving.deserialize_keras_object(m)
                    if isinstance(m, dict) else m for m in members.values()]

  def build(self, input_shape=None):
    if self.built:
      return
    self.member_weights = self.add_weight(
        shape=(len(self.members),), initializer="ones", trainable=False,
        dtype="float32", autocast=False, name="member_weights")
    for member in self.members:
      member.build(None)
    self.built = True

  @property
  def member_names(self):
    """The members' names, in order."""
    return list(self.names)

  def member(self, name):
    """The member called ``name``."""
    return self.members[self.names.index(name)]

  def pad_rows(self):
    """The embedding rows pad positions look up, over every member."""
    return [row for m in self.members if hasattr(m, "pad_rows")
            for row in m.pad_rows()]

  def call(self, inputs, training=None):
    outputs = {name: tf.cast(member(inputs, training=training), tf.float32)
               for name, member in zip(self.names, self.members)}
    combined = tf.add_n([self.member_weights[i] * outputs[name]
                         for i, name in enumerate(self.names)])
    return {"output": combined, "members": outputs}

  def adapt(self, batches):
    """Fits every member's data-derived state (``member.adapt``) from
    ``(features, labels)`` batches of the training split."""
    batches = list(batches) if any(hasattr(m, "adapt")
                                   for m in self.members) else []
    for member in self.members:
      if hasattr(member, "adapt"):
        member.adapt(batches)

  def get_config(self):
    return {"name": self.name, "members": {
        name: keras.saving.serialize_keras_object(member)
        for name, member in zip(self.names, self.members)}}


def fit_member_weights(ensemble, task, batches, progress=None):
  """Sets ``ensemble.member_weights`` to the grid point where ``task``'s best
  metric is best on ``batches``.

  The first member keeps weight 1; each other member's weight is searched
  over :data:`WEIGHT_GRID` (all combinations for up to 3 members, then one
  member at a time, twice). Ties go to the lower loss.

  Args:
    ensemble: an :class:`Ensemble`.
    task: the run's task (its metrics judge the combinations).
    batches: an iterable of ``(features, labels, weights)`` held out from
      training (the validation split), read once.
    progress: optional function of the number of candidates tried.

  Returns:
    ``{"member_weights": {name: weight}, "<metric>": value, "loss": value}``
    of the chosen combination.
  """
  members_of = tf.function(lambda f: ensemble(f, training=False)["members"],
                           reduce_retracing=True, autograph=False)
  cached = []
  for features, labels, weights in batches:
    members = members_of(features)
    cached.append((np.stack([members[n].numpy() for n in ensemble.names]),
                   labels, task.loss_weights(labels, weights)))

  def score(weights):
    metrics = task.build_metrics(training=False)
    shape = (-1,) + (1,) * (cached[0][0].ndim - 1)
    for members, labels, loss_weights in cached:
      combined = tf.constant((members * np.reshape(weights, shape)).sum(0))
      losses = task.compute_loss(labels, combined, False)
      task.update_metrics(metrics, labels, combined, losses, loss_weights)
    return {name: float(m.result()) for name, m in metrics.items()}

  def key(result):
    best = result[task.best_metric]
    return (best if task.best_mode == "max" else -best, -result["loss"])

  count = len(ensemble.names) - 1
  tried = {}

  def tried_score(weights):
    weights = tuple(weights)
    if weights not in tried:
      tried[weights] = score(np.array(weights, np.float32))
      if progress:
        progress(len(tried))
    return tried[weights]

  if count <= 2:
    candidates = [(1.0,) + c for c in itertools.product(WEIGHT_GRID,
                                                        repeat=count)]
    best = max(candidates, key=lambda w: key(tried_score(w)))
  else:
    best = [1.0] * (count + 1)
    for _ in range(2):
      for index in range(1, count + 1):
        best[index] = max(WEIGHT_GRID, key=lambda w: key(tried_score(
            best[:index] + [w] + best[index + 1:])))
    best = tuple(best)
  ensemble.member_weights.assign(np.array(best, np.float32))
  result = dict(tried_score(best))
  result["member_weights"] = dict(zip(ensemble.names, map(float, best)))
  return result
