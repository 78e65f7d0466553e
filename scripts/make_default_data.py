"""Writes the embedded default dataset (synthetic reviews) into the package.

    python scripts/make_default_data.py
"""

import gzip
import json
import os

from absl import app, flags, logging

from maskmodels.data import synthetic

FLAGS = flags.FLAGS
flags.DEFINE_integer("train_size", 8000, "Training reviews.", lower_bound=1)
flags.DEFINE_integer("test_size", 2000, "Test reviews.", lower_bound=1)
flags.DEFINE_integer("seed", 20261124, "Generator seed.")
flags.DEFINE_string(
    "output_dir",
    os.path.join(os.path.dirname(__file__), "..", "maskmodels", "data"),
    "Where default_{train,test}.jsonl.gz are written.")


def write_split(path, texts, labels):
  # mtime=0 keeps the gzip bytes identical across regenerations.
  with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb",
                                              mtime=0) as f:
    for text, label in zip(texts, labels):
      record = {"text": text, "label": synthetic.CLASS_NAMES[label]}
      f.write((json.dumps(record) + "\n").encode("utf-8"))
  logging.info("Wrote %d reviews to %s (%d bytes).", len(texts), path,
               os.path.getsize(path))


def main(argv):
  del argv
  for split, count, offset in (("train", FLAGS.train_size, 0),
                               ("test", FLAGS.test_size, 1)):
    texts, labels = synthetic.generate_reviews(count, FLAGS.seed + offset)
    write_split(os.path.join(FLAGS.output_dir, f"default_{split}.jsonl.gz"),
                texts, labels)


if __name__ == "__main__":
  app.run(main)
