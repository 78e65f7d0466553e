"""The model directory: layout, lock, checkpoint lookup and restore."""

import multiprocessing
import os

import keras
import pytest
import tensorflow as tf

from maskmodels.errors import InputError, ModelDirectoryInUse
from maskmodels.training import checkpoints
from maskmodels.training.model_dir import ModelDirectory


# The holders fork: a lock is Python's file locking only, and a spawned
# process would import TensorFlow again (about 5 s) to hold it.
HOLDERS = multiprocessing.get_context("fork")


def _hold_lock(path, ready, release):
  with ModelDirectory(path).lock():
    ready.set()
    release.wait(60)


def test_lock_refuses_a_second_holder_and_names_it(tmp_path):
  path = str(tmp_path / "run")
  ready, release = HOLDERS.Event(), HOLDERS.Event()
  holder = HOLDERS.Process(target=_hold_lock, args=(path, ready, release))
  holder.start()
  try:
    assert ready.wait(60)
    with pytest.raises(ModelDirectoryInUse, match=rf"{path} is in use by a "
                       rf"running training \(pid {holder.pid} on "):
      with ModelDirectory(path).lock():
        pass
  finally:
    release.set()
    holder.join(60)
  with ModelDirectory(path).lock():  # released: free again
    with pytest.raises(ModelDirectoryInUse):
      with ModelDirectory(path).lock():  # and held within one process too
        pass


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
  path = str(tmp_path / "run")
  ready, release = HOLDERS.Event(), HOLDERS.Event()
  holder = HOLDERS.Process(target=_hold_lock, args=(path, ready, release))
  holder.start()
  assert ready.wait(60)
  holder.kill()
  holder.join(60)
  assert os.path.exists(os.path.join(path, ".lock"))
  with ModelDirectory(path).lock():
    pass


def _checkpoint():
  model = keras.Sequential([keras.layers.Dense(2, name="dense")])
  model.build((None, 2))
  step = tf.Variable(0, dtype=tf.int64)
  return model, step, checkpoints.weights_checkpoint(model, step=step)


def test_restore_falls_back_over_unreadable_checkpoints(tmp_path):
  directory = ModelDirectory(str(tmp_path / "run"))
  model, step, checkpoint = _checkpoint()
  checkpointer = directory.checkpointer(checkpoint, step, 3, 1)
  for value in (1, 2, 3):
    step.assign(value)
    model.layers[0].kernel.assign(tf.fill([2, 2], float(value)))
    checkpointer.save(value)
  newest = directory.latest_checkpoint()
  data_file = tf.io.gfile.glob(newest + ".data-*")[0]
  with open(data_file, "r+b") as f:
    f.truncate(1)
  model, step, checkpoint = _checkpoint()
  restored = directory.checkpointer(checkpoint, step, 3, 1).restore()
  assert restored.endswith("ckpt-2") and int(step.numpy()) == 2
  assert model.layers[0].kernel.numpy().tolist() == [[2.0, 2.0]] * 2


def test_lookups_and_missing_files_are_clear(tmp_path):
  directory = ModelDirectory(str(tmp_path / "run"))
  with pytest.raises(FileNotFoundError, match="is not a maskmodels model "
                     "directory"):
    directory.load_config()
  with pytest.raises(FileNotFoundError, match="No checkpoint in .*train "
                     "first"):
    directory.serving_checkpoint("best")
  assert directory.read_history(10) == {"train": [], "validation": []}
  os.makedirs(directory.path)
  with open(directory.file("config.json"), "w") as f:
    f.write('{"vocab_size": 400}')
  with pytest.raises(InputError, match="written by maskmodels 0.1"):
    directory.load_config()
  directory.write_json("history.json", {"train": [[5, {}], [9, {}]],
                                        "validation": [[9, {}]]})
  assert directory.read_history(6) == {"train": [[5, {}]], "validation": []}
