import collections

import numpy as np
import pytest
import tensorflow as tf

import maskmodels as mm
from maskmodels import data

N = 103  # not a multiple of any batch size used here


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  """N distinct texts (one empty, others 1..40 tokens) and a word tokenizer."""
  rng = np.random.default_rng(0)
  texts = [" ".join(f"w{i}x{j}" for j in range(int(rng.integers(1, 41))))
           for i in range(N)]
  texts[0] = ""
  examples = data.Examples(texts, (np.arange(N) % 3).astype(np.int32),
                           "corpus")
  path = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
  data.write_vocabulary(data.learn_vocabulary(texts, "word", 5000), path)
  return examples, data.Featurizer(data.build_tokenizer("word", path))


def _expected(examples, featurizer, max_len):
  ids = featurizer.tokenizer.encode(examples.texts, max_len).to_list()
  return collections.Counter(
      (tuple(row), int(label)) for row, label in zip(ids, examples.labels))


def _seen(batches):
  seen = collections.Counter()
  for features, labels, weights in batches:
    for row, label, weight in zip(features["ids"].numpy(), labels.numpy(),
                                  weights.numpy()):
      if weight:
        assert weight == 1.0
        seen[(tuple(int(t) for t in row if t), int(label))] += 1
      else:
        assert not row.any()  # filler rows are all padding
  return seen


CONFIGS = {
    "no_bucketing": dict(),
    "bucketing": dict(bucket_boundaries=(5, 12, 25)),
    "static_eval": dict(bucket_boundaries=(5, 12, 25), static_shapes=True),
    "static_single_bucket": dict(static_shapes=True),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("training", [False, True])
def test_every_example_exactly_once_per_pass(corpus, name, training):
  examples, featurizer = corpus
  config = data.PipelineConfig(max_len=30, batch_size=8, **CONFIGS[name])
  dataset = data.make_dataset(examples, featurizer, config, training=training)
  lengths = data.token_lengths(examples, featurizer.tokenizer, 30)
  batches = data.batches_per_pass(lengths, config)
  if training:
    dataset = dataset.take(batches)  # one pass of the repeating dataset
  assert _seen(dataset) == _expected(examples, featurizer, 30)
  assert len(list(dataset)) == batches


@pytest.mark.parametrize("batch_tokens", [0, 120])
def test_replicas_and_workers_split_the_same_global_batches(corpus,
                                                            batch_tokens):
  examples, featurizer = corpus
  config = data.PipelineConfig(max_len=30, batch_size=8, seed=2,
                               batch_tokens=batch_tokens,
                               bucket_boundaries=(5, 12, 25))
  lengths = data.token_lengths(examples, featurizer.tokenizer, 30)
  steps = data.batches_per_pass(lengths, config, replicas=4)
  per_replica = []  # 2 workers x 2 local replicas: 4 replicas in sync
  for worker in range(2):
    context = tf.distribute.InputContext(2, worker, 4)
    elements = list(data.make_dataset(examples, featurizer, config, True,
                                      context).take(2 * steps))
    per_replica += [elements[local::2] for local in range(2)]
  seen = collections.Counter()
  for step in range(steps):
    shapes = {tuple(replica[step][0]["ids"].shape)
              for replica in per_replica}
    assert len(shapes) == 1  # every replica reads one global batch's rows
    seen += _seen([replica[step] for replica in per_replica])
  assert seen == _expected(examples, featurizer, 30)  # one pass, each once


def test_token_budgets_size_batches_by_tokens(corpus):
  examples, featurizer = corpus
  config = data.PipelineConfig(max_len=30, batch_size=8, batch_tokens=120,
                               bucket_boundaries=(5, 12, 25))
  assert config.bucket_batch_sizes() == [30, 10, 5, 4]
  assert config.bucket_batch_sizes(replicas=4) == [28, 8, 4, 4]
  dataset = data.make_dataset(examples, featurizer, config, training=False)
  for features, _, _ in dataset:
    ids = features["ids"]
    assert ids.shape[0] * ids.shape[1] <= 120 + ids.shape[0] * 5
  with pytest.raises(ValueError, match="--batch_size=6: expected a multiple "
                     "of the 4 replicas"):
    data.PipelineConfig(batch_size=6).bucket_batch_sizes(replicas=4)


def test_training_order_never_follows_the_file_order(tmp_path):
  """24,000 texts sorted by label (and length): every window of batches
  holds both labels in about the overall proportion."""
  count, batch, window = 24_000, 32, 8
  labels = (np.arange(count) >= count // 2).astype(np.int32)
  texts = [("good " if label else "bad ") + "word " * (i % 7)
           for i, label in enumerate(labels)]
  examples = data.Examples(texts, labels, "sorted")
  path = str(tmp_path / "vocab.txt")
  data.write_vocabulary(["[PAD]", "good", "bad", "word"], path)
  featurizer = data.Featurizer(data.build_tokenizer("word", path))
  config = data.PipelineConfig(max_len=10, batch_size=batch,
                               bucket_boundaries=(3, 5, 7))
  steps = data.batches_per_pass([len(t.split()) for t in texts], config)
  dataset = data.make_dataset(examples, featurizer, config, training=True)
  label_rows = [(labels_, weights) for _, labels_, weights in
                dataset.take(2 * steps).as_numpy_iterator()]
  fractions = []
  for start in range(0, len(label_rows) - window, window):
    chunk = label_rows[start:start + window]
    positive = sum(float((l * w).sum()) for l, w in chunk)
    fractions.append(positive / sum(float(w.sum()) for _, w in chunk))
  # 256 examples a window: a binomial sd of 0.031 around 0.5.
  assert max(abs(f - 0.5) for f in fractions) < 0.15, fractions


def test_bucketing_reduces_padding(corpus):
  examples, featurizer = corpus
  lengths = data.token_lengths(examples, featurizer.tokenizer, 30)
  edges = data.length_boundaries(lengths, 6)
  fractions = []
  for boundaries in (None, edges):
    config = data.PipelineConfig(30, 16, seed=1, bucket_boundaries=boundaries)
    fractions.append(data.padded_step_fraction(
        data.make_dataset(examples, featurizer, config, training=True),
        featurizer, batches=data.batches_per_pass(lengths, config)))
  assert fractions[1] < 0.5 * fractions[0]


def test_static_shapes_are_fixed_per_bucket(corpus):
  examples, featurizer = corpus
  config = data.PipelineConfig(max_len=30, batch_size=8, static_shapes=True,
                               bucket_boundaries=(5, 12, 25, 99))
  for training in (True, False):
    dataset = data.make_dataset(examples, featurizer, config, training)
    shapes = {tuple(f["ids"].shape) for f, _, _ in dataset.take(40)}
    assert shapes == {(8, 4), (8, 11), (8, 24), (8, 30)}


def test_length_boundaries_follow_quantiles():
  edges = data.length_boundaries(np.arange(100), 4)
  assert edges == (25, 50, 75)
  assert data.length_boundaries([3] * 10, 4) == (4,)
  with pytest.raises(ValueError, match="num_buckets must be >= 1"):
    data.length_boundaries([1], 0)


def test_training_data_is_reshuffled_each_pass_and_resumes_in_order(corpus):
  examples, featurizer = corpus
  config = data.PipelineConfig(30, 8)
  steps = data.batches_per_pass(data.token_lengths(
      examples, featurizer.tokenizer, 30), config)
  dataset = data.make_dataset(examples, featurizer, config, training=True)
  batches = [f["ids"].numpy().tolist() for f, _, _ in dataset.take(2 * steps)]
  assert batches[:steps] != batches[steps:]
  resumed = data.make_dataset(examples, featurizer, config, training=True,
                              start_batch=steps + 3)
  assert [f["ids"].numpy().tolist() for f, _, _ in resumed.take(
      steps - 3)] == batches[steps + 3:]


def test_pipeline_config_errors_name_the_value(corpus):
  with pytest.raises(ValueError, match="batch_size must be a positive int, "
                     "got -4"):
    data.PipelineConfig(batch_size=-4)
  with pytest.raises(ValueError, match="max_len must be a positive int, got 0"):
    data.PipelineConfig(max_len=0)
  with pytest.raises(ValueError, match="truncation must be one of"):
    data.PipelineConfig(truncation="middle")
  examples, featurizer = corpus
  with pytest.raises(ValueError, match="No examples in empty"):
    data.make_dataset(data.Examples([], np.zeros(0, np.int32), "empty"),
                      featurizer, data.PipelineConfig(), training=False)


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
  """Sentences of 0..30 words, each word tagged by its first letter, and a
  featurizer with character features."""
  rng = np.random.default_rng(1)
  alphabet = list("abcdefé")
  sentences = [[rng.choice(alphabet) + "x" * int(rng.integers(0, 30))
                for _ in range(int(rng.integers(0, 31)))] for _ in range(57)]
  sentences[0] = []
  tags = [np.array([alphabet.index(w[0]) for w in words], np.int32)
          for words in sentences]
  path = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
  data.write_vocabulary(data.learn_vocabulary(sentences, "word", 500), path)
  chars = mm.CharacterFeatures(max_chars=12)
  featurizer = data.Featurizer(data.build_tokenizer("word", path), [chars],
                               inputs="words")
  return data.Examples(sentences, tags, "tagged"), featurizer


@pytest.mark.parametrize("options", [
    dict(), dict(bucket_boundaries=(5, 12, 25)),
    dict(bucket_boundaries=(5, 12, 25), static_shapes=True),
    dict(truncation="both", max_len=9)])
def test_every_tagged_word_once_with_its_tag_and_characters(tagged, options):
  examples, featurizer = tagged
  settings = dict(max_len=40, batch_size=8, labels=mm.StepLabels(
      "int32", pad=-1))
  settings.update(options)
  config = data.PipelineConfig(**settings)
  dataset = data.make_dataset(examples, featurizer, config, training=False)
  vocab = featurizer.tokenizer.vocab
  seen, want = collections.Counter(), collections.Counter()
  for words, tags in zip(examples.texts, examples.labels):
    kept = list(zip(words, tags))
    if len(kept) > config.max_len:  # head and tail, as the tokens
      half = config.max_len // 2
      kept = kept[:half] + kept[len(kept) - (config.max_len - half):]
    want[tuple(kept)] += 1
  for features, labels, weights in dataset.as_numpy_iterator():
    ids, chars = features["ids"], features["chars"]
    if config.static_shapes:
      assert chars.shape[2] == 14  # the feature's fixed width
    for row in range(len(weights)):
      real = ids[row] != 0
      assert np.all(labels[row][~real] == -1)  # pad tokens: the pad tag
      if not weights[row]:
        assert not real.any() and not chars[row].any()
        continue
      kept = []
      for position in np.flatnonzero(real):
        word = vocab[ids[row, position]]
        codes = chars[row, position][chars[row, position] != 0]
        # Begin mark, the word truncated at max_chars, end mark.
        assert len(codes) == min(len(word), 12) + 2
        assert codes[0] == 1 and codes[-1] == 2
        assert codes[1] == 3 + ord(word[0]) % 509
        kept.append((word, labels[row, position]))
      assert not chars[row][~real].any()  # no characters at pad words
      seen[tuple(kept)] += 1
  assert seen == want
