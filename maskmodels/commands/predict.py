r"""Predicts for inputs given as arguments, or one per line on stdin.

    maskmodels-predict --model_dir=runs/default "A superb film." "Dull."
    cat reviews.txt | maskmodels-predict --model_dir=runs/default
    maskmodels-predict --model_dir=exported "A superb film."
    maskmodels-predict --model_dir=runs/tagger "The cat sat ."
    maskmodels-predict --model_dir=runs/tagger --input_format=conllu \
        --input=en_ewt-ud-test.conllu
    maskmodels-predict --model_dir=runs/frames --data_format=ts \
        --data_path=JapaneseVowels_TEST.ts

--model_dir is a training model directory or an exported SavedModel.
Prints one line per input, as the task writes it: a classifier's label,
probability and input; a tagger's words with their tags (word/TAG). A
pre-tokenized task splits each line at whitespace, or reads the words of
each sentence of a CoNLL-U file (--input_format=conllu). Any data format
reads through --data_format and --data_path (series of frames too).
"""

import sys

from maskmodels import cli


def settings():
  from maskmodels.commands.settings import PredictSettings  # pylint: disable=import-outside-toplevel
  return PredictSettings


def read_inputs(arguments, input_format="text", path=None, stdin=None,
                data_format=None, data_path=None):
  """The inputs: a data file's (``data_format``, ``data_path``), else the
  arguments, else the lines of ``path`` or of stdin (strings), or a
  CoNLL-U file's sentences (word lists)."""
  # pylint: disable=import-outside-toplevel
  from maskmodels.data import readers
  from maskmodels.errors import InputError, SettingError
  if data_format or data_path:
    if not (data_format and data_path):
      raise SettingError("--data_format and --data_path go together: the "
                         "format and the file of the inputs.")
    return readers.read_examples(data_format, data_path, "test",
                                 labelled=False).texts
  if input_format == "conllu":
    if not path:
      raise InputError("--input_format=conllu needs --input.")
    return readers.read_conllu(path).texts
  if path:
    with open(path, encoding="utf-8", errors="replace") as f:
      return [line.rstrip("\n") for line in f]
  return list(arguments) or [line.rstrip("\n")
                             for line in (stdin or sys.stdin)]


def server_and_task(model_dir):
  """``(predict function, task, input kind)`` of a model directory or a
  SavedModel."""
  # pylint: disable=import-outside-toplevel
  from maskmodels import export, serving, training
  from maskmodels.registry import INPUT_KINDS
  if not export.is_saved_model(model_dir):
    run = training.load_trained(model_dir)
    return run.server().predict, run.task, run.kind
  loaded = export.load_saved_model(model_dir)
  meta = export.metadata_of(loaded)
  task = serving.task_of_saved_model(meta)
  kind = INPUT_KINDS.get(meta.get("input_kind", "text"))
  return lambda inputs, batch_size: serving.predict_rows(
      lambda name, args: loaded.signatures[name](**args), kind.arguments,
      inputs, batch_size), task, kind


def main(parsed, arguments):
  # pylint: disable=import-outside-toplevel
  from maskmodels.errors import InputError
  cli.absorb_onednn_notice()
  own = parsed.own
  predict, task, kind = server_and_task(own.model_dir)
  inputs = read_inputs(arguments, own.input_format, own.input,
                       data_format=own.data_format, data_path=own.data_path)
  if inputs and not kind.holds(inputs):
    if kind.name == "words" and all(isinstance(i, str) for i in inputs):
      pass  # raw text reaches a word model split at whitespace
    else:
      raise InputError(f"the model in {own.model_dir} reads "
                       f"{kind.describes}; these inputs are not (give its "
                       f"kind of data with --data_format and --data_path).")
  for given, row in zip(inputs, predict(inputs, own.batch_size)):
    print(task.describe(given, row))


def check(parsed):
  # pylint: disable=import-outside-toplevel
  from maskmodels.commands.settings import check_model_dir, check_path
  check_model_dir(parsed.own.model_dir, saved_model=True)
  check_path(parsed.own.input, "input", folder_ok=False)
  check_path(parsed.own.data_path, "data_path")


COMMAND = cli.Command("predict", __doc__, settings, main,
                      arguments="inputs, one per argument", check=check)


def run():
  """The ``maskmodels-predict`` entry point."""
  cli.quiet_start()
  cli.run(COMMAND)
