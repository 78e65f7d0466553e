"""The attention decoder over a masked encoder: weights exactly 0 at pad
steps, the same logits and decoded output for a source alone or in a padded
batch, target padding that changes no real step, greedy decoding that
agrees with teacher forcing."""

import numpy as np
import pytest
import tensorflow as tf

from maskmodels import testing
from maskmodels.models.attention_decoder import (AttentionGRUDecoder,
                                                 MaskedAttention)

VOCAB, DIM = 9, 5  # target ids: 0 pad, 1 start, 2 end


def sources(seed=0, lengths=(4, 7, 0, 2)):
  rng = np.random.default_rng(seed)
  return [rng.normal(size=(n, DIM)).astype(np.float32) for n in lengths]


def targets(seed=1, lengths=(3, 1, 2, 4)):
  """Decoder inputs: the start id, then ids in 3..VOCAB-1."""
  rng = np.random.default_rng(seed)
  return [np.concatenate([[1], rng.integers(3, VOCAB, size=n)]).astype(
      np.int32) for n in lengths]


def random_decoder(seed):
  """A decoder with weights drawn from N(0, 1): less peaked than Keras's
  initial ones, so its likeliest outputs vary with the source and beams
  change places."""
  decoder = AttentionGRUDecoder(VOCAB, embedding_dim=4, units=6)
  decoder(np.ones((1, 1), np.int32), np.zeros((1, 1, DIM), np.float32),
          np.ones((1, 1), bool))
  rng = np.random.default_rng(seed)
  for variable in decoder.weights:
    variable.assign(rng.normal(size=variable.shape).astype(np.float32))
  return decoder


def test_attention_weights_are_exactly_zero_at_pad_steps():
  attention = MaskedAttention(6)
  memory, mask = testing.pad_batch(sources(), 10, left=True, fill=np.nan)
  query = tf.random.stateless_normal([4, 3, 6], seed=[0, 1])
  context, weights = attention(query, memory, mask)
  weights = weights.numpy()
  assert np.all(weights[np.broadcast_to(~mask[:, None], weights.shape)] == 0)
  np.testing.assert_allclose(weights[[0, 1, 3]].sum(-1), 1.0, rtol=1e-6)
  assert np.all(weights[2] == 0) and np.all(context.numpy()[2] == 0)
  assert np.all(np.isfinite(context.numpy()))


@pytest.mark.parametrize("left", [False, True], ids=["right", "left"])
def test_a_source_alone_or_in_a_padded_batch_gives_the_same_logits(left):
  """Extra source padding (NaN), left or right, extra target padding and
  batch-mates change no real step's logits nor the gradients."""
  decoder = AttentionGRUDecoder(VOCAB, embedding_dim=4, units=6)
  src, tgt = sources(), targets()
  logits_alone, grads_alone = [], []
  for s, t in zip(src, tgt):
    memory, mask = testing.pad_batch([s], len(s))
    memory = tf.constant(memory)
    with tf.GradientTape() as tape:
      tape.watch(memory)
      logits = decoder(t[np.newaxis], memory, mask)
      total = tf.reduce_sum(logits * tf.cos(tf.range(VOCAB, dtype=tf.float32)))
    logits_alone.append(logits.numpy()[0])
    grads_alone.append(tape.gradient(total, memory).numpy()[0])
  memory, mask = testing.pad_batch(src, 11, left=left, fill=np.nan)
  targets_in, target_mask = testing.pad_batch(tgt, 8)
  memory = tf.constant(memory)
  with tf.GradientTape() as tape:
    tape.watch(memory)
    logits = decoder(targets_in, memory, mask)
    total = tf.reduce_sum(
        tf.where(target_mask[..., None], logits, 0.0) *
        tf.cos(tf.range(VOCAB, dtype=tf.float32)))
  grads = tape.gradient(total, memory).numpy()
  assert np.all(grads[~mask] == 0)
  for row, (t, alone) in enumerate(zip(tgt, logits_alone)):
    np.testing.assert_allclose(logits.numpy()[row, :len(t)], alone,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads[row][mask[row]], grads_alone[row],
                               rtol=1e-4, atol=1e-6)


def test_greedy_decoding_agrees_with_teacher_forcing_and_ignores_padding():
  """Each greedy token is the argmax of the teacher-forced logits given
  the tokens before it, alone or in a padded batch, and decoding stops at
  the end id."""
  decoder = random_decoder(seed=3)
  src = sources(seed=3, lengths=(5, 0, 3, 8))
  memory, mask = testing.pad_batch(src, 12, left=True, fill=np.nan)
  ids, lengths = decoder.greedy_decode(memory, mask, max_len=6)
  ids, lengths = ids.numpy(), lengths.numpy()
  assert ids.shape == (4, 6)
  for row, s in enumerate(src):
    alone, alone_mask = testing.pad_batch([s], len(s))
    alone_ids, alone_lengths = decoder.greedy_decode(alone, alone_mask, 6)
    np.testing.assert_array_equal(alone_ids.numpy()[0], ids[row])
    n = lengths[row]
    assert alone_lengths.numpy()[0] == n and np.all(ids[row, n:] == 0)
    assert np.all(ids[row, :n] > 2)  # never pad, start or end
    forced = decoder(np.concatenate([[1], ids[row, :n]])[np.newaxis],
                     alone, alone_mask).numpy()[0]
    forced[:, [0, 1]] = -np.inf
    expected = np.argmax(forced, -1)
    np.testing.assert_array_equal(expected[:n], ids[row, :n])
    if n < 6:  # it stopped: the end id was the likeliest next token
      assert expected[n] == 2


def sequence_log_probability(decoder, ids, memory, mask, max_len):
  """The teacher-forced log probability of ``ids`` (then the end id, if
  they end before ``max_len``), pad and start ids never written."""
  ended = len(ids) < max_len
  inputs = np.concatenate([[1], ids]).astype(np.int32)[np.newaxis]
  logits = decoder(inputs, memory, mask).numpy()[0]
  logits[:, [0, 1]] = -1e9
  log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)
                                     ).sum(-1, keepdims=True)) - logits.max(
                                         -1, keepdims=True)
  wanted = list(ids) + ([2] if ended else [])
  return sum(log_probs[i, k] for i, k in enumerate(wanted))


def test_beam_search_finds_what_it_scores_and_ignores_padding():
  """Its score is the teacher-forced log probability of its output, at
  least the greedy output's; width 1 is greedy; a source alone or in a
  padded batch decodes the same."""
  decoder = random_decoder(seed=4)
  src = sources(seed=4, lengths=(6, 0, 3, 9, 1))
  memory, mask = testing.pad_batch(src, 12, left=True, fill=np.nan)
  ids, lengths, scores = (x.numpy() for x in decoder.beam_decode(
      memory, mask, max_len=5, beam_width=3))
  greedy_ids, greedy_lengths = decoder.greedy_decode(memory, mask, 5)
  # Greedy (its own loop) is the general beam search one prefix wide.
  width_one = decoder._beam_search(memory, mask, 5, 1)  # pylint: disable=protected-access
  greedy = decoder.beam_decode(memory, mask, max_len=5, beam_width=1)
  np.testing.assert_array_equal(width_one[0], greedy_ids)
  np.testing.assert_array_equal(width_one[1], greedy_lengths)
  np.testing.assert_allclose(width_one[2], greedy[2], rtol=1e-6)
  for row, s in enumerate(src):
    alone, alone_mask = testing.pad_batch([s], len(s))
    alone_ids, alone_lengths, alone_scores = decoder.beam_decode(
        alone, alone_mask, max_len=5, beam_width=3)
    np.testing.assert_array_equal(alone_ids.numpy()[0], ids[row])
    np.testing.assert_allclose(alone_scores.numpy()[0], scores[row],
                               rtol=1e-5)
    n = lengths[row]
    assert np.all(ids[row, :n] > 2) and np.all(ids[row, n:] == 0)
    found = sequence_log_probability(decoder, ids[row, :n], alone,
                                     alone_mask, 5)
    np.testing.assert_allclose(scores[row], found, rtol=1e-4, atol=1e-4)
    greedy = sequence_log_probability(
        decoder, greedy_ids.numpy()[row, :greedy_lengths.numpy()[row]],
        alone, alone_mask, 5)
    assert scores[row] >= greedy - 1e-4


def log_probabilities(decoder, outputs, memory, mask, max_len):
  """The teacher-forced log probability of each output (a tuple of ids,
  then the end id if shorter than ``max_len``) of one source, in one
  batch."""
  inputs, _ = testing.pad_batch(
      [np.array((1,) + o, np.int32) for o in outputs], max_len + 1)
  count = len(outputs)
  logits = decoder(inputs, np.repeat(memory, count, 0),
                   np.repeat(mask, count, 0)).numpy()
  logits[..., [0, 1]] = -1e9
  top = logits.max(-1, keepdims=True)
  log_probs = logits - top - np.log(np.exp(logits - top).sum(-1,
                                                             keepdims=True))
  scores = []
  for row, o in enumerate(outputs):
    wanted = list(o) + ([2] if len(o) < max_len else [])
    scores.append(sum(log_probs[row, i, k] for i, k in enumerate(wanted)))
  return scores


@pytest.mark.parametrize("weights", ["random", "initial"])
def test_a_beam_as_wide_as_every_output_finds_the_likeliest(weights):
  """With room for every output of up to 3 tokens (259 of them), beam
  search returns the likeliest by exhaustive teacher-forced scoring: with
  random weights, and with Keras's initial ones and an end id made less
  likely (outputs of every length then compete)."""
  import itertools  # pylint: disable=import-outside-toplevel
  src = sources(seed=6, lengths=(5, 2, 0, 7))
  memory, mask = testing.pad_batch(src, 9, fill=np.nan)
  if weights == "random":
    decoder = random_decoder(seed=6)
  else:
    decoder = AttentionGRUDecoder(VOCAB, embedding_dim=4, units=6)
    decoder(np.ones((1, 1), np.int32), memory[:1], mask[:1])  # builds
    bias = decoder.logits.bias
    bias.assign(bias.numpy() - 3.0 * np.eye(VOCAB)[2])
  ids, lengths, scores = (x.numpy() for x in decoder.beam_decode(
      memory, mask, max_len=3, beam_width=259))
  outputs = [()] + [tuple(p) for n in (1, 2, 3)
                    for p in itertools.product(range(3, VOCAB), repeat=n)]
  for row, s in enumerate(src):
    alone, alone_mask = testing.pad_batch([s], len(s))
    scored = log_probabilities(decoder, outputs, alone, alone_mask, 3)
    best = int(np.argmax(scored))
    assert tuple(ids[row, :lengths[row]]) == outputs[best]
    np.testing.assert_allclose(scores[row], scored[best], rtol=1e-4,
                               atol=1e-4)


def test_an_empty_batch_decodes_to_nothing():
  decoder = AttentionGRUDecoder(VOCAB, embedding_dim=4, units=6)
  empty = np.zeros((0, 3, DIM), np.float32), np.zeros((0, 3), bool)
  ids, lengths = decoder.greedy_decode(*empty, max_len=4)
  assert ids.shape == (0, 4) and lengths.shape == (0,)
  ids, lengths, scores = decoder.beam_decode(*empty, max_len=4)
  assert ids.shape == (0, 4) and lengths.shape == scores.shape == (0,)


def test_the_decoder_runs_under_mixed_precision():
  decoder = AttentionGRUDecoder(VOCAB, embedding_dim=4, units=6,
                                dtype="mixed_bfloat16")
  memory, mask = testing.pad_batch(sources(), 8, fill=np.nan)
  logits = decoder(testing.pad_batch(targets(), 5)[0], memory, mask)
  ids, lengths, scores = decoder.beam_decode(memory, mask, max_len=3)
  assert logits.dtype == tf.float32 and np.all(np.isfinite(logits.numpy()))
  assert np.all(np.isfinite(scores.numpy())) and ids.shape == (4, 3)


def test_the_decoder_round_trips_its_config():
  decoder = AttentionGRUDecoder(VOCAB, embedding_dim=4, units=6, end_id=2)
  again = AttentionGRUDecoder.from_config(decoder.get_config())
  assert (again.vocab_size, again.units, again.end_id) == (VOCAB, 6, 2)
  with pytest.raises(ValueError, match="vocab_size must be an int above"):
    AttentionGRUDecoder(2)


def test_the_fused_training_path_equals_the_step_by_step_one():
  """Teacher forcing through the fused GRU over every target step gives
  the logits and gradients of Keras's RNN loop over the same weights, for
  targets of every length (padding never counts)."""
  fused = random_decoder(3)
  loop = AttentionGRUDecoder(VOCAB, embedding_dim=4, units=6,
                             recurrence="keras")
  loop(np.ones((1, 1), np.int32), np.zeros((1, 1, DIM), np.float32),
       np.ones((1, 1), bool))
  loop.set_weights(fused.get_weights())
  memory, mask = testing.pad_batch(sources(), 9, left=True, fill=np.nan)
  targets_in, real = testing.pad_batch(targets(), 6)
  results = []
  for decoder in (fused, loop):
    with tf.GradientTape() as tape:
      logits = decoder(tf.constant(targets_in), tf.constant(memory),
                       tf.constant(mask))
      weights = tf.sin(tf.reshape(tf.range(tf.size(logits), dtype=tf.float32),
                                  tf.shape(logits)))
      loss = tf.reduce_sum(tf.where(real[:, :, None], logits * weights, 0.0))
    results.append([tf.where(real[:, :, None], logits, 0.0)] +
                   tape.gradient(loss, decoder.trainable_variables))
  for name, a, b in zip(["logits"] + [v.path for v in
                                      fused.trainable_variables], *results):
    np.testing.assert_allclose(tf.convert_to_tensor(a),
                               tf.convert_to_tensor(b), atol=1e-5,
                               err_msg=name)


class _Uncached(AttentionGRUDecoder):
  """Projects the memory at every step and combines an output with its
  context in one layer call, as decoding did before its keys and the
  combine layer's context half were projected once per source."""

  def _next_logits(self, outputs, source):
    context, _ = self.attention(outputs, source.memory, source.mask)
    return self.logits(self.combine(tf.concat(
        [outputs, tf.cast(context, outputs.dtype)], -1)))


@pytest.mark.parametrize("width", [1, 3])
def test_keys_computed_once_decode_what_keys_every_step_decode(width):
  decoder = random_decoder(4)
  uncached = _Uncached(VOCAB, embedding_dim=4, units=6)
  uncached(np.ones((1, 1), np.int32), np.zeros((1, 1, DIM), np.float32),
           np.ones((1, 1), bool))
  uncached.set_weights(decoder.get_weights())
  memory, mask = testing.pad_batch(sources(), 9, fill=np.nan)
  got = decoder.beam_decode(memory, mask, 7, beam_width=width)
  want = uncached.beam_decode(memory, mask, 7, beam_width=width)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, atol=1e-5)
  # Teacher forcing too: the combine layer's context half projected once
  # gives the logits of combine([output, context]).
  targets = np.concatenate([np.ones((len(memory), 1), np.int32),
                            got[0].numpy()[:, :-1]], 1)
  np.testing.assert_allclose(decoder(targets, memory, mask),
                             uncached(targets, memory, mask), atol=1e-5)
