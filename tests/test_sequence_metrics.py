"""Token and sequence error rates against the closest of several
references, checked against a plain Levenshtein distance."""

import numpy as np

from maskmodels import sequence_metrics as sm
from maskmodels import testing


def levenshtein(a, b):
  row = list(range(len(b) + 1))
  for i, x in enumerate(a, 1):
    previous, row[0] = row[0], i
    for j, y in enumerate(b, 1):
      previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1,
                                     previous + (x != y))
  return row[-1]


def examples(seed):
  """Outputs and 1 to 3 references each, some equal to the output, some
  empty."""
  rng = np.random.default_rng(seed)
  outputs, references = [], []
  for i in range(12):
    output = list(rng.integers(1, 5, size=rng.integers(0, 6)))
    refs = [list(rng.integers(1, 5, size=rng.integers(0, 6)))
            for _ in range(rng.integers(1, 4))]
    if i % 3 == 0:
      refs[rng.integers(len(refs))] = list(output)
    outputs.append(output)
    references.append(refs)
  return outputs, references


def dense(outputs, references, width, fill):
  """The metric's inputs, padded to ``width`` with ``fill`` and 3
  reference slots per example."""
  out, _ = testing.pad_batch([np.array(o, np.int64) for o in outputs],
                             width, fill=fill)
  refs = np.full((len(references), 3, width), fill, np.int64)
  lengths = np.zeros((len(references), 3), np.int32)
  for i, rs in enumerate(references):
    for j, r in enumerate(rs):
      refs[i, j, :len(r)], lengths[i, j] = r, len(r)
  return (out, np.array([len(o) for o in outputs], np.int32), refs,
          lengths, np.array([len(r) for r in references], np.int32))


def test_errors_count_against_the_closest_reference_whatever_the_padding():
  outputs, references = examples(seed=0)
  results = [sm.closest_reference_errors(*dense(outputs, references, w, f))
             for w, f in ((6, 0), (11, 9))]
  for errors, lengths, exact in results:
    for i, (o, refs) in enumerate(zip(outputs, references)):
      distances = [levenshtein(o, r) for r in refs]
      closest = int(np.argmin(distances))
      assert errors.numpy()[i] == distances[closest]
      assert lengths.numpy()[i] == len(refs[closest])
      assert exact.numpy()[i] == (o in refs)


def test_the_rates_sum_errors_over_reference_lengths():
  outputs, references = examples(seed=1)
  errors, lengths, exact = sm.closest_reference_errors(
      *dense(outputs, references, 6, 0))
  weights = np.ones(len(outputs), np.float32)
  weights[-1] = 0.0  # a filler row counts nowhere
  ter, ser = sm.TokenErrorRate(), sm.SequenceErrorRate()
  ter.update_state(errors, lengths, sample_weight=weights)
  ser.update_state(exact, sample_weight=weights)
  e, n, x = (v.numpy()[:-1] for v in (errors, lengths, exact))
  np.testing.assert_allclose(ter.result(), e.sum() / n.sum(), rtol=1e-6)
  np.testing.assert_allclose(ser.result(), 1 - x.mean(), rtol=1e-6)


def test_no_example_and_empty_sequences():
  errors, lengths, exact = sm.closest_reference_errors(
      np.zeros((0, 4), np.int32), np.zeros(0, np.int32),
      np.zeros((0, 2, 4), np.int32), np.zeros((0, 2), np.int32),
      np.zeros(0, np.int32))
  assert errors.shape == lengths.shape == exact.shape == (0,)
  errors, lengths, exact = sm.closest_reference_errors(
      np.zeros((1, 0), np.int32), [0], np.zeros((1, 1, 0), np.int32),
      [[0]], [1])
  assert errors.numpy()[0] == 0 and exact.numpy()[0]
  assert float(sm.TokenErrorRate().result()) == 0.0
