"""The textbook IMDb model, timed end to end: the baseline of the README.

    python benchmarks/textbook_imdb.py --data_path=/path/to/aclImdb

Keras's textbook pipeline, nothing of maskmodels in the model:
``text_dataset_from_directory`` -> ``TextVectorization(20000)`` ->
``Embedding(20000, 128, mask_zero=True) -> GRU(128) -> Dense(1)``, trained
with ``fit`` (Adam, batch 32, whole reviews padded to each batch's longest)
for 3 epochs on the 25,000 training reviews, then evaluated once on the
25,000 test reviews. Prints JSON lines: the CPU first, then one line per
epoch and a last line with the test accuracy and the wall time (reading,
vocabulary, training and the test pass), the figure maskmodels' IMDb run is
compared with.
"""

import json
import sys
import time

from maskmodels import cli

cli.quiet_start()  # before TensorFlow loads

# pylint: disable=wrong-import-position
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from machine import cpu_description  # noqa: E402  (benchmarks/machine.py)
import records  # noqa: E402  (benchmarks/records.py)

FLAGS = flags.FLAGS
flags.DEFINE_string("data_path", None, "aclImdb folder.", required=True)
records.define_flag()
flags.DEFINE_integer("epochs", 3, "Training epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
flags.DEFINE_integer("vocab_size", 20000, "TextVectorization vocabulary.",
                     lower_bound=3)
flags.DEFINE_integer("seed", 0, "Shuffle and initialization seed.")


class EpochReport(keras.callbacks.Callback):
  """Prints one JSON line per epoch: loss, accuracy and seconds."""

  def on_epoch_begin(self, epoch, logs=None):
    self.start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    print(json.dumps({"epoch": epoch + 1, "seconds": round(
        time.perf_counter() - self.start, 1), **{
            k: round(float(v), 4) for k, v in (logs or {}).items()}}),
          flush=True)


def reviews(split, shuffle):
  """``(text, label)`` batches of ``<data_path>/<split>/{neg,pos}``."""
  return keras.utils.text_dataset_from_directory(
      f"{FLAGS.data_path}/{split}", class_names=["neg", "pos"],
      batch_size=FLAGS.batch_size, shuffle=shuffle, seed=FLAGS.seed)


def main(argv):
  del argv
  cli.absorb_onednn_notice()
  print(json.dumps(cpu_description()), flush=True)
  keras.utils.set_random_seed(FLAGS.seed)
  start = time.perf_counter()
  train, test = reviews("train", True), reviews("test", False)
  vectorize = keras.layers.TextVectorization(FLAGS.vocab_size)
  vectorize.adapt(train.map(lambda text, label: text))
  encode = lambda text, label: (vectorize(text), label)  # noqa: E731
  train = train.map(encode).cache().prefetch(tf.data.AUTOTUNE)
  test = test.map(encode).prefetch(tf.data.AUTOTUNE)
  model = keras.Sequential([
      keras.layers.Embedding(FLAGS.vocab_size, 128, mask_zero=True),
      keras.layers.GRU(128),
      keras.layers.Dense(1)])
  model.compile(optimizer="adam", metrics=[
      keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
                loss=keras.losses.BinaryCrossentropy(from_logits=True))
  model.fit(train, epochs=FLAGS.epochs, verbose=1, shuffle=False, callbacks=[
      keras.callbacks.ProgbarLogger(), EpochReport()])
  _, accuracy = model.evaluate(test, verbose=0)
  wall = time.perf_counter() - start
  print(json.dumps({
      "model": "Embedding(mask_zero)->GRU(128)", "epochs": FLAGS.epochs,
      "test_accuracy": round(float(accuracy), 4),
      "wall_seconds": round(wall)}), flush=True)
  if FLAGS.records:
    records.append(dict(
        benchmark="textbook_imdb", command=records.shown_command(sys.argv),
        seed=FLAGS.seed, metric="test_accuracy", value=float(accuracy),
        split="test", wall_seconds=round(wall, 1)), FLAGS.records)


if __name__ == "__main__":
  app.run(main)
