"""Optimizers, learning-rate schedules and precision policies by name."""

import math

import keras
from absl import logging

from maskmodels.cpu import cpu_flags
from maskmodels.registry import Registry

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@keras.saving.register_keras_serializable(package="maskmodels")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to ``peak``, then a decay that ends near zero.

  The optimizer passes the index of the step it is taking (0 for the first),
  and every step trains at a learning rate above zero: step ``s`` of the
  warm-up uses ``peak * (s + 1) / warmup_steps``, so the first step learns
  too; the decay covers steps ``warmup_steps .. total_steps - 1`` and reaches
  zero only at ``total_steps``, which is never taken.

  Args:
    peak: the learning rate after warm-up.
    total_steps: steps of the whole run.
    warmup_steps: steps of linear warm-up.
    decay: ``"cosine"``, ``"linear"`` or ``"constant"``.
  """

  def __init__(self, peak, total_steps, warmup_steps=0, decay="cosine"):
    if decay not in ("cosine", "linear", "constant"):
      raise ValueError(f"decay must be cosine, linear or constant, got "
                       f"{decay!r}.")
    self.peak = float(peak)
    self.total_steps = int(total_steps)
    self.warmup_steps = int(min(warmup_steps, max(total_steps - 1, 0)))
    self.decay = decay

  def __call__(self, step):
    step = keras.ops.cast(step, "float32")
    warm = self.peak * (step + 1.0) / max(self.warmup_steps, 1)
    progress = keras.ops.clip(
        (step - self.warmup_steps) / max(self.total_steps -
                                         self.warmup_steps, 1), 0.0, 1.0)
    if self.decay == "cosine":
      decayed = 0.5 * self.peak * (1.0 + keras.ops.cos(math.pi * progress))
    elif self.decay == "linear":
      decayed = self.peak * (1.0 - progress)
    else:
      decayed = self.peak + 0.0 * progress
    return keras.ops.where(step < self.warmup_steps, warm, decayed)

  def get_config(self):
    return {"peak": self.peak, "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps, "decay": self.decay}


SCHEDULES = Registry("learning-rate schedule")
for _decay in ("cosine", "linear", "constant"):
  SCHEDULES.add(_decay, _decay)


def learning_rate_schedule(name, peak, total_steps, warmup_steps=0):
  """A :class:`WarmupDecay` with the decay registered as ``name``."""
  if peak <= 0:
    raise ValueError(f"learning_rate must be > 0, got {peak!r}.")
  return WarmupDecay(peak, total_steps, warmup_steps, SCHEDULES.get(name))


class PreAggregatedGradients:
  """Optimizer mixin: gradients arrive already summed over replicas.

  Keras's TensorFlow optimizer all-reduces gradients inside
  ``apply_gradients``; the trainer aggregates them itself (so clipping sees
  the global norm), so a step holds one gradient all-reduce, not two.
  """

  def _all_reduce_sum_gradients(self, grads_and_vars):
    return list(grads_and_vars)


def _pre_aggregated(optimizer_class):
  return type(optimizer_class.__name__,
              (PreAggregatedGradients, optimizer_class), {})


OPTIMIZERS = Registry("optimizer")
OPTIMIZERS.add("adam", lambda lr, wd: _pre_aggregated(
    keras.optimizers.Adam)(lr))
OPTIMIZERS.add("adamw", lambda lr, wd: _pre_aggregated(
    keras.optimizers.AdamW)(lr, weight_decay=wd))
OPTIMIZERS.add("sgd", lambda lr, wd: _pre_aggregated(
    keras.optimizers.SGD)(lr, momentum=0.9))
OPTIMIZERS.add("rmsprop", lambda lr, wd: _pre_aggregated(
    keras.optimizers.RMSprop)(lr))


def make_optimizer(name, learning_rate, weight_decay=0.004,
                   precision="float32"):
  """A Keras optimizer that takes gradients already summed over replicas;
  wrapped for loss scaling under ``mixed_float16``. ``weight_decay`` is
  AdamW's (the other optimizers have none)."""
  optimizer = OPTIMIZERS.get(name)(learning_rate, weight_decay)
  if precision == "mixed_float16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


# Measured on an AMD EPYC with AVX2 and no native bfloat16: the IMDb model
# trained at 0.31x its float32 speed (training_throughput benchmark).
_EMULATED_BFLOAT16_SPEED = 0.31


def cpu_has_native_bfloat16(cpuinfo="/proc/cpuinfo"):
  """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX), or
  None if that cannot be read (not Linux)."""
  flags = cpu_flags(cpuinfo)
  if flags is None:
    return None
  return bool(flags & {"avx512_bf16", "amx_bf16"})


def set_precision(precision, on_gpu=False):
  """Sets Keras's global dtype policy; call before building the model.

  Warns when ``mixed_bfloat16`` would run emulated on this CPU.
  """
  if precision not in PRECISIONS:
    raise ValueError(f"Unknown precision {precision!r}; available: "
                     f"{', '.join(PRECISIONS)}.")
  if (precision == "mixed_bfloat16" and not on_gpu and
      cpu_has_native_bfloat16() is False):
    logging.warning(
        "--precision=mixed_bfloat16 on a CPU without native bfloat16 "
        "(no AVX512-BF16 or AMX): expect about %.2fx the float32 speed "
        "(measured); use float32 here.", _EMULATED_BFLOAT16_SPEED)
  keras.mixed_precision.set_global_policy(precision)
