import collections

import numpy as np
import pytest
import tensorflow as tf

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
                           ["a", "b", "c"], "corpus")
  path = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
  data.write_vocabulary(data.learn_vocabulary(texts, "word", 5000), path)
  return examples, data.build_tokenizer("word", path)


def _expected(examples, tokenizer, max_len):
  ids = tokenizer.encode(examples.texts, max_len).to_list()
  return collections.Counter(
      (tuple(row), int(label)) for row, label in zip(ids, examples.labels))


def _seen(batches):
  seen = collections.Counter()
  for ids, labels, weights in batches:
    for row, label, weight in zip(ids.numpy(), labels.numpy(),
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
def test_every_example_exactly_once(corpus, name, training):
  examples, tokenizer = corpus
  config = data.PipelineConfig(max_len=30, batch_size=8, **CONFIGS[name])
  dataset = data.make_dataset(examples, tokenizer, config, training=training)
  seen = _seen(dataset)
  expected = _expected(examples, tokenizer, 30)
  if training and config.static_shapes:
    # Training in static mode keeps full batches only.
    assert seen <= expected and sum(seen.values()) > N - 8 * 5
  else:
    assert seen == expected


def test_static_shapes_are_fixed_per_bucket(corpus):
  examples, tokenizer = corpus
  config = data.PipelineConfig(max_len=30, batch_size=8, static_shapes=True,
                               bucket_boundaries=(5, 12, 25, 99))
  for training in (True, False):
    dataset = data.make_dataset(examples, tokenizer, config, training)
    shapes = {tuple(ids.shape) for ids, _, _ in dataset}
    assert shapes <= {(8, 4), (8, 11), (8, 24), (8, 30)}
    assert dataset.element_spec[0].shape[0] == 8 or training


def test_bucketing_reduces_padding(corpus):
  examples, tokenizer = corpus
  lengths = data.token_lengths(examples.texts, tokenizer, 30)
  edges = data.length_boundaries(lengths, 6)
  plain = data.make_dataset(examples, tokenizer, data.PipelineConfig(
      30, 16, seed=1), training=True)
  bucketed = data.make_dataset(examples, tokenizer, data.PipelineConfig(
      30, 16, bucket_boundaries=edges, seed=1), training=True)
  assert (data.padded_step_fraction(bucketed) <
          0.5 * data.padded_step_fraction(plain))


def test_length_boundaries_follow_quantiles():
  edges = data.length_boundaries(np.arange(100), 4)
  assert edges == (25, 50, 75)
  assert data.length_boundaries([3] * 10, 4) == (4,)
  with pytest.raises(ValueError, match="num_buckets must be >= 1"):
    data.length_boundaries([1], 0)


def test_training_data_is_reshuffled_each_epoch(corpus):
  examples, tokenizer = corpus
  dataset = data.make_dataset(examples, tokenizer,
                              data.PipelineConfig(30, 8), training=True)
  first = [ids.numpy().tolist() for ids, _, _ in dataset]
  second = [ids.numpy().tolist() for ids, _, _ in dataset]
  assert first != second


@pytest.mark.parametrize("static", [False, True])
def test_input_context_shards_without_overlap_or_loss(corpus, static):
  examples, tokenizer = corpus
  config = data.PipelineConfig(max_len=30, batch_size=8, static_shapes=static,
                               bucket_boundaries=(5, 12, 25))
  build = data.dataset_fn(examples, tokenizer, config, training=False)
  shards = []
  for pipeline in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2,
                                         input_pipeline_id=pipeline,
                                         num_replicas_in_sync=2)
    dataset = build(context)
    for ids, _, _ in dataset:
      assert ids.shape[0] <= 4  # per-replica share of the global batch of 8
    shards.append(_seen(dataset))
  assert not shards[0] & shards[1]
  assert shards[0] + shards[1] == _expected(examples, tokenizer, 30)


def test_pipeline_config_errors_name_the_value(corpus):
  with pytest.raises(ValueError, match="batch_size must be a positive int, "
                     "got -4"):
    data.PipelineConfig(batch_size=-4)
  with pytest.raises(ValueError, match="max_len must be a positive int, got 0"):
    data.PipelineConfig(max_len=0)
  with pytest.raises(ValueError, match="truncation must be one of"):
    data.PipelineConfig(truncation="middle")
  examples, tokenizer = corpus
  with pytest.raises(ValueError, match="No examples in empty"):
    data.make_dataset(data.Examples([], np.zeros(0, np.int32), ["a", "b"],
                                    "empty"), tokenizer, data.PipelineConfig(),
                      training=False)
