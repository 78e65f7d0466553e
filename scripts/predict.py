r"""Predicts labels for texts given as arguments, or one per line on stdin.

    python scripts/predict.py --model_dir=runs/default "A superb film." "Dull."
    cat reviews.txt | python scripts/predict.py --model_dir=runs/default
    python scripts/predict.py --model_dir=exported "A superb film."

--model_dir is a training model directory or an exported SavedModel.

Prints one line per text: label, probability, text.
"""

import sys

from absl import app, flags

import numpy as np

from maskmodels import cli, export
from maskmodels import flags as mm_flags
from maskmodels import training

FLAGS = flags.FLAGS
mm_flags.define_model_dir_flag()


def main(argv):
  cli.quiet_tensorflow()
  texts = argv[1:] or [line.rstrip("\n") for line in sys.stdin]
  if export.is_saved_model(FLAGS.model_dir):
    serve = export.load_serving_function(FLAGS.model_dir)
    outputs = serve(texts=np.array(texts, dtype=object))
    labels = [label.decode() for label in outputs["labels"].numpy()]
    best = outputs["probabilities"].numpy().max(axis=1)
  else:
    config, tokenizer, model = training.load_trained(FLAGS.model_dir)
    probabilities = training.predict(config, tokenizer, model, texts)
    labels = [config.class_names[i] for i in probabilities.argmax(axis=1)]
    best = probabilities.max(axis=1)
  for text, label, probability in zip(texts, labels, best):
    print(f"{label}\t{probability:.4f}\t{text}")


if __name__ == "__main__":
  cli.run(main)
