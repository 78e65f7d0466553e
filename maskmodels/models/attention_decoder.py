"""A GRU decoder with attention over a masked encoder's steps.

The attention is multiplicative (Luong et al. 2015, "general"): a decoder
output ``q`` scores each encoder step ``m`` as ``q · W m``, and its weights
are a softmax over the *real* encoder steps only: exactly 0 at pad steps
(including the steps a strided encoder pads), and a source with no real
step reads zeros. The keys ``W m`` are computed once per source
(:class:`DecoderSource`), not at every decoding step. Global attention
without input feeding: the GRU reads the previous target tokens only, so
training with teacher forcing runs the GRU over every target step at once
(the fused kernel of ``maskmodels.layers.gru_kernel``, from the decoder's
first state), then attends and writes logits for all steps in batched
products; decoding steps the same cell.

Ids: 0 is the target pad; ``start_id`` begins every target the decoder
reads and ``end_id`` ends every target it writes (the caller's target
vocabulary reserves the three).
"""

import collections

import keras
import tensorflow as tf

from maskmodels import masking
from maskmodels.layers.base import ExplicitMask
from maskmodels.layers.gru_kernel import gru_sequences
from maskmodels.registry import DECODERS

RECURRENCES = ("fused", "keras")


class DecoderSource(collections.namedtuple(
    "DecoderSource", ["memory", "mask", "keys", "values", "combined"])):
  """An encoder's steps as a decoder reads them, computed once per source:
  ``memory`` float ``[batch, time, dim]``, ``mask`` bool ``[batch, time]``,
  the attention's projected ``keys`` ``[batch, time, units]``, ``values``
  (the memory, pad steps zeroed) and ``combined``: the values through the
  context half of the layer that combines a GRU output with its context
  ``[batch, time, units]`` (a context's share of it is then its attention
  weights times these)."""

  __slots__ = ()

  def repeated(self, times):
    """Each row ``times`` times (a beam search's rows side by side)."""
    return DecoderSource(*[tf.repeat(t, times, axis=0) for t in self])


@keras.saving.register_keras_serializable(package="maskmodels")
class MaskedAttention(ExplicitMask, keras.layers.Layer):
  """Multiplicative attention over a masked memory.

  Args:
    units: the queries' width (the memory is projected to it).

  Call args:
    query: float ``[batch, queries, units]``.
    memory: float ``[batch, time, memory_dim]``; pad steps may hold
      anything (NaN included).
    memory_mask: bool ``[batch, time]``, True = real step.

  Returns:
    ``(context, weights)``: float ``[batch, queries, memory_dim]`` and
    ``[batch, queries, time]``, 0 at every pad step.
  """

  def __init__(self, units, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    # Its masks come as arguments; a query's Keras mask (the decoder's GRU
    # attaches one) is not needed: its pad steps' outputs are not read.
    self.supports_masking = True
    self.key = keras.layers.Dense(units, use_bias=False,
                                  dtype=self.dtype_policy, name="key")

  def call(self, query, memory, memory_mask):
    return self.attend(query, *self.keys(memory, memory_mask))

  def keys(self, memory, memory_mask):
    """``(keys, values, mask)`` of a memory, computed once per source (a
    decoder's loop reads them at every step): the projected keys ``[batch,
    time, units]``, the memory with pad steps zeroed, its bool mask."""
    memory_mask = tf.cast(memory_mask, tf.bool)
    memory = masking.apply_mask(tf.cast(memory, self.compute_dtype),
                                memory_mask)
    return self.key(memory), memory, memory_mask

  def attend(self, query, keys, values, memory_mask):
    """``(context, weights)`` of ``query`` over :meth:`keys`' output."""
    query = tf.cast(query, self.compute_dtype)
    scores = tf.matmul(query, keys, transpose_b=True)
    real = memory_mask[:, tf.newaxis, :]
    lowest = tf.constant(scores.dtype.min, scores.dtype)
    weights = tf.nn.softmax(tf.where(real, scores, lowest), axis=-1)
    weights = tf.where(real, weights, tf.zeros((), weights.dtype))
    return tf.matmul(weights, values), weights

  def get_config(self):
    return dict(super().get_config(), units=self.units)


@keras.saving.register_keras_serializable(package="maskmodels")
class AttentionGRUDecoder(keras.layers.Layer):
  """A GRU decoder with :class:`MaskedAttention` over an encoder's steps.

  Its state starts from the masked mean of the encoder's real steps; each
  step's output and its attention context give the next token's logits.

  Args:
    vocab_size: target ids (0 pad, ``start_id``, ``end_id`` included).
    embedding_dim: width of a target token's embedding.
    units: GRU units (and attention width).
    start_id, end_id: the reserved ids that begin and end a target.
    recurrence: how teacher forcing runs the GRU over the targets:
      ``"fused"`` (one fused recurrence over every step) or ``"keras"``
      (Keras's step-by-step RNN loop); the same weights and outputs.

  Call args (teacher forcing):
    targets_in: int ``[batch, time]``: ``start_id`` then the target, 0 past
      it (right-padded).
    memory: float ``[batch, source_time, memory_dim]``, the encoder's steps.
    memory_mask: bool ``[batch, source_time]``, True = real step.

  Returns:
    float32 logits ``[batch, time, vocab_size]`` of each next token; the
    logits at pad steps of ``targets_in`` are not meaningful.
  """

  def __init__(self, vocab_size, embedding_dim=64, units=128, start_id=1,
               end_id=2, recurrence="fused", **kwargs):
    super().__init__(**kwargs)
    if not isinstance(vocab_size, int) or vocab_size <= max(start_id,
                                                            end_id):
      raise ValueError(f"vocab_size must be an int above start_id and "
                       f"end_id, got {vocab_size!r}.")
    if recurrence not in RECURRENCES:
      raise ValueError(f"recurrence must be one of {RECURRENCES}, got "
                       f"{recurrence!r}.")
    self.recurrence_kernel = recurrence
    self.vocab_size, self.embedding_dim, self.units = (vocab_size,
                                                       embedding_dim, units)
    self.start_id, self.end_id = start_id, end_id
    policy = self.dtype_policy
    self.embedding = keras.layers.Embedding(vocab_size, embedding_dim,
                                            dtype=policy, name="embedding")
    self.initial_state = keras.layers.Dense(units, activation="tanh",
                                            dtype=policy, name="initial")
    self.cell = keras.layers.GRUCell(units, dtype=policy, name="cell")
    self.recurrence = keras.layers.RNN(self.cell, return_sequences=True,
                                       dtype=policy, name="recurrence")
    self.attention = MaskedAttention(units, dtype=policy, name="attention")
    self.combine = keras.layers.Dense(units, activation="tanh", dtype=policy,
                                      name="combine")
    self.logits = keras.layers.Dense(vocab_size, dtype="float32",
                                     name="logits")

  def build(self, targets_shape=None, *args, **kwargs):
    """Builds what reads the targets (the embedding and the GRU cell); the
    layers that read the memory build on the first call, when its width is
    known."""
    del targets_shape, args, kwargs
    self.embedding.build((None, None))
    self.recurrence.build((None, None, self.embedding_dim))
    self.built = True

  def start_state(self, memory, memory_mask):
    """The GRU's first state ``[batch, units]`` from the masked mean of
    the real encoder steps."""
    return self.initial_state(masking.masked_mean(
        tf.convert_to_tensor(memory), tf.cast(memory_mask, tf.bool)))

  def source(self, memory, memory_mask):
    """The :class:`DecoderSource` of an encoder's steps: the attention's
    keys and the combine layer's context half projected once."""
    memory = tf.convert_to_tensor(memory)
    keys, values, mask = self.attention.keys(memory, memory_mask)
    if not self.combine.built:
      self.combine.build((None, self.units + memory.shape[-1]))
    context_kernel = tf.cast(self.combine.kernel[self.units:], values.dtype)
    combined = tf.einsum("btd,du->btu", values, context_kernel)
    return DecoderSource(memory, mask, keys, values, combined)

  def _next_logits(self, outputs, source):
    """Logits ``[batch, steps, vocab]`` of the next tokens from the GRU's
    ``outputs`` ``[batch, steps, units]`` and the :class:`DecoderSource`:
    ``combine([outputs, context])`` computed as ``outputs`` times the
    kernel's output half plus the attention weights times
    ``source.combined`` (the context half, projected once)."""
    _, weights = self.attention.attend(outputs, source.keys, source.values,
                                       source.mask)
    dtype = self.combine.compute_dtype
    output_kernel = tf.cast(self.combine.kernel[:self.units], dtype)
    combined = self.combine.activation(
        tf.einsum("bsu,uv->bsv", tf.cast(outputs, dtype), output_kernel) +
        tf.matmul(tf.cast(weights, dtype), tf.cast(source.combined, dtype)) +
        tf.cast(self.combine.bias, dtype))
    return self.logits(combined)

  def call(self, targets_in, memory, memory_mask, training=None):
    targets_in = tf.cast(targets_in, tf.int32)
    state = self.start_state(memory, memory_mask)
    embedded, real = self.embedding(targets_in), tf.not_equal(targets_in, 0)
    if self.recurrence_kernel == "fused":
      outputs, _ = gru_sequences(embedded, real, [self.cell], [state])
    else:
      outputs = self.recurrence(embedded, mask=real, initial_state=[state],
                                training=training)
    return self._next_logits(outputs, self.source(memory, memory_mask))

  def greedy_decode(self, memory, memory_mask, max_len):
    """The likeliest next token at each step, in the graph: a beam search
    one prefix wide.

    Args:
      memory, memory_mask: as in ``call``.
      max_len: int, the most tokens written per row (``end_id`` excluded).

    Returns:
      ``(ids, lengths)``: int32 ``[batch, max_len]`` (0 past each length;
      ``end_id`` is not included) and int32 ``[batch]``.
    """
    ids, lengths, _ = self.beam_decode(memory, memory_mask, max_len,
                                       beam_width=1)
    return ids, lengths

  def _greedy_search(self, memory, memory_mask, max_len):
    """:meth:`beam_decode` at width 1 without a beam's bookkeeping (no
    top-k over beams, no gathers of states and prefixes): the likeliest
    token at each step, the same outputs and scores."""
    memory = tf.convert_to_tensor(memory)
    memory_mask = tf.cast(memory_mask, tf.bool)
    batch = tf.shape(memory)[0]
    source = self.source(memory, memory_mask)
    state = self.start_state(memory, memory_mask)

    def step(t, previous, state, score, done, written):
      log_probs, state = self._step(previous, state, source)
      log_probs = tf.cast(log_probs, tf.float32)
      token = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
      # A finished row continues with the pad id at no cost.
      score += tf.where(done, 0.0, tf.reduce_max(log_probs, axis=-1))
      ended = tf.logical_or(done, tf.equal(token, self.end_id))
      written += tf.where(ended, 0, token)[:, None] * tf.one_hot(
          t, max_len, dtype=tf.int32)
      return t + 1, tf.where(done, 0, token), state, score, ended, written

    _, _, _, score, _, written = tf.while_loop(
        lambda t, previous, state, score, done, written: tf.logical_and(
            t < max_len, tf.logical_not(tf.reduce_all(done))),
        step, [tf.constant(0),
               tf.fill([batch], tf.constant(self.start_id, tf.int32)),
               state, tf.zeros([batch]), tf.zeros([batch], tf.bool),
               tf.zeros([batch, max_len], tf.int32)])
    return (written, tf.reduce_sum(tf.cast(written > 0, tf.int32), axis=1),
            score)

  def _step(self, previous, state, source):
    """One decoding step: ``(log probabilities [rows, vocab], state)``;
    the pad and start ids get -1e9 (never written)."""
    output, states = self.cell(self.embedding(previous), [state])
    state = states[0] if isinstance(states, (list, tuple)) else states
    logits = self._next_logits(output[:, tf.newaxis], source)[:, 0]
    never = tf.one_hot(0, self.vocab_size) + tf.one_hot(self.start_id,
                                                        self.vocab_size)
    logits = tf.where(never > 0, tf.constant(-1e9, logits.dtype), logits)
    return tf.nn.log_softmax(logits), state

  def beam_decode(self, memory, memory_mask, max_len, beam_width=4):
    """Beam search in the graph: the ``beam_width`` likeliest prefixes by
    summed log probability (no length penalty), a prefix ending at
    ``end_id`` kept as it is; the likeliest finished one is returned.

    Args:
      memory, memory_mask: as in ``call``.
      max_len: int, the most tokens written per row (``end_id`` excluded).
      beam_width: prefixes kept per row.

    Returns:
      ``(ids, lengths, log_probability)``: int32 ``[batch, max_len]`` (0
      past each length; ``end_id`` not included), int32 ``[batch]``, and
      float32 ``[batch]``: the output's log probability, its end included
      when it ended before ``max_len``.
    """
    if beam_width == 1:
      return self._greedy_search(memory, memory_mask, max_len)
    return self._beam_search(memory, memory_mask, max_len, beam_width)

  def _beam_search(self, memory, memory_mask, max_len, beam_width):
    """:meth:`beam_decode` at any width (``beam_width`` prefixes a row)."""
    memory = tf.convert_to_tensor(memory)
    memory_mask = tf.cast(memory_mask, tf.bool)
    batch, k, vocab = tf.shape(memory)[0], beam_width, self.vocab_size
    # Every row's beams side by side: [batch * k, ...]; the keys are
    # projected once, before the loop.
    source = self.source(memory, memory_mask)
    source_k = source.repeated(k) if k > 1 else source
    state = tf.repeat(self.start_state(memory, memory_mask), k, axis=0)
    previous = tf.fill([batch * k], tf.constant(self.start_id, tf.int32))
    # One live beam at first, so the k beams do not repeat each other.
    scores = tf.tile(tf.concat([[0.0], tf.fill([k - 1], -1e9)], 0)[None],
                     [batch, 1])
    done = tf.zeros([batch, k], tf.bool)
    written = tf.zeros([batch, k, max_len], tf.int32)
    # A finished beam continues with the pad id at no cost.
    finished_row = tf.where(tf.range(vocab) == 0, 0.0, -1e9)

    def step(t, previous, state, scores, done, written):
      log_probs, state = self._step(previous, state, source_k)
      log_probs = tf.where(tf.reshape(done, [-1, 1]), finished_row,
                           tf.cast(log_probs, tf.float32))
      candidates = tf.reshape(scores[:, :, None] +
                              tf.reshape(log_probs, [batch, k, vocab]),
                              [batch, k * vocab])
      scores, index = tf.math.top_k(candidates, k)
      beam, token = index // vocab, index % vocab
      done = tf.gather(done, beam, batch_dims=1)
      written = tf.gather(written, beam, batch_dims=1)
      ended = tf.equal(token, self.end_id)
      shown = tf.where(tf.logical_or(done, ended), 0, token)
      written += shown[:, :, None] * tf.one_hot(t, max_len, dtype=tf.int32)
      done = tf.logical_or(done, ended)
      rows = tf.reshape(tf.range(batch)[:, None] * k + beam, [-1])
      return (t + 1, tf.reshape(token, [-1]), tf.gather(state, rows),
              scores, done, written)

    _, _, _, scores, _, written = tf.while_loop(
        lambda t, previous, state, scores, done, written: tf.logical_and(
            t < max_len, tf.logical_not(tf.reduce_all(done))),
        step, [tf.constant(0), previous, state, scores, done, written])
    # top_k keeps beams sorted: the first is the likeliest.
    ids = written[:, 0]
    return ids, tf.reduce_sum(tf.cast(ids > 0, tf.int32), axis=1), scores[:, 0]

  def get_config(self):
    return dict(super().get_config(), vocab_size=self.vocab_size,
                embedding_dim=self.embedding_dim, units=self.units,
                start_id=self.start_id, end_id=self.end_id,
                recurrence=self.recurrence_kernel)


DECODERS.add("attention_gru", AttentionGRUDecoder)
