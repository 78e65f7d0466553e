r"""Evaluates a trained model directory on a data split; prints JSON metrics.

    maskmodels-evaluate --model_dir=runs/default               # its test split
    maskmodels-evaluate --model_dir=runs/imdb --data_path=aclImdb --split=test
    maskmodels-evaluate --model_dir=runs/glue --data_path=test.tsv \
        --text_column=sentence --label_column=label
"""

import json

from absl import app, flags

from maskmodels import cli

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model_dir", None, "The trained model directory.",
                      required=True)
  flags.DEFINE_string("data_format", None, "Data format (default: the one "
                      "the model was trained on).")
  flags.DEFINE_string("data_path", None, "aclImdb root or data file "
                      "(default: the run's test file, else its data path).")
  flags.DEFINE_string("split", "test", "aclImdb or embedded-data split.")
  flags.DEFINE_string("text_column", None, "CSV/TSV column or JSONL key of "
                      "texts (default: the run's, for its test file).")
  flags.DEFINE_string("label_column", None, "CSV/TSV column or JSONL key of "
                      "labels (default: the run's, for its test file).")


def examples_to_evaluate(data):
  """The examples the flags name, with the run's ``data`` settings as the
  defaults."""
  from maskmodels.data import readers  # pylint: disable=import-outside-toplevel
  path = FLAGS.data_path or data.test_path or data.data_path
  on_test_file = not FLAGS.data_path and bool(data.test_path)
  text_column = FLAGS.text_column or (
      on_test_file and data.test_text_column) or data.text_column
  label_column = FLAGS.label_column or (
      on_test_file and data.test_label_column) or data.label_column
  return readers.read_examples(FLAGS.data_format or data.data_format, path,
                               FLAGS.split, text_column, label_column,
                               data.class_names)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from maskmodels import training  # pylint: disable=import-outside-toplevel
  cli.absorb_onednn_notice()
  config = training.ModelDirectory(FLAGS.model_dir).load_config()
  examples = examples_to_evaluate(config.data)
  metrics = training.evaluate(FLAGS.model_dir, examples)
  metrics["examples"] = int(metrics["examples"])
  print(json.dumps(dict(metrics, source=examples.source)))


def run():
  """The ``maskmodels-evaluate`` entry point."""
  cli.quiet_start()
  cli.run(main, define_flags, __doc__)
