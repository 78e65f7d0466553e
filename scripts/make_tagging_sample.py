"""Writes the embedded tagging data (a sample of UD English-EWT) into the
package, with the treebank's license and README.

    python scripts/make_tagging_sample.py --ewt_dir=ud-english-ewt

Takes a seeded random sample of whole sentences, unchanged, from the
treebank's train split (the embedded training data) and its dev split (the
embedded held-out data), and writes them gzipped; the treebank's LICENSE
(CC BY-SA 4.0) and README travel beside them, with a note saying what was
taken.
"""

import gzip
import os
import random
import shutil

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("ewt_dir", None, "The UD English-EWT folder "
                    "(en_ewt-ud-*.conllu, LICENSE.txt, README.md).",
                    required=True)
flags.DEFINE_integer("train_size", 3000, "Sentences from the train split.",
                     lower_bound=1)
flags.DEFINE_integer("test_size", 500, "Sentences from the dev split.",
                     lower_bound=1)
flags.DEFINE_integer("seed", 20261202, "Sampling seed.")
flags.DEFINE_string(
    "output_dir",
    os.path.join(os.path.dirname(__file__), "..", "maskmodels", "data"),
    "Where ewt_sample_{train,test}.conllu.gz are written.")

NOTE = """# The embedded tagging data

`ewt_sample_train.conllu.gz` and `ewt_sample_test.conllu.gz` are samples of
Universal Dependencies English-EWT v2.15
(https://github.com/UniversalDependencies/UD_English-EWT, commit
{commit}), licensed under CC BY-SA 4.0 (`ud_ewt_LICENSE.txt`; the
treebank's README is `ud_ewt_README.md`).

- `ewt_sample_train.conllu.gz`: {train} sentences of `en_ewt-ud-train.conllu`,
- `ewt_sample_test.conllu.gz`: {test} sentences of `en_ewt-ud-dev.conllu`,

drawn at random (seed {seed}) and kept whole and unchanged, with their
comment lines, in their original order. Nothing else was changed. The
samples are under the same license, CC BY-SA 4.0. They were made by
`scripts/make_tagging_sample.py`.
"""


def sentences(path):
  """The sentence blocks of a CoNLL-U file, each with its lines."""
  block = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      if line.strip():
        block.append(line)
      elif block:
        yield "".join(block)
        block = []
  if block:
    yield "".join(block)


def write_sample(source, count, seed, path):
  blocks = list(sentences(source))
  chosen = sorted(random.Random(seed).sample(range(len(blocks)), count))
  # mtime=0 keeps the gzip bytes identical across regenerations.
  with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb",
                                              mtime=0) as f:
    for index in chosen:
      f.write((blocks[index] + "\n").encode("utf-8"))
  logging.info("Wrote %d of %d sentences of %s to %s (%d bytes).", count,
               len(blocks), source, path, os.path.getsize(path))


def main(argv):
  del argv
  out = FLAGS.output_dir
  for split, source, count in (("train", "train", FLAGS.train_size),
                               ("test", "dev", FLAGS.test_size)):
    write_sample(os.path.join(FLAGS.ewt_dir, f"en_ewt-ud-{source}.conllu"),
                 count, FLAGS.seed, os.path.join(
                     out, f"ewt_sample_{split}.conllu.gz"))
  shutil.copyfile(os.path.join(FLAGS.ewt_dir, "LICENSE.txt"),
                  os.path.join(out, "ud_ewt_LICENSE.txt"))
  shutil.copyfile(os.path.join(FLAGS.ewt_dir, "README.md"),
                  os.path.join(out, "ud_ewt_README.md"))
  commit_file = os.path.join(FLAGS.ewt_dir, "SOURCE_COMMIT.txt")
  commit = (open(commit_file).read().split()[0]
            if os.path.exists(commit_file) else "unknown")
  with open(os.path.join(out, "ud_ewt_SAMPLE.md"), "w") as f:
    f.write(NOTE.format(commit=commit, train=FLAGS.train_size,
                        test=FLAGS.test_size, seed=FLAGS.seed))


if __name__ == "__main__":
  app.run(main)
