"""Optimizers, learning-rate schedules and precision policies by name."""

import keras

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "linear")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def learning_rate_schedule(name, peak, total_steps, warmup_steps=0):
  """Linear warm-up to ``peak`` over ``warmup_steps``, then ``name`` decay.

  ``"constant"`` stays at ``peak``; ``"cosine"`` decays to 0 at
  ``total_steps``; ``"linear"`` decays linearly to 0 at ``total_steps``.
  """
  if name not in SCHEDULES:
    raise ValueError(f"Unknown learning-rate schedule {name!r}; available: "
                     f"{', '.join(SCHEDULES)}.")
  if peak <= 0:
    raise ValueError(f"learning_rate must be > 0, got {peak!r}.")
  warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
  decay_steps = max(total_steps - warmup_steps, 1)
  if name == "linear":
    decayed = keras.optimizers.schedules.PolynomialDecay(
        peak, decay_steps, end_learning_rate=0.0, power=1.0)
    return _Warmup(peak, warmup_steps, decayed) if warmup_steps else decayed
  return keras.optimizers.schedules.CosineDecay(
      0.0 if warmup_steps else peak, decay_steps,
      alpha=1.0 if name == "constant" else 0.0,
      warmup_target=peak if warmup_steps else None,
      warmup_steps=warmup_steps)


@keras.saving.register_keras_serializable(package="maskmodels")
class _Warmup(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up, then another schedule (shifted by the warm-up)."""

  def __init__(self, peak, warmup_steps, after):
    self.peak, self.warmup_steps, self.after = peak, warmup_steps, after

  def __call__(self, step):
    step = keras.ops.cast(step, "float32")
    warm = self.peak * step / self.warmup_steps
    return keras.ops.where(step < self.warmup_steps, warm,
                           self.after(step - self.warmup_steps))

  def get_config(self):
    return {"peak": self.peak, "warmup_steps": self.warmup_steps,
            "after": keras.saving.serialize_keras_object(self.after)}


def make_optimizer(name, learning_rate, weight_decay=0.0, precision="float32"):
  """A Keras optimizer; wrapped for loss scaling under ``mixed_float16``."""
  if name not in OPTIMIZERS:
    raise ValueError(f"Unknown optimizer {name!r}; available: "
                     f"{', '.join(OPTIMIZERS)}.")
  if name == "adam":
    optimizer = keras.optimizers.Adam(learning_rate)
  elif name == "adamw":
    optimizer = keras.optimizers.AdamW(learning_rate,
                                       weight_decay=weight_decay or 0.004)
  elif name == "sgd":
    optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9)
  else:
    optimizer = keras.optimizers.RMSprop(learning_rate)
  if precision == "mixed_float16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def set_precision(precision):
  """Sets Keras's global dtype policy; call before building the model."""
  if precision not in PRECISIONS:
    raise ValueError(f"Unknown precision {precision!r}; available: "
                     f"{', '.join(PRECISIONS)}.")
  keras.mixed_precision.set_global_policy(precision)
