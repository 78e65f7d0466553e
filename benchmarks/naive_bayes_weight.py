"""Accuracy of a trained run for each --naive_bayes_weight, from one pass.

    python benchmarks/naive_bayes_weight.py --model_dir=runs/imdb
    python benchmarks/naive_bayes_weight.py --model_dir=runs/imdb --test

Reads the run's validation split (and with --test its test split), computes
the head's and the naive Bayes model's logits once (``member_logits``), and
prints JSON lines: the CPU first, then per weight the accuracy of
``head + weight * naive_bayes``, then the naive Bayes model's alone. Choose
the weight on validation; the test column is for reporting only. Set it
with ``--naive_bayes_weight`` (it does not change training).
"""

import json

from maskmodels import cli

cli.quiet_start()  # before TensorFlow loads

# pylint: disable=wrong-import-position
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from machine import cpu_description  # noqa: E402  (benchmarks/machine.py)
from maskmodels import training  # noqa: E402
from maskmodels.training.runner import read_splits  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A trained model directory with a "
                    "naive Bayes member.", required=True)
flags.DEFINE_list("weights", ["0", "0.5", "1", "1.5", "2", "2.5", "3", "3.5",
                              "4", "5", "6", "8"], "Weights to try.")
flags.DEFINE_bool("test", False, "Also the test split's accuracy.")
flags.DEFINE_integer("batch_size", 128, "Texts per batch.", lower_bound=1)


def member_logits(config, tokenizer, model, examples):
  """``[texts, members, classes]`` logits at the run's inference length."""
  data = config.data

  @tf.function(reduce_retracing=True)
  def members(texts):
    ids = tokenizer.encode(texts, data.inference_max_len, data.truncation)
    return tf.stack(model.member_logits(ids.to_tensor(), training=False), 1)

  bar = tf.keras.utils.Progbar(len(examples), unit_name="texts")
  out = []
  for start in range(0, len(examples), FLAGS.batch_size):
    batch = examples.texts[start:start + FLAGS.batch_size]
    out.append(members(tf.constant(batch, tf.string)).numpy())
    bar.add(len(batch))
  return np.concatenate(out)


def main(argv):
  del argv
  cli.absorb_onednn_notice()
  print(json.dumps(cpu_description()), flush=True)
  config, tokenizer, model = training.load_trained(FLAGS.model_dir)
  if getattr(model, "naive_bayes", None) is None:
    raise app.UsageError(f"{FLAGS.model_dir} has no naive Bayes member "
                         "(--naive_bayes_buckets=0).")
  splits = read_splits(config.data, config.train.seed)
  names = ["validation"] + (["test"] if FLAGS.test and splits.test else [])
  logits = {name: member_logits(config, tokenizer, model,
                                getattr(splits, name)) for name in names}
  rows = [(float(w), (1.0, float(w))) for w in FLAGS.weights]
  for weight, (head, naive) in rows + [("alone", (0.0, 1.0))]:
    row = {"naive_bayes_weight": weight}
    for name in names:
      combined = head * logits[name][:, 0] + naive * logits[name][:, 1]
      labels = np.asarray(getattr(splits, name).labels)
      row[f"{name}_accuracy"] = round(float(
          (combined.argmax(1) == labels).mean()), 5)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
  app.run(main)
