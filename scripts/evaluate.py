r"""Evaluates a trained model directory on a data split; prints JSON metrics.

    python scripts/evaluate.py --model_dir=runs/default               # test
    python scripts/evaluate.py --model_dir=runs/imdb --data_format=aclimdb \
        --data_path=aclImdb --split=test
"""

import json

from absl import app, flags

from maskmodels import cli
from maskmodels import flags as mm_flags
from maskmodels import training
from maskmodels.data import readers

FLAGS = flags.FLAGS
mm_flags.define_model_dir_flag()
flags.DEFINE_enum("data_format", None, ("default",) + readers.FORMATS,
                  "Data format (default: the one the model was trained on).")
flags.DEFINE_string("data_path", None, "aclImdb root or data file (default: "
                    "the training run's).")
flags.DEFINE_string("split", "test", "aclImdb split, or default-data split.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.quiet_tensorflow()
  config = training.RunConfig.load(FLAGS.model_dir)
  data_format = FLAGS.data_format or config.data_format
  if data_format == "default":
    examples = readers.read_default(FLAGS.split)
  else:
    examples = readers.read_examples(
        data_format, FLAGS.data_path or config.data_path, FLAGS.split,
        config.text_column, config.label_column, config.class_names)
  metrics = training.evaluate(FLAGS.model_dir, examples)
  metrics["examples"] = int(metrics["examples"])
  print(json.dumps(dict(metrics, source=examples.source)))


if __name__ == "__main__":
  cli.run(main)
