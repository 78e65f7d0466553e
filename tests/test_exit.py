"""Commands end when their work ends: no input pipeline outlives a run.

The hang this guards against: a distributed training iterator, still
prefetching when training stops, left to the garbage collector or to
interpreter shutdown, tears its threads down while TensorFlow's runtime is
going away and can hold the process for tens of seconds or forever after
its last line. Runs release their pipelines themselves (``Trainer.close``).
Every command the test suite starts in a fresh process is also held to
``helpers.EXIT_BOUND`` seconds from its last output line to its exit.
"""

import gc
import re

import numpy as np
import pytest
from tensorflow.python.data.ops import iterator_ops
from tensorflow.python.data.ops import multi_device_iterator_ops
from tensorflow.python.distribute import input_lib

from helpers import EXIT_BOUND, TINY_RUN, run_script, tiny_config, write_jsonl
from maskmodels import data, training

ITERATORS = (iterator_ops.OwnedIterator, input_lib.DistributedIterator,
             multi_device_iterator_ops.OwnedMultiDeviceIterator)


def _live_iterators():
  return [o for o in gc.get_objects() if isinstance(o, ITERATORS)]


def test_a_finished_run_leaves_no_input_pipeline_alive(tmp_path, mirrored):
  """With the garbage collector off, nothing but the run itself can free
  its iterators: after ``train_and_evaluate`` returns none may be left."""
  data = write_jsonl(tmp_path / "reviews.jsonl", 120, seed=1)
  gc.collect()
  before = len(_live_iterators())
  gc.disable()
  try:
    summary = training.train_and_evaluate(
        tiny_config(data, deterministic=False, train_steps=None, epochs=1,
                    steps_per_loop=2), str(tmp_path / "run"), mirrored)
    alive = _live_iterators()
  finally:
    gc.enable()
  assert summary["steps"] > 4  # a training iterator was mid-pass at the end
  assert len(alive) == before, alive


def _training_data_fn(tmp_path):
  """A run's training dataset over 200 short texts, as a function of the
  input context."""
  texts = [" ".join(f"w{i % 50}" for i in range(n % 30)) for n in range(200)]
  examples = data.Examples(texts, (np.arange(200) % 2).astype(np.int32), "t")
  path = str(tmp_path / "vocab.txt")
  data.write_vocabulary(data.learn_vocabulary(texts, "word", 100, verbose=0),
                        path)
  featurizer = data.Featurizer(data.build_tokenizer("word", path))
  return data.dataset_fn(examples, featurizer, data.PipelineConfig(
      max_len=32, batch_size=8), True)


def test_input_pipelines_run_without_the_autotuning_thread(tmp_path):
  """tf.data's autotuning thread can hold a deleted iterator for as long as
  it has run (see ``pipeline._options``); the pipelines do without it."""
  assert _training_data_fn(tmp_path)(None).options().autotune.enabled is False


def test_per_device_pipelines_run_without_the_autotuning_thread(
    tmp_path, mirrored, monkeypatch):
  """``MultiDeviceIterator`` feeds each replica through a pipeline of its
  own, built with tf.data's default options; the distributed iterators the
  runs use give those pipelines the pipelines' options too."""
  autotuned = []
  build = iterator_ops.OwnedIterator.__init__

  def record(self, dataset=None, **kwargs):
    if dataset is not None:
      autotuned.append(dataset.options().autotune.enabled)
    build(self, dataset, **kwargs)

  dataset_fn = _training_data_fn(tmp_path)
  monkeypatch.setattr(iterator_ops.OwnedIterator, "__init__", record)
  next(data.distributed_iterator(mirrored, dataset_fn))
  assert autotuned == [False] * mirrored.num_replicas_in_sync


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(10))
def test_the_main_command_exits_promptly_every_time(tmp_path, round_):
  """The README's main command, short, in a fresh process, ten times."""
  result = run_script("train.py", f"--model_dir={tmp_path / 'run'}",
                      "--strategy=mirrored", *TINY_RUN, "--train_steps=30")
  assert result.returncode == 0, result.stderr[-3000:]
  assert re.search(r"^Done: 30 steps", result.stdout, re.M)
  assert result.exit_seconds < EXIT_BOUND
