"""The IMDb model of the throughput benchmarks and its custom loop."""

import keras
import tensorflow as tf

import maskmodels as mm
from maskmodels import training

CLASSIFICATION = mm.ClassificationTask(label_names=["neg", "pos"])


def make_model(vocab_size):
  """Conv 128 (k5, pool 2, layer norm) -> BiGRU 64 -> max pooling."""
  return mm.SequenceModel.classifier(
      vocab_size, 2, embedding_dim=128, encoder_config=dict(
          conv_filters=[128], kernel_size=5, pool_size=2,
          normalization="layer", gru_units=[64], bidirectional=True),
      pooling="max", head_dropout=0.3)


class Logits(keras.Model):
  """A maskmodels model's outputs alone (its ``ModelOutputs.outputs``): what
  Keras's ``fit`` and losses read."""

  def __init__(self, model, **kwargs):
    super().__init__(**kwargs)
    self.model = model

  def call(self, inputs, training=None):
    return self.model(inputs, training=training).outputs


class CustomLoop:
  """The maskmodels Trainer on a strategy (default: one device).

  Args:
    make: builds the model (default :func:`make_model` of ``vocab_size``).
    task: the task (default: two-class classification).
  """

  def __init__(self, vocab_size, dataset_fn, steps_per_loop, jit_compile,
               precision="float32", strategy=None, make=None, task=None):
    self.strategy = strategy or tf.distribute.get_strategy()
    training.set_precision(precision)  # layers keep the policy they are
    with self.strategy.scope():        # built under
      self.model = (make or make_model)(vocab_size)
      self.model.build()
      training.set_precision("float32")
      optimizer = training.make_optimizer("adam", 1e-3)
      optimizer.build(self.model.trainable_variables)
    self.trainer = training.Trainer(task or CLASSIFICATION, self.model,
                                    optimizer, self.strategy, clip_norm=1.0,
                                    jit_compile=jit_compile)
    self.trainer.set_train_data(dataset_fn)
    self.steps_per_loop = steps_per_loop

  def run(self, steps):
    """Trains ``steps`` steps; returns the training metrics summed
    (``examples``, and ``tokens`` for a per-token task)."""
    totals = {}
    for start in range(0, steps, self.steps_per_loop):
      loop = min(self.steps_per_loop, steps - start)
      for name, value in self.trainer.train(loop).items():
        if name in ("examples", "tokens"):
          totals[name] = totals.get(name, 0.0) + value
    return totals
