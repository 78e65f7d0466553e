"""Timing in alternating rounds, shared by the benchmarks."""

import statistics
import time

import numpy as np
import tensorflow as tf


def alternate(runners, rounds, calls):
  """Milliseconds per call of each runner, one figure per round.

  Args:
    runners: ``{name: function of no arguments}``. Each is called once
      first (traced and warm); then every round calls each runner
      ``calls`` times, the runners in turn, so a change in the machine's
      speed reaches them all alike.
    rounds: rounds; calls: calls of each runner per round.

  Returns:
    ``{name: [ms per call, one per round]}``; a round's clock stops when its
    last call's outputs (tensors, arrays or numbers, nested) are ready.
  """
  for run in runners.values():
    run()
  times = {name: [] for name in runners}
  for _ in range(rounds):
    for name, run in runners.items():
      start = time.perf_counter()
      for _ in range(calls):
        out = run()
      tf.nest.map_structure(np.asarray, out)
      times[name].append(1000 * (time.perf_counter() - start) / calls)
  return times


def medians(times):
  """``{name: median}`` of :func:`alternate`'s rounds."""
  return {name: statistics.median(t) for name, t in times.items()}
