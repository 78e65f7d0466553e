"""Outputs of their own length: sequence labels, the ctc and seq2seq tasks."""

import dataclasses
import gzip

import keras
import numpy as np
import pytest
import tensorflow as tf

import maskmodels as mm
from maskmodels import data, training
from maskmodels.data import readers
from maskmodels.errors import InputError
from maskmodels.specs import SequenceLabels
from maskmodels.tasks.targets import split_targets
from maskmodels.testing import pad_batch
from maskmodels.training.builders import model_in_scope

PHONES = ["A", "B", "C", "D"]


def _task(name, **settings):
  task_class = mm.TASKS.get(name)
  return mm.tasks.build_task(name, settings,
                             list(task_class.reserved) + PHONES)


def _model(task, strides=1, upsample=2, frames=False, seed=0, **extra):
  """A small model of ``task`` over 20 token ids (or 3 frame channels)."""
  keras.utils.set_random_seed(seed)
  config = training.ExperimentConfig.create(
      task=task.__class__.__name__ == "CTCTask" and "ctc" or "seq2seq",
      conv_filters=[8], kernel_size=3, strides=[strides],
      pool_size=[1], gru_units=[8], dropout=0.0, head_dropout=0.0,
      **({"upsample": upsample} if task.default_head == "ctc" else {}),
      **({"backbone": "frames"} if frames else {"embedding_dim": 8}),
      **extra)
  inputs = {"channels": 3} if frames else {"vocab_size": 20}
  return model_in_scope(config, task, inputs)


def _targets(rows, refs=1, width=None):
  """Encoded targets ``[batch, refs, width]`` (0-padded)."""
  width = width or max(len(r) for r in rows)
  out = np.zeros([len(rows), refs, width], np.int32)
  for i, row in enumerate(rows):
    out[i, 0, :len(row)] = row
  return tf.constant(out)


# ---- reading and labels -------------------------------------------------------


def test_cmudict_reader_groups_alternates_and_names_bad_lines(tmp_path):
  path = tmp_path / "dict.txt"
  path.write_text(";;; a comment\nREAD  R IY D\nLEAD  L IY D\n"
                  "READ(2)  R EH D\nLEAD  L EH D\n")
  examples = readers.read_examples("cmudict", str(path))
  assert examples.texts == ["READ", "LEAD"]
  assert examples.labels == [["R IY D", "R EH D"], ["L IY D", "L EH D"]]
  gz = tmp_path / "sample_test.txt.gz"
  gz.write_bytes(gzip.compress(b"A  AH\n"))
  assert readers.read_examples("cmudict", str(tmp_path), "test").texts == ["A"]
  path.write_text("READ  R IY D\nLEADLEAD\n")
  with pytest.raises(InputError, match=r"dict.txt:2: no phones after the "
                     r"word \('LEADLEAD'\); expected a word, then its "
                     r"phones"):
    readers.read_examples("cmudict", str(path))


def test_cmudict_reader_takes_a_tab_and_refuses_a_line_with_no_word(
    tmp_path):
  path = tmp_path / "dict.txt"
  path.write_text("HELLO\tHH AH L OW\nWORLD \t W ER L D\n")
  examples = readers.read_examples("cmudict", str(path))
  assert examples.texts == ["HELLO", "WORLD"]
  assert examples.labels == [["HH AH L OW"], ["W ER L D"]]
  path.write_text("AH  AA\n  AH B\n")
  with pytest.raises(InputError, match=r"dict.txt:2: a line with no word"):
    readers.read_examples("cmudict", str(path))
  # An error in a label names the example's line, not its index.
  path.write_text(";;; header\nA  A\n\nB  E D\n")
  examples = readers.read_examples("cmudict", str(path))
  task = _task("seq2seq")
  with pytest.raises(InputError, match=r"Unknown target token 'E' in "
                     r".*dict.txt, line 4"):
    task.encode_labels(examples.labels, examples.labelled_source())


def test_targets_encode_every_reference_and_refuse_unknown_tokens():
  task = _task("seq2seq")
  encoded = task.encode_labels([["A B", "C"], "D D D"], "file")
  np.testing.assert_array_equal(encoded[0], [[3, 4], [5, 0]])
  np.testing.assert_array_equal(encoded[1], [[6, 6, 6]])
  with pytest.raises(InputError, match=r"Unknown target token 'E' in file "
                     r"\(example 1\)"):
    task.encode_labels(["A E"], "file")
  with pytest.raises(InputError, match="reserved"):
    task.fit_labels(["A <s>"], "file")
  # Training reads one example per reference.
  train = task.training_examples(data.Examples(["x", "y"], encoded))
  assert train.texts == ["x", "x", "y"]
  references, lengths, count = split_targets(tf.constant([[[3, 4], [5, 0]],
                                                          [[6, 0], [0, 0]]]))
  np.testing.assert_array_equal(lengths, [[2, 1], [1, 0]])
  np.testing.assert_array_equal(count, [2, 1])
  del references


def test_sequence_labels_are_padded_per_batch_and_never_cut():
  rng = np.random.default_rng(0)
  lengths = [1, 9, 3, 30, 2, 5]  # 30: longer than any max_len below
  labels = [rng.integers(1, 7, size=[1 + (i % 2), n]).astype(np.int32)
            for i, n in enumerate(lengths)]
  texts = ["a b c"] * len(labels)
  featurizer = data.Featurizer(data.build_tokenizer(
      "word", ["[PAD]", "a", "b", "c"]))
  config = data.PipelineConfig(max_len=4, batch_size=2, shuffle=False,
                               labels=SequenceLabels("int32"))
  seen = []
  for _, batch_labels, _ in data.make_dataset(data.Examples(texts, labels),
                                              featurizer, config, False):
    widths = [label.shape for label in labels[len(seen):len(seen) + 2]]
    assert batch_labels.shape[1:] == (max(w[0] for w in widths),
                                      max(w[1] for w in widths))
    for row in batch_labels.numpy():
      seen.append(row)
  for got, want in zip(seen, labels):
    np.testing.assert_array_equal(got[:want.shape[0], :want.shape[1]], want)
    assert not got[want.shape[0]:].any() and not got[:, want.shape[1]:].any()
  # Static shapes (TPU): every batch's labels padded to the most of the
  # splits, so one program serves every step.
  examples = data.Examples(texts, labels)
  shape = SequenceLabels("int32").static_shape([examples, examples])
  assert shape == (2, 30)
  static = dataclasses.replace(config, static_shapes=True, label_shape=shape)
  for training_pass in (True, False):
    batches = data.make_dataset(examples, featurizer, static, training_pass)
    for features, batch_labels, _ in batches.take(4):
      assert batch_labels.shape == (2, 2, 30)
      assert features["ids"].shape == (2, 4)


# ---- CTC ----------------------------------------------------------------------


def _ctc_losses(task, model, inputs, targets, frames):
  """Per-example CTC loss and gradients of the summed loss."""
  with tf.GradientTape() as tape:
    outputs = model(inputs, training=False)
    losses = task.compute_loss(targets, outputs, False)
    total = tf.reduce_sum(losses)
  return losses, tape.gradient(total, model.trainable_variables), outputs


@pytest.mark.parametrize("frames", [False, True], ids=["tokens", "frames"])
def test_ctc_loss_is_padding_invariant_with_a_strided_encoder(frames):
  """Loss and gradients of a batch equal the sum of each example alone and
  unpadded, whatever padding surrounds it (left or right, NaN frames),
  and equal tf.nn.ctc_loss on the example's own logits."""
  task = _task("ctc")
  model = _model(task, strides=2, frames=frames)
  rng = np.random.default_rng(1)
  lengths, rows = [9, 4, 13], [[1, 2, 2], [3], [4, 1, 2, 3, 1]]
  if frames:
    sequences = [rng.normal(size=[n, 3]).astype(np.float32) for n in lengths]
  else:
    sequences = [rng.integers(1, 20, size=n).astype(np.int32)
                 for n in lengths]

  def inputs(batch, mask):
    if frames:
      return {"frames": tf.constant(batch), "mask": tf.constant(mask)}
    return tf.constant(batch)

  alone = []
  for seq, row in zip(sequences, rows):
    batch, mask = pad_batch([seq], len(seq))
    alone.append(_ctc_losses(task, model, inputs(batch, mask),
                             _targets([row]), frames))
  for left in (False, True):
    fill = "nan" if frames else 0
    batch, mask = pad_batch(sequences, 21, left=left, fill=fill)
    losses, grads, _ = _ctc_losses(task, model, inputs(batch, mask),
                                   _targets(rows, width=8), frames)
    np.testing.assert_allclose(losses, [a[0][0] for a in alone], rtol=1e-5)
    for got, *want in zip(grads, *[a[1] for a in alone]):
      np.testing.assert_allclose(tf.convert_to_tensor(got),
                                 sum(tf.convert_to_tensor(w) for w in want),
                                 atol=1e-5)
  for (loss, _, outputs), row in zip(alone, rows):
    logits = outputs.outputs[:, :int(tf.reduce_sum(tf.cast(
        outputs.mask, tf.int32)))]
    want = tf.nn.ctc_loss(tf.constant([row]), logits, [len(row)],
                          [logits.shape[1]], logits_time_major=False,
                          blank_index=0)
    np.testing.assert_allclose(loss, want, rtol=1e-5)


def test_ctc_gradient_is_zero_at_pad_steps():
  task = _task("ctc")
  model = _model(task, strides=2)
  rng = np.random.default_rng(2)
  logits = tf.Variable(rng.normal(size=[2, 10, 5]).astype(np.float32))
  mask = tf.constant(np.arange(10)[None] < np.array([[7], [4]]))
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(task.compute_loss(
        _targets([[1, 2], [3]]), mm.ModelOutputs(logits, mask), False))
  grad = tape.gradient(loss, logits).numpy()
  assert np.all(grad[~mask.numpy()] == 0.0)
  assert np.any(grad[mask.numpy()] != 0.0)
  del model


def test_ctc_counts_a_target_that_cannot_fit_instead_of_a_nan_loss():
  task = _task("ctc")
  model = _model(task, strides=2, upsample=1)
  ids = tf.constant([[5, 6, 7, 8], [5, 6, 0, 0]])  # 2 and 1 logit steps
  labels = _targets([[1, 2], [1, 2, 3]])
  metrics = task.build_metrics(training=False)
  task.validation_step(model, (ids, labels, tf.ones([2])), metrics)
  assert float(metrics["unfit"].result()) == 1.0
  assert np.isfinite(float(metrics["loss"].result()))


def test_a_ctc_target_that_cannot_fit_weighs_nothing(mirrored):
  """Its loss is left out of the mean, the gradient and the loss metric:
  a batch with it is a batch without it, on 1 and 2 replicas."""
  task = _task("ctc")
  with mirrored.scope():  # no batch statistics: the batch's rows differ
    model = _model(task, strides=2, upsample=1, normalization="none")
  trainer = training.Trainer(task, model, keras.optimizers.SGD(0.0),
                             mirrored)
  ids = tf.constant([[5, 6, 7, 8], [5, 6, 0, 0], [7, 8, 9, 0],
                     [9, 5, 0, 0]])  # 2, 1, 2 and 1 logit steps
  labels = _targets([[1, 2], [1, 2, 3], [3], [4]])

  def step(strategy, rows):
    def replica(features, labels, weights):
      loss_weights = task.loss_weights(labels, weights)
      total = tf.distribute.get_replica_context().all_reduce(
          "sum", tf.reduce_sum(loss_weights))
      with tf.GradientTape() as tape:
        objective, _ = task.train_step(model, (features, labels, weights),
                                       loss_weights, total)
      return objective, tape.gradient(objective,
                                      model.trainable_variables)
    batch = (tf.gather(ids, rows), tf.gather(labels, rows),
             tf.ones([len(rows)]))
    if strategy is None:
      return replica(*batch)
    dataset = tf.data.Dataset.from_tensors(batch).with_options(
        tf.data.Options())
    per_replica = strategy.run(
        replica, args=next(iter(strategy.experimental_distribute_dataset(
            dataset))))
    return strategy.reduce("sum", per_replica, axis=None)

  with_unfit, grads_with = step(None, [0, 1, 2, 3])
  without, grads_without = step(None, [0, 2, 3])
  assert float(with_unfit) == pytest.approx(float(without), rel=1e-6)
  for a, b in zip(grads_with, grads_without):
    np.testing.assert_allclose(tf.convert_to_tensor(a),
                               tf.convert_to_tensor(b), atol=1e-6)
  two, _ = step(mirrored, [0, 1, 2, 3])
  assert float(two) == pytest.approx(float(without), rel=1e-5)
  # The loss metric averages the fitting examples only.
  metrics = task.build_metrics(training=False)
  task.validation_step(model, (ids, labels, tf.ones([4])), metrics)
  alone = task.build_metrics(training=False)
  task.validation_step(model, (tf.gather(ids, [0, 2, 3]),
                               tf.gather(labels, [0, 2, 3]), tf.ones([3])),
                       alone)
  assert float(metrics["loss"].result()) == pytest.approx(
      float(alone["loss"].result()), rel=1e-6)
  assert float(metrics["unfit"].result()) == 1.0
  del trainer


# ---- seq2seq ----------------------------------------------------------------


def test_seq2seq_target_padding_never_counts_in_loss_or_metrics():
  task = _task("seq2seq")
  model = _model(task)
  ids = tf.constant([[3, 4, 5, 0], [6, 7, 0, 0]])
  rows = [[1, 2, 3], [4]]
  results = []
  for width, refs in ((3, 1), (9, 3)):
    metrics = task.build_metrics(training=False)
    task.validation_step(model, (ids, _targets(rows, refs, width),
                                 tf.ones([2])), metrics)
    results.append({k: float(m.result()) for k, m in metrics.items()})
    weights = task.loss_weights(_targets(rows, refs, width), tf.ones([2]))
    assert float(tf.reduce_sum(weights)) == 3 + 1 + 2  # targets and ends
  assert results[0] == pytest.approx(results[1], abs=1e-6)


def test_seq2seq_output_alone_equals_output_in_a_padded_batch():
  task = _task("seq2seq", beam_width=3, max_output_len=6)
  model = _model(task)
  rng = np.random.default_rng(3)
  sequences = [rng.integers(1, 20, size=n).astype(np.int32)
               for n in (5, 1, 11, 3)]
  alone = [(task.inference_step(model, tf.constant(s[None])),
            model.decode(tf.constant(s[None])).extras["scores"])
           for s in sequences]
  for left in (False, True):
    batch, _ = pad_batch(sequences, 16, left=left)
    together = task.inference_step(model, tf.constant(batch))
    scores = model.decode(tf.constant(batch)).extras["scores"]
    for i, (one, score) in enumerate(alone):
      assert together["output"][i].numpy() == one["output"][0].numpy()
      assert int(together["lengths"][i]) == int(one["lengths"][0])
      assert float(scores[i]) == pytest.approx(float(score[0]), abs=1e-5)


def test_seq2seq_learns_to_copy_under_one_and_two_replicas(mirrored):
  """Replica-count invariance of the task's step: the same losses and
  weights on 1 and 2 replicas; the loss falls."""
  task = _task("seq2seq")
  rng = np.random.default_rng(4)
  texts, labels = [], []
  for _ in range(48):
    n = int(rng.integers(1, 6))
    letters = rng.integers(0, 4, size=n)
    texts.append(" ".join("abcd"[i] for i in letters))
    labels.append(np.array([[3 + i for i in letters]], np.int32))
  examples = data.Examples(texts, labels)
  featurizer = data.Featurizer(data.build_tokenizer(
      "word", ["[PAD]", "a", "b", "c", "d"]))
  config = data.PipelineConfig(max_len=8, batch_size=8, shuffle=False,
                               labels=task.labels)
  runs = []
  for strategy in (tf.distribute.get_strategy(), mirrored):
    keras.utils.set_random_seed(0)
    with strategy.scope():
      model = _model(task)
      optimizer = training.make_optimizer("adam", 1e-2)
      optimizer.build(model.trainable_variables)
    trainer = training.Trainer(task, model, optimizer, strategy)
    trainer.set_train_data(lambda ctx, start: data.make_dataset(
        examples, featurizer, config, True, ctx, start))
    evaluate = lambda: trainer.evaluate(lambda ctx: data.make_dataset(  # noqa: E731
        examples, featurizer, config, False, ctx))
    untrained = evaluate()["loss"]
    losses = [trainer.train(1)["loss"] for _ in range(6)]
    evaluation = evaluate()
    trainer.close()
    runs.append((losses, evaluation, model.get_weights()))
  (one, eval_one, weights_one), (two, eval_two, weights_two) = runs
  np.testing.assert_allclose(one, two, atol=1e-4)
  for a, b in zip(weights_one, weights_two):
    np.testing.assert_allclose(a, b, atol=1e-4)
  assert eval_one["examples"] == eval_two["examples"] == 48
  for name in ("loss", "token_error_rate", "sequence_error_rate"):
    assert eval_one[name] == pytest.approx(eval_two[name], abs=1e-4)
  assert eval_one["loss"] < untrained


@pytest.mark.parametrize("name", ["ctc", "seq2seq"])
def test_sequence_tasks_refuse_ensemble_members(name, tmp_path):
  """A sequence task trains one network: --members is an error naming the
  members and the task, before any data is read."""
  config = training.ExperimentConfig.create(
      task=name, members=["naive_bayes"], data_path=str(tmp_path / "none"),
      train_steps=1)
  with pytest.raises(InputError, match=rf"--members=naive_bayes: the {name} "
                     r"task trains a single network"):
    training.train_and_evaluate(config, str(tmp_path / "run"),
                                tf.distribute.get_strategy())
  assert not (tmp_path / "run").exists()
