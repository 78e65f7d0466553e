"""Predicts labels for texts given as arguments, or one per line on stdin.

    python scripts/predict.py --model_dir=runs/default "A superb film." "Dull."
    cat reviews.txt | python scripts/predict.py --model_dir=runs/default

Prints one line per text: label, probability, text.
"""

import sys

from absl import app, flags

from maskmodels import cli
from maskmodels import flags as mm_flags
from maskmodels import training

FLAGS = flags.FLAGS
mm_flags.define_model_dir_flag()


def main(argv):
  cli.quiet_tensorflow()
  texts = argv[1:] or [line.rstrip("\n") for line in sys.stdin]
  config, tokenizer, model = training.load_trained(FLAGS.model_dir)
  probabilities = training.predict(config, tokenizer, model, texts)
  for text, probs in zip(texts, probabilities):
    best = int(probs.argmax())
    print(f"{config.class_names[best]}\t{probs[best]:.4f}\t{text}")


if __name__ == "__main__":
  app.run(main)
