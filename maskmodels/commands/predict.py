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
  if arguments:
    return list(arguments)
  # Bytes that are not UTF-8 become U+FFFD, as the data readers do.
  stream = stdin or getattr(sys.stdin, "buffer", sys.stdin)
  return [(line.decode("utf-8", "replace") if isinstance(line, bytes)
           else line).rstrip("\r\n") for line in stream]


def server_and_kind(model_dir):
  """``(predict, describe, input kind)`` of a model directory or a
  SavedModel: ``predict(inputs, batch_size)`` gives served rows,
  ``describe(input, row)`` a prediction line (the task's, or for a
  SavedModel the display its metadata keeps, so its task's code need not
  be imported)."""
  # pylint: disable=import-outside-toplevel
  from maskmodels import export, serving, training
  from maskmodels.errors import SettingError
  from maskmodels.registry import INPUT_KINDS
  if not export.is_saved_model(model_dir):
    run = training.load_trained(model_dir)
    return run.server().predict, run.task.describe, run.kind
  loaded = export.load_saved_model(model_dir)
  meta = export.metadata_of(loaded)
  if meta["input_kind"] not in INPUT_KINDS:
    raise SettingError(
        f"{model_dir} reads {meta['input_kind']} inputs, a kind research "
        f"code registers (the module(s) {', '.join(meta['modules'])}); pass "
        f"--import={','.join(meta['modules'])} so predict can read them.")
  kind = INPUT_KINDS.get(meta["input_kind"])
  predict = lambda inputs, batch_size: serving.predict_rows(  # noqa: E731
      lambda name, args: loaded.signatures[name](**args), kind.arguments,
      inputs, batch_size, lambda name: serving.signature_specs(
          loaded.signatures[name]))
  return predict, lambda given, row: serving.describe_row(
      given, row, meta["display"]), kind


def main(parsed, arguments):
  # pylint: disable=import-outside-toplevel
  from maskmodels.errors import InputError
  cli.absorb_onednn_notice()
  own = parsed.own
  predict, describe, kind = server_and_kind(own.model_dir)
  inputs = read_inputs(arguments, own.input_format, own.input,
                       data_format=own.data_format, data_path=own.data_path)
  if inputs and not kind.accepts(inputs):
    raise InputError(f"the model in {own.model_dir} reads {kind.describes}; "
                     f"these inputs are not (give its kind of data with "
                     f"--data_format and --data_path).")
  for given, row in zip(inputs, predict(inputs, own.batch_size)):
    print(describe(given, row))


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
