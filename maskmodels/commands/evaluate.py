r"""Evaluates a trained model directory on a data split; prints JSON metrics.

    maskmodels-evaluate --model_dir=runs/default               # its test split
    maskmodels-evaluate --model_dir=runs/imdb --data_path=aclImdb --split=test
    maskmodels-evaluate --model_dir=runs/glue --data_path=test.tsv \
        --text_column=sentence --label_column=label
"""

import json

from maskmodels import cli


def settings():
  from maskmodels.commands.settings import EvaluateSettings  # pylint: disable=import-outside-toplevel
  return EvaluateSettings


def examples_to_evaluate(config, data_format=None, data_path=None,
                         split="test", text_column=None, label_column=None):
  """The examples the flags name (their values are the arguments), with
  the run's settings as the defaults."""
  # pylint: disable=import-outside-toplevel
  import dataclasses
  from maskmodels.data import readers
  from maskmodels.errors import SettingError
  from maskmodels.training.builders import task_of
  data = config.data
  if data_format:
    data = dataclasses.replace(data, data_format=data_format)
  path = data_path or data.test_path or data.data_path
  on_test_file = not data_path and bool(data.test_path)
  columns = data.columns(
      text_column or (on_test_file and data.test_text_column) or None,
      label_column or (on_test_file and data.test_label_column) or None)
  try:
    return readers.read_examples(data.data_format, path, split, *columns,
                                 default_data=task_of(config).default_data)
  except readers.MissingColumn as missing:
    for flag, given in (("text_column", text_column),
                        ("label_column", label_column)):
      if given == missing.column:
        raise SettingError(f"--{flag}={given}: {missing}") from None
    raise
  except readers.UnknownSplit as unknown:
    raise SettingError(f"--split={split}: {unknown}") from None


def main(parsed, arguments):
  del arguments
  from maskmodels import training  # pylint: disable=import-outside-toplevel
  cli.absorb_onednn_notice()
  own = parsed.own
  config = training.ModelDirectory(own.model_dir).load_config()
  examples = examples_to_evaluate(
      config, own.data_format, own.data_path, own.split, own.text_column,
      own.label_column)
  metrics = training.evaluate(own.model_dir, examples)
  metrics = {name: int(value) if name in ("examples", "tokens") else value
             for name, value in metrics.items()}
  print(json.dumps(dict(metrics, source=examples.source)))


def check(parsed):
  # pylint: disable=import-outside-toplevel
  from maskmodels.commands.settings import check_model_dir, check_path
  check_model_dir(parsed.own.model_dir)
  check_path(parsed.own.data_path, "data_path")


COMMAND = cli.Command("evaluate", __doc__, settings, main, check=check)


def run():
  """The ``maskmodels-evaluate`` entry point."""
  cli.quiet_start()
  cli.run(COMMAND)
