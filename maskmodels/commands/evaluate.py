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


def examples_to_evaluate(config, data_format=None, data_path=None,
                         split="test", text_column=None, label_column=None):
  """The examples the flags name (their values are the arguments), with
  the run's settings as the defaults."""
  # pylint: disable=import-outside-toplevel
  import dataclasses
  from maskmodels.data import readers
  from maskmodels.training.builders import task_of
  data = config.data
  if data_format:
    data = dataclasses.replace(data, data_format=data_format)
  path = data_path or data.test_path or data.data_path
  on_test_file = not data_path and bool(data.test_path)
  columns = data.columns(
      text_column or (on_test_file and data.test_text_column) or "",
      label_column or (on_test_file and data.test_label_column) or "")
  return readers.read_examples(data.data_format, path, split, *columns,
                               default_data=task_of(config).default_data)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from maskmodels import training  # pylint: disable=import-outside-toplevel
  cli.absorb_onednn_notice()
  config = training.ModelDirectory(FLAGS.model_dir).load_config()
  examples = examples_to_evaluate(
      config, FLAGS.data_format, FLAGS.data_path, FLAGS.split,
      FLAGS.text_column, FLAGS.label_column)
  metrics = training.evaluate(FLAGS.model_dir, examples)
  metrics = {name: int(value) if name in ("examples", "tokens") else value
             for name, value in metrics.items()}
  print(json.dumps(dict(metrics, source=examples.source)))


def run():
  """The ``maskmodels-evaluate`` entry point."""
  cli.quiet_start()
  cli.run(main, define_flags, __doc__)
