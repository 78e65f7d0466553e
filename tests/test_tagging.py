"""Per-token tagging: the loss and metrics count real tokens only, replicas
agree, character features are padding invariant at both levels, and a
research tagger goes through every command."""

import dataclasses
import importlib
import json
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import EXIT_BOUND, run_script
import maskmodels as mm
from maskmodels import data, export, serving, testing, training

TAGS = ["ADJ", "NOUN", "PUNCT", "VERB"]
CHAR_BUCKETS = 64


def test_loss_and_metrics_equal_a_hand_count_over_real_tokens():
  task = mm.TaggingTask(label_names=TAGS)
  rng = np.random.default_rng(0)
  lengths = [5, 0, 2, 7]
  labels = np.full((4, 7), -1, np.int32)
  for row, length in enumerate(lengths):
    labels[row, :length] = rng.integers(0, 4, size=length)
  logits = rng.normal(size=(4, 7, 4)).astype(np.float32)
  logits[0, :5] = 5.0 * np.eye(4)[labels[0, :5]]  # sentence 0 all right
  weights = np.array([1.0, 1.0, 1.0, 0.0], np.float32)  # row 3: filler
  loss_weights = task.loss_weights(tf.constant(labels), tf.constant(weights))
  outputs = mm.ModelOutputs(tf.constant(logits))
  losses = task.compute_loss(tf.constant(labels), outputs, True)
  metrics = task.build_metrics(training=False)
  task.update_metrics(metrics, tf.constant(labels), outputs, losses,
                      loss_weights)
  real = [(r, t) for r in range(3) for t in range(lengths[r])]
  log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  want_loss = np.mean([-log_softmax[r, t, labels[r, t]] for r, t in real])
  right = [logits[r, t].argmax() == labels[r, t] for r, t in real]
  assert float(metrics["loss"].result()) == pytest.approx(want_loss, 1e-5)
  assert float(metrics["token_accuracy"].result()) == pytest.approx(
      np.mean(right))
  assert float(metrics["tokens"].result()) == len(real) == 7
  # Sentences with words and weight: 0 (all right) and 2.
  all_right = [all(logits[r, t].argmax() == labels[r, t]
                   for t in range(lengths[r])) for r in (0, 2)]
  assert float(metrics["sentence_accuracy"].result()) == pytest.approx(
      np.mean(all_right))
  np.testing.assert_array_equal(loss_weights.numpy()[1], 0.0)


def _update(task, metrics, labels, logits, weights):
  labels, logits = tf.constant(labels), mm.ModelOutputs(tf.constant(logits))
  loss_weights = task.loss_weights(labels, tf.constant(weights))
  task.update_metrics(metrics, labels, logits,
                      task.compute_loss(labels, logits, False), loss_weights)


def test_metrics_count_every_token_alike_whatever_the_batches_widths():
  """Keras reduces a [batch, time] metric update per row before weighing
  rows, so batches of different widths (length buckets) would weigh their
  tokens differently; each real token must count once and alike."""
  task = mm.TaggingTask(label_names=TAGS)
  rng = np.random.default_rng(1)
  lengths = [1, 2, 9, 12, 3]
  labels = [rng.integers(0, 4, size=n).astype(np.int32) for n in lengths]
  logits = [rng.normal(size=(n, 4)).astype(np.float32) for n in lengths]

  def batch(rows, width):
    ids = np.full((len(rows), width), -1, np.int32)
    out = np.zeros((len(rows), width, 4), np.float32)
    for i, row in enumerate(rows):
      ids[i, :lengths[row]], out[i, :lengths[row]] = labels[row], logits[row]
    return ids, out, np.ones(len(rows), np.float32)

  results = []
  for layout in ([([0, 1], 2), ([2, 3, 4], 12)],  # two buckets
                 [([0, 1, 2, 3, 4], 12)],  # one batch
                 [([0, 1], 30), ([2, 3, 4], 40)]):  # extra padding
    metrics = task.build_metrics(training=False)
    for rows, width in layout:
      _update(task, metrics, *batch(rows, width))
    results.append({name: float(m.result()) for name, m in metrics.items()})
  all_labels, all_logits = np.concatenate(labels), np.concatenate(logits)
  log_softmax = all_logits - np.log(np.exp(all_logits).sum(-1,
                                                           keepdims=True))
  want = {"loss": -log_softmax[np.arange(27), all_labels].mean(),
          "token_accuracy": (all_logits.argmax(-1) == all_labels).mean(),
          "tokens": 27.0}
  for result in results:
    for name, value in want.items():
      assert result[name] == pytest.approx(value, rel=1e-5), (name, result)


def _tagged_corpus(count=61, seed=0):
  """Sentences whose tags follow their words, 0-24 words each."""
  rng = np.random.default_rng(seed)
  vocabulary = {f"w{i}": TAGS[i % 4] for i in range(40)}
  names = sorted(vocabulary)
  sentences = [[names[j] for j in rng.integers(0, 40, size=int(
      rng.integers(0, 25)))] for _ in range(count)]
  tags = [[vocabulary[w] for w in words] for words in sentences]
  return data.Examples(sentences, tags, "tagged")


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
  examples = _tagged_corpus()
  task = mm.TaggingTask(label_names=TAGS)
  encoded = examples.with_labels(task.encode_labels(examples.labels, ""))
  path = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
  data.write_vocabulary(data.learn_vocabulary(examples.texts, "word", 100,
                                              verbose=0), path)
  return task, encoded, data.build_tokenizer("word", path)


def _tag_losses(strategy, tagged, steps=5):
  task, examples, tokenizer = tagged
  keras.utils.set_random_seed(4)
  with strategy.scope():
    model = mm.SequenceModel.tagger(
        tokenizer.vocab_size, 4, embedding_dim=8, encoder_config=dict(
            conv_filters=[8], kernel_size=[3], gru_units=[6], dropout=0.0),
        word_features=["chars"], word_features_config={"chars": dict(
            char_dim=4, char_filters=4, max_chars=6)}, head_dropout=0.0)
    model.build()
    optimizer = training.make_optimizer("adam", 1e-2)
    optimizer.build(model.trainable_variables)
  featurizer = data.Featurizer(tokenizer, data.tokens.word_features_of(model),
                               inputs="words")
  trainer = training.Trainer(task, model, optimizer, strategy)
  config = data.PipelineConfig(max_len=30, batch_size=6, shuffle=False,
                               labels=task.labels)
  trainer.set_train_data(lambda ctx, start: data.make_dataset(
      examples, featurizer, config, True, ctx, start))
  losses = [trainer.train(1) for _ in range(steps)]
  results = trainer.evaluate(lambda ctx: data.make_dataset(
      examples, featurizer, config, False, ctx))
  trainer.close()
  return losses, results, model


def test_one_and_two_replicas_give_the_same_loss_and_metrics(tagged,
                                                             mirrored):
  """The loss is averaged over the real words of the global batch, so the
  replicas' uneven shares of words do not change it, nor the gradients."""
  one, one_eval, one_model = _tag_losses(tf.distribute.get_strategy(),
                                         tagged)
  two, two_eval, two_model = _tag_losses(mirrored, tagged)
  for name in ("loss", "token_accuracy", "sentence_accuracy", "tokens"):
    np.testing.assert_allclose([s[name] for s in two],
                               [s[name] for s in one], atol=1e-4,
                               err_msg=name)
  for got, want in zip(two_model.get_weights(), one_model.get_weights()):
    np.testing.assert_allclose(got, want, atol=1e-4)
  words = sum(len(w) for w in tagged[1].texts)
  assert one_eval["tokens"] == two_eval["tokens"] == words  # each once
  assert one_eval["examples"] == two_eval["examples"] == 61
  assert two_eval["token_accuracy"] == pytest.approx(
      one_eval["token_accuracy"], abs=1e-6)


class _TextbookCharCNN(mm.WordFeature):
  """Keras's textbook character CNN: TimeDistributed(Embedding(mask_zero))
  -> TimeDistributed(Conv1D) -> TimeDistributed(GlobalMaxPooling1D). The
  inner mask does not survive TimeDistributed, so pad characters count."""

  feature = "chars"

  @dataclasses.dataclass
  class Config(mm.Settings):
    """No settings."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.embed = keras.layers.TimeDistributed(keras.layers.Embedding(
        CHAR_BUCKETS, 6, mask_zero=True))
    self.conv = keras.layers.TimeDistributed(keras.layers.Conv1D(
        6, 3, padding="same", activation="relu"))
    self.pool = keras.layers.TimeDistributed(
        keras.layers.GlobalMaxPooling1D())

  def call(self, features, mask=None, training=None):
    return self.pool(self.conv(self.embed(features["chars"])))


@pytest.fixture(scope="module")
def sentences():
  return testing.random_sentences(7, 9, 8, vocab_size=30,
                                  char_buckets=CHAR_BUCKETS, seed=3)


def test_character_features_are_padding_invariant_at_both_levels(sentences):
  layer = mm.CharacterFeatures(char_buckets=CHAR_BUCKETS, char_dim=6,
                               char_filters=5, max_chars=8)
  testing.assert_nested_padding_invariant(layer, sentences,
                                          char_buckets=CHAR_BUCKETS)
  revived = mm.CharacterFeatures.from_config(layer.get_config())
  assert revived.settings == layer.settings


def test_the_textbook_time_distributed_path_fails_the_checker(sentences):
  failures = testing.check_nested_padding(
      _TextbookCharCNN(), sentences, char_buckets=CHAR_BUCKETS,
      check_gradients=False)
  checks = {f.check for f in failures}
  assert "alone, extra pad characters" in checks
  assert "batched, left padding" in checks


@pytest.mark.parametrize("head,conv_filters", [
    ("tagger", [6]), ("classifier", [6]), ("tagger", [])])
def test_models_with_character_features_are_padding_invariant(
    sentences, head, conv_filters):
  settings = dict(embedding_dim=6, encoder_config=dict(
      conv_filters=conv_filters, kernel_size=[3], gru_units=[4], dropout=0.2,
      pool_size=[1]), word_features=["chars"], word_features_config={
          "chars": dict(char_buckets=CHAR_BUCKETS, char_dim=4,
                        char_filters=5, max_chars=8)})
  model = getattr(mm.SequenceModel, head)(30, 4, **settings)
  model.build()
  assert len(model.pad_rows()) == 2  # pad tokens and pad characters
  testing.assert_nested_padding_invariant(model, sentences,
                                          char_buckets=CHAR_BUCKETS)


def test_the_embedded_default_trains_a_tagger_with_no_data_flag(tmp_path):
  config = training.ExperimentConfig.create(
      task="tagging", vocab_size=3000, embedding_dim=16, conv_filters=[16],
      kernel_size=[3], gru_units=[16], train_steps=30, steps_per_loop=15,
      warmup_steps=2, learning_rate=0.01)
  assert config.data.data_format == "default"
  assert config.model.encoder_config["pool_size"] == [1]  # the task's
  summary = training.train_and_evaluate(config, str(tmp_path / "run"),
                                        tf.distribute.get_strategy())
  assert summary["train_examples"] + summary["validation_examples"] == 3000
  assert summary["test_examples"] == 500
  assert summary["test_tokens"] > 5000
  # It learns from the sample: beyond tagging every word with the commonest
  # tag (NOUN, 17% of the test words).
  assert summary["test_token_accuracy"] > 0.3


RESEARCH_TAGGER = '''
"""research_tagger.py: a word feature of its own, outside maskmodels."""
import dataclasses

import tensorflow as tf

import maskmodels as mm
from maskmodels import masking


@mm.register_word_feature("suffix")
class Suffix(mm.WordFeature):
  """An embedding of each word's last characters, hashed."""

  feature = "suffix"

  @dataclasses.dataclass
  class Config(mm.Settings):
    suffix_buckets: int = mm.setting(997, "suffix: buckets.", lower=2,
                                     resume=True)
    suffix_dim: int = mm.setting(8, "suffix: width.", lower=1, resume=True)

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.embedding = tf.keras.layers.Embedding(
        self.settings.suffix_buckets, self.settings.suffix_dim,
        dtype=self.dtype_policy)

  def featurize(self, words):
    def suffix_ids(flat):
      start = tf.maximum(tf.strings.length(flat, unit="UTF8_CHAR") - 3, 0)
      suffix = tf.strings.substr(flat, start, tf.fill(tf.shape(start), 3),
                                 unit="UTF8_CHAR")
      return 1 + tf.cast(tf.strings.to_hash_bucket_fast(
          suffix, self.settings.suffix_buckets - 1), tf.int32)
    return tf.ragged.map_flat_values(suffix_ids, words)

  def build(self, input_shape=None):
    self.embedding.build((None,))
    self.built = True

  def pad_rows(self):
    return [(self.embedding.embeddings, 0)]

  def call(self, features, mask=None, training=None):
    return masking.apply_mask(self.embedding(features["suffix"]), mask)
'''


def test_a_research_word_feature_trains_and_serves_in_process(tmp_path):
  """The research tagger's word feature, registered from its own module:
  trained, evaluated and exported in this process, its SavedModel tags as
  the model directory does (the commands' fresh processes are the slow
  test below)."""
  (tmp_path / "research_tagger_inline.py").write_text(textwrap.dedent(
      RESEARCH_TAGGER).replace('"suffix"', '"suffix_inline"'))
  sys.path.insert(0, str(tmp_path))
  try:
    importlib.import_module("research_tagger_inline")
  finally:
    sys.path.remove(str(tmp_path))
  config = training.ExperimentConfig.create(
      task="tagging", word_features=["suffix_inline"],
      word_features_config={"suffix_inline": {"suffix_dim": 6}},
      vocab_size=2000, embedding_dim=16, conv_filters=[16], kernel_size=[3],
      gru_units=[8], train_steps=6, steps_per_loop=3, warmup_steps=1)
  model_dir = str(tmp_path / "run")
  summary = training.train_and_evaluate(config, model_dir,
                                        tf.distribute.get_strategy())
  assert summary["test_examples"] == 500 and summary["test_tokens"] > 5000
  saved = json.load(open(f"{model_dir}/config.json"))
  assert saved["model"]["word_features_config"] == {
      "suffix_inline": {"suffix_buckets": 997, "suffix_dim": 6}}
  export_dir = export.export_saved_model(model_dir, str(tmp_path / "export"))
  loaded = export.load_saved_model(export_dir)
  sentences = ["The cat sat .", "", "Hello"]
  served = serving.predict_rows(
      lambda name, arguments: loaded.signatures[name](**arguments),
      mm.INPUT_KINDS.get("words").arguments, sentences)
  run = training.load_trained(model_dir)
  want = run.server().predict(sentences)
  for got, expected, sentence in zip(served, want, sentences):
    assert got["lengths"] == len(sentence.split())
    np.testing.assert_array_equal(got["tag_ids"][:got["lengths"]],
                                  expected["tag_ids"][:got["lengths"]])


@pytest.mark.slow
def test_a_research_tagger_trains_evaluates_exports_and_serves(tmp_path):
  (tmp_path / "research_tagger.py").write_text(textwrap.dedent(
      RESEARCH_TAGGER))
  model_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
  common = ["--import=research_tagger", f"--model_dir={model_dir}"]
  trained = run_script(
      "train.py", *common, "--task=tagging", "--word_features=suffix",
      "--suffix_dim=6", "--vocab_size=2000", "--embedding_dim=16",
      "--conv_filters=16", "--kernel_size=3", "--gru_units=8",
      "--train_steps=6", "--steps_per_loop=3", "--warmup_steps=1",
      cwd=str(tmp_path))
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert "held-out test token accuracy" in trained.stdout
  config = json.load(open(f"{model_dir}/config.json"))
  assert config["model"]["word_features_config"] == {
      "suffix": {"suffix_buckets": 997, "suffix_dim": 6}}
  evaluated = run_script("evaluate.py", *common, cwd=str(tmp_path))
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  metrics = json.loads(evaluated.stdout.splitlines()[-1])
  assert metrics["examples"] == 500 and metrics["tokens"] > 5000
  exported = run_script("export.py", *common, f"--export_dir={export_dir}",
                        cwd=str(tmp_path))
  assert exported.returncode == 0, exported.stderr[-3000:]
  sentences = ["The cat sat .", "", "Hello"]
  predicted = run_script("predict.py", "--import=research_tagger",
                         f"--model_dir={export_dir}", *sentences,
                         cwd=str(tmp_path))
  assert predicted.returncode == 0, predicted.stderr[-3000:]
  lines = predicted.stdout.splitlines()
  for result in (trained, evaluated, exported, predicted):
    assert result.exit_seconds < EXIT_BOUND
  words = [pair.rsplit("/", 1) for pair in lines[0].split()]
  assert [w for w, _ in words] == ["The", "cat", "sat", "."]
  assert lines[1] == "" and lines[2].startswith("Hello/")
  # The SavedModel tags as the model directory does.
  sys.path.insert(0, str(tmp_path))
  try:
    importlib.import_module("research_tagger")  # registers "suffix"
    run = training.load_trained(model_dir)
  finally:
    sys.path.remove(str(tmp_path))
  assert lines == [run.task.describe(s, row) for s, row in zip(
      sentences, run.server().predict(sentences))]
