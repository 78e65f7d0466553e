"""The Controller owns the outer loop: train N steps, evaluate, checkpoint.

Everything else around the loop is an action (``training.actions``):
progress, summaries, history and curves, the best checkpoint, the memory
probe, the NaN guard, preemption. This is Orbit's ``Controller`` shape.
"""

import contextlib
import time


class Controller:
  """Runs a :class:`~maskmodels.training.trainer.Trainer` to a step count.

  Each loop trains ``steps_per_loop`` steps (fewer at an evaluation point or
  the end), calls the train actions, evaluates every ``eval_every`` steps
  and calls the eval actions, offers the checkpointer a save (it keeps its
  own interval), then calls the preemption actions.

  Args:
    trainer: the Trainer; its ``step`` is the loop's counter.
    checkpointer: has ``save(step, force=False)``.
    evaluate: a function returning evaluation outputs, or None.
    steps_per_loop: train steps per ``trainer.train`` call.
    eval_every: steps between evaluations (an epoch).
    train_actions, eval_actions: functions ``(step, outputs)``.
    preemption: objects with ``watching()`` (a context manager) and
      ``(step)`` that may save and raise to stop.
    stop: a function that says, after a loop, to stop before
      ``total_steps`` (early stopping), or None.
  """

  def __init__(self, trainer, checkpointer, evaluate=None, *, steps_per_loop,
               eval_every, train_actions=(), eval_actions=(), preemption=(),
               stop=None):
    if steps_per_loop < 1 or eval_every < 1:
      raise ValueError(f"steps_per_loop ({steps_per_loop}) and eval_every "
                       f"({eval_every}) must be >= 1.")
    self.trainer = trainer
    self.checkpointer = checkpointer
    self.evaluate = evaluate
    self.steps_per_loop = steps_per_loop
    self.eval_every = eval_every
    self.train_actions = list(train_actions)
    self.eval_actions = list(eval_actions)
    self.preemption = list(preemption)
    self.stop = stop

  def run(self, total_steps):
    """Trains until ``trainer.step == total_steps`` (or ``stop()``); saves
    at the end."""
    with contextlib.ExitStack() as stack:
      for action in self.preemption:
        stack.enter_context(action.watching())
      while self.trainer.step < total_steps and not (
          self.stop and self.stop()):
        self._loop(total_steps)
    self.checkpointer.save(self.trainer.step, force=True)

  def _loop(self, total_steps):
    step = self.trainer.step
    steps = min(self.steps_per_loop, total_steps - step,
                self.eval_every - step % self.eval_every)
    start = time.perf_counter()
    outputs = self.trainer.train(steps)
    outputs.update(steps=steps, seconds=time.perf_counter() - start)
    step += steps
    for action in self.train_actions:
      action(step, outputs)
    if self.evaluate and (step % self.eval_every == 0 or step == total_steps):
      results = self.evaluate()
      for action in self.eval_actions:
        action(step, results)
    self.checkpointer.save(step)
    for action in self.preemption:
      action(step)
