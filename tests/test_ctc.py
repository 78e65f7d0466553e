"""CTC on masked logits: exact lengths, padding invariance of the loss and
its gradients (a strided encoder included, on tokens and frames), targets
that do not fit, greedy and beam decoding."""

import numpy as np
import pytest
import tensorflow as tf

import maskmodels as mm
from maskmodels import ctc, testing

CLASSES = 6  # class 0 is the blank


def targets_of(lengths, seed):
  rng = np.random.default_rng(seed)
  rows = [rng.integers(1, CLASSES, size=n).astype(np.int32) for n in lengths]
  ids = np.zeros((len(rows), max(lengths, default=0) + 2), np.int32)
  for row, target in enumerate(rows):
    ids[row, :len(target)] = target
    ids[row, len(target):] = 7  # past the length: ignored, even out of range
  return rows, ids, np.array(lengths, np.int32)


def loss_and_gradient(logits, mask, targets, lengths):
  logits = tf.constant(logits)
  with tf.GradientTape() as tape:
    tape.watch(logits)
    loss, fits = ctc.ctc_loss(targets, lengths, logits, mask)
    total = tf.reduce_sum(loss)
  return loss.numpy(), fits.numpy(), tape.gradient(total, logits).numpy()


def test_the_loss_equals_tensorflows_on_each_example_alone_and_unpadded():
  rng = np.random.default_rng(0)
  steps = [5, 9, 0, 7, 3]
  logits = [rng.normal(size=(n, CLASSES)).astype(np.float32) for n in steps]
  rows, ids, lengths = targets_of([2, 4, 0, 3, 1], seed=1)
  batch, mask = testing.pad_batch(logits, 12, fill=np.nan)
  loss, fits, _ = loss_and_gradient(batch, mask, ids, lengths)
  assert fits.all()
  for i, (example, target) in enumerate(zip(logits, rows)):
    alone = tf.nn.ctc_loss(target[np.newaxis], example[np.newaxis],
                           label_length=[len(target)],
                           logit_length=[len(example)],
                           logits_time_major=False, blank_index=0)
    np.testing.assert_allclose(loss[i], alone.numpy()[0], rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("left", [False, True], ids=["right", "left"])
def test_loss_and_gradients_ignore_padding_and_batch_mates(left):
  """Extra padding holding NaN, left or right padding and other batch-mates
  change no example's loss or gradient; pad steps get exactly 0."""
  rng = np.random.default_rng(2)
  steps = [6, 8, 4, 0]
  logits = [rng.normal(size=(n, CLASSES)).astype(np.float32) for n in steps]
  _, ids, lengths = targets_of([3, 5, 2, 0], seed=3)
  tight, tight_mask = testing.pad_batch(logits, 8)
  wide, wide_mask = testing.pad_batch(logits, 15, left=left, fill=np.nan)
  loss, _, grad = loss_and_gradient(tight, tight_mask, ids, lengths)
  wide_loss, _, wide_grad = loss_and_gradient(wide, wide_mask, ids, lengths)
  np.testing.assert_allclose(wide_loss, loss, rtol=1e-6, atol=1e-6)
  assert np.all(wide_grad[~wide_mask] == 0)
  for row, n in enumerate(steps):
    np.testing.assert_allclose(wide_grad[row][wide_mask[row]],
                               grad[row, :n], rtol=1e-5, atol=1e-6)
    alone, alone_mask = testing.pad_batch(logits[row:row + 1], n)
    alone_loss, _, _ = loss_and_gradient(alone, alone_mask, ids[row:row + 1],
                                         lengths[row:row + 1])
    np.testing.assert_allclose(alone_loss[0], loss[row], rtol=1e-6,
                               atol=1e-6)


def test_a_target_that_does_not_fit_is_reported_with_zero_loss_and_gradient():
  """Equal neighbours need a blank between them: [1, 1, 2] needs 4 steps."""
  rng = np.random.default_rng(4)
  logits = rng.normal(size=(3, 4, CLASSES)).astype(np.float32)
  mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]], bool)
  ids = np.array([[1, 1, 2], [1, 1, 2], [1, 2, 3]], np.int32)
  lengths = np.array([3, 3, 3], np.int32)
  np.testing.assert_array_equal(ctc.required_steps(ids, lengths), [4, 4, 3])
  loss, fits, grad = loss_and_gradient(logits, mask, ids, lengths)
  np.testing.assert_array_equal(fits, [True, False, True])
  assert loss[1] == 0 and np.all(grad[1] == 0)
  assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
  assert loss[0] > 0 and loss[2] > 0


def test_an_empty_batch_and_empty_rows_give_finite_zero_losses():
  logits = np.zeros((2, 0, CLASSES), np.float32)
  loss, fits, grad = loss_and_gradient(logits, np.zeros((2, 0), bool),
                                       np.zeros((2, 1), np.int32),
                                       np.array([0, 1], np.int32))
  np.testing.assert_array_equal(fits, [True, False])
  np.testing.assert_array_equal(loss, [0.0, 0.0])
  assert grad.shape == (2, 0, CLASSES)


# ---- a model whose encoder strides: the logit lengths are its output mask --


STRIDED = dict(conv_filters=[8, 8], kernel_size=[3], strides=[2],
               pool_size=[1], gru_units=[6], dropout=0.0)


def token_model():
  return mm.SequenceBackbone(20, encoder_config=STRIDED), False


def frame_model():
  return mm.FrameBackbone(3, encoder_config=STRIDED), True


@pytest.mark.parametrize("build", [token_model, frame_model],
                         ids=["tokens", "frames"])
def test_a_strided_ctc_model_is_padding_invariant(build):
  """Each example's loss, and the gradients of the summed loss, are the
  same alone and unpadded as in a left- or right-padded batch whose pad
  steps hold other values (NaN for frames). The encoder strides twice by
  2: 16 input steps give 4 logit steps, so one target does not fit."""
  backbone, frames = build()
  head = tf.keras.layers.Dense(CLASSES)
  rng = np.random.default_rng(5)
  lengths = [11, 16, 5, 0, 9]
  if frames:
    inputs = [rng.normal(size=(n, 3)).astype(np.float32) for n in lengths]
  else:
    inputs = [rng.integers(1, 20, size=n).astype(np.int32) for n in lengths]
  _, targets, target_lengths = targets_of([3, 4, 2, 0, 5], seed=6)
  variables = None

  def run(batch, mask, rows):
    nonlocal variables
    features = {"frames": batch, "mask": mask} if frames else {"ids": batch}
    with tf.GradientTape() as tape:
      out = backbone(features)
      loss, fits = ctc.ctc_loss(targets[rows], target_lengths[rows],
                                head(out["steps"]), out["mask"])
      total = tf.reduce_sum(loss)
    variables = backbone.trainable_variables + head.trainable_variables
    grads = tape.gradient(total, variables)
    return loss.numpy(), fits.numpy(), [
        np.zeros(v.shape) if g is None else tf.convert_to_tensor(g).numpy()
        for g, v in zip(grads, variables)]

  alone = [run(*testing.pad_batch([x], len(x)), [i])
           for i, x in enumerate(inputs)]
  fits_alone = np.array([a[1][0] for a in alone])
  assert fits_alone.any() and not fits_alone.all()
  fill = np.nan if frames else 0
  for left in (False, True):
    batch, mask = testing.pad_batch(inputs, 22, left=left, fill=fill)
    loss, fits, grads = run(batch, mask, list(range(len(inputs))))
    np.testing.assert_allclose(loss, [a[0][0] for a in alone], rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(fits, fits_alone)
    for j, variable in enumerate(variables):
      np.testing.assert_allclose(
          grads[j], sum(a[2][j] for a in alone), rtol=2e-4, atol=2e-5,
          err_msg=f"{variable.path}, left={left}")


# ---- decoding ---------------------------------------------------------------


def best_path(logits):
  """The reference: argmax per step, repeats merged, blanks dropped."""
  path = [int(k) for k in np.argmax(logits, -1)]
  merged = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
  return [k for k in merged if k != 0]


@pytest.mark.parametrize("left", [False, True], ids=["right", "left"])
def test_greedy_and_beam_decoding_read_only_real_steps(left):
  rng = np.random.default_rng(7)
  steps = [7, 0, 4, 9]
  # Peaked logits: the best path is the likeliest output, so beam search
  # must find it too.
  logits = [(rng.normal(size=(n, CLASSES)) +
             8 * np.eye(CLASSES)[rng.integers(0, CLASSES, size=n)]
             ).astype(np.float32) for n in steps]
  batch, mask = testing.pad_batch(logits, 13, left=left, fill=np.nan)
  ids, lengths = ctc.greedy_decode(batch, mask)
  beam_ids, beam_lengths, score = ctc.beam_decode(batch, mask, beam_width=8)
  assert np.all(np.isfinite(score.numpy()))
  for row, example in enumerate(logits):
    expected = best_path(example)
    assert list(ids[row, :lengths[row]].numpy()) == expected
    assert list(beam_ids[row, :beam_lengths[row]].numpy()) == expected
    assert np.all(ids[row, lengths[row]:].numpy() == 0)


def test_beam_search_keeps_the_blank_where_it_is_given():
  """Blank 0 and blank last decode the same logits, classes permuted."""
  rng = np.random.default_rng(8)
  logits = rng.normal(size=(3, 10, CLASSES)).astype(np.float32)
  mask = np.ones((3, 10), bool)
  ids, lengths, score = ctc.beam_decode(logits, mask, blank=0)
  rolled = np.roll(logits, -1, axis=2)  # class k -> k - 1, blank last
  last_ids, last_lengths, last_score = ctc.beam_decode(
      rolled, mask, blank=CLASSES - 1)
  np.testing.assert_array_equal(lengths, last_lengths)
  np.testing.assert_allclose(score, last_score, rtol=1e-5)
  for row in range(3):
    n = lengths[row]
    np.testing.assert_array_equal(ids[row, :n], last_ids[row, :n] + 1)
