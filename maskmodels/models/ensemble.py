"""Ensemble: named member models, each trained on its own loss.

The output is ``sum_m weight_m * member_m(inputs)``. The weights are a
non-trainable variable (saved with the model): ``1 / members`` (the mean)
until :func:`fit_member_weights` fits them to held-out data, which the
training run does at its end. ``call`` returns ``ModelOutputs(combined,
mask, {"members": {name: ModelOutputs}})`` in training and serving alike;
the task trains each member on its own loss and reports the combined
output's.
"""

import keras
import tensorflow as tf

from maskmodels.errors import InputError
from maskmodels.models.sequence_model import layer_of
from maskmodels.outputs import ModelOutputs, model_outputs


@keras.saving.register_keras_serializable(package="maskmodels")
class Ensemble(keras.Model):
  """Any number of named members with the same output shape.

  Args:
    members: ``{name: model}`` in order (the first is the reference member,
      usually the network); a model may be a serialized dict.
    tied: the members are alike (copies of one network): their weights
      stay equal, and fitting finds one scale for their mean.

  Call args:
    inputs: what every member takes (ids ``[batch, time]`` or a feature
      dict).

  Returns:
    ``ModelOutputs(combined [batch, ...] float32, the first member's mask,
    {"members": {name: ModelOutputs}})``.
  """

  def __init__(self, members, tied=False, **kwargs):
    super().__init__(**kwargs)
    if not members:
      raise InputError("An ensemble needs at least one member.")
    self.tied = bool(tied)
    self.names = list(members)
    self.members = [layer_of(m) for m in members.values()]

  def build(self, input_shape=None):
    if self.built:
      return
    self.member_weights = self.add_weight(
        shape=(len(self.members),), trainable=False,
        initializer=keras.initializers.Constant(1.0 / len(self.members)),
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
    outputs = {}
    for name, member in zip(self.names, self.members):
      output = model_outputs(member(inputs, training=training))
      outputs[name] = output._replace(outputs=tf.cast(output.outputs,
                                                      tf.float32))
    combined = combine([o.outputs for o in outputs.values()],
                       self.member_weights)
    return ModelOutputs(combined, outputs[self.names[0]].mask,
                        {"members": outputs})

  def adapt(self, batches):
    """Fits every member's data-derived state (``member.adapt``) from
    ``(features, labels)`` batches of the training split."""
    batches = list(batches) if any(hasattr(m, "adapt")
                                   for m in self.members) else []
    for member in self.members:
      if hasattr(member, "adapt"):
        member.adapt(batches)

  def fit_held_out(self, task, batches):
    """After training, fits the member weights on held-out ``(features,
    labels, weights)`` batches (:func:`fit_member_weights`; the run calls
    this hook of any model that has it, on the validation split)."""
    return fit_member_weights(self, task, batches, tied=self.tied)

  def get_config(self):
    return {"name": self.name, "tied": self.tied, "members": {
        name: keras.saving.serialize_keras_object(member)
        for name, member in zip(self.names, self.members)}}


def combine(outputs, weights):
  """``sum_m weights[m] * outputs[m]``: the ensemble's output from its
  members' float32 outputs (a list of tensors, or of ``ModelOutputs``
  whose combination keeps the first one's mask, in member order) and their
  weights."""
  if outputs and isinstance(outputs[0], ModelOutputs):
    return outputs[0]._replace(outputs=combine([o.outputs for o in outputs],
                                               weights), extras={})
  return tf.add_n([weights[i] * output for i, output in enumerate(outputs)])


def fit_member_weights(ensemble, task, batches, progress=None, steps=500,
                       tied=False):
  """Sets ``ensemble.member_weights`` to minimize ``task``'s loss on
  ``batches`` (stacking: every member's weight is fitted, none negative).

  The weighted loss of held-out data is smooth in the weights, where the
  best metric of a small validation split is a noisy step function (on
  IMDb's 1,250 validation reviews, accuracy ties weights 1 and 5 whose test
  accuracies differ by half a point); its minimum also sets each member's
  scale, so an over-confident member is weighed down.

  Args:
    ensemble: an :class:`Ensemble`.
    task: the run's task (its loss, loss weights and metrics).
    batches: an iterable of ``(features, labels, weights)`` held out from
      training (the validation split), read once.
    progress: optional function of the number of fitting steps taken.
    steps: Adam steps on the weights (kept at 0 or more), from weights 1.
    tied: fit one scale of the members' mean (every weight ``scale /
      members``, from scale 1): alike members, a small held-out split.

  Returns:
    ``{"member_weights": {name: weight}, "loss": value, <metric>: value}``
    of the fitted weights on ``batches``.
  """
  members_of = tf.function(lambda f: ensemble(f, training=False).members,
                           reduce_retracing=True, autograph=False)
  cached = []
  for features, labels, weights in batches:
    members = members_of(features)
    cached.append(([members[n] for n in ensemble.names], labels,
                   task.loss_weights(labels, weights)))
  if not cached:
    raise InputError("No held-out batches to fit the member weights on.")
  total = tf.add_n([tf.reduce_sum(w) for _, _, w in cached])
  count = len(ensemble.names)
  fitting = tf.Variable(tf.ones([1 if tied else count]))

  def weights():
    return (tf.fill([count], fitting[0] / count) if tied else
            tf.identity(fitting))

  def loss():
    return tf.add_n([tf.reduce_sum(task.compute_loss(
        labels, combine(members, weights()), False) * loss_weights)
                     for members, labels, loss_weights in cached]) / total

  optimizer = keras.optimizers.Adam(learning_rate=0.05)

  @tf.function(autograph=False)
  def step():
    with tf.GradientTape() as tape:
      value = loss()
    optimizer.apply_gradients([(tape.gradient(value, fitting), fitting)])
    fitting.assign(tf.maximum(fitting, 0.0))

  for taken in range(1, steps + 1):
    step()
    if progress and taken % 50 == 0:
      progress(taken)
  fitted = weights().numpy()
  ensemble.member_weights.assign(fitted)
  metrics = task.build_metrics(training=False)
  for members, labels, loss_weights in cached:
    combined = combine(members, fitted)
    task.update_metrics(metrics, labels, combined,
                        task.compute_loss(labels, combined, False),
                        loss_weights)
  result = {name: float(m.result()) for name, m in metrics.items()}
  result["member_weights"] = dict(zip(ensemble.names, map(float, fitted)))
  return result
