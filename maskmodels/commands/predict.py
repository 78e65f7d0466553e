r"""Predicts labels for texts given as arguments, or one per line on stdin.

    maskmodels-predict --model_dir=runs/default "A superb film." "Dull."
    cat reviews.txt | maskmodels-predict --model_dir=runs/default
    maskmodels-predict --model_dir=exported "A superb film."

--model_dir is a training model directory or an exported SavedModel.
Prints one line per text: label, probability, text.
"""

import sys

from absl import flags

from maskmodels import cli

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model_dir", None, "A trained model directory or an "
                      "exported SavedModel.", required=True)
  flags.DEFINE_integer("batch_size", 64, "Texts per batch.", lower_bound=1)


def main(argv):
  # pylint: disable=import-outside-toplevel
  import numpy as np
  from maskmodels import export, training
  cli.absorb_onednn_notice()
  texts = argv[1:] or [line.rstrip("\n") for line in sys.stdin]
  if export.is_saved_model(FLAGS.model_dir):
    serve = export.load_serving_function(FLAGS.model_dir)
    outputs = serve(texts=np.array(texts, dtype=object))
    labels = [label.decode() for label in outputs["labels"].numpy()]
    best = outputs["probabilities"].numpy().max(axis=1)
  else:
    config, tokenizer, model = training.load_trained(FLAGS.model_dir)
    probabilities = training.predict(config, tokenizer, model, texts,
                                     FLAGS.batch_size)
    labels = [config.data.class_names[i] for i in probabilities.argmax(1)]
    best = probabilities.max(axis=1)
  for text, label, probability in zip(texts, labels, best):
    print(f"{label}\t{probability:.4f}\t{text}")


def run():
  """The ``maskmodels-predict`` entry point."""
  cli.quiet_start()
  cli.run(main, define_flags, __doc__)
