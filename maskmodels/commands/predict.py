r"""Predicts for inputs given as arguments, or one per line on stdin.

    maskmodels-predict --model_dir=runs/default "A superb film." "Dull."
    cat reviews.txt | maskmodels-predict --model_dir=runs/default
    maskmodels-predict --model_dir=exported "A superb film."
    maskmodels-predict --model_dir=runs/tagger "The cat sat ."
    maskmodels-predict --model_dir=runs/tagger --input_format=conllu \
        --input=en_ewt-ud-test.conllu

--model_dir is a training model directory or an exported SavedModel.
Prints one line per input, as the task writes it: a classifier's label,
probability and text; a tagger's words with their tags (word/TAG). A
pre-tokenized task splits each line at whitespace, or reads the words of
each sentence of a CoNLL-U file (--input_format=conllu).
"""

import json
import sys

from maskmodels import cli


def settings():
  from maskmodels.commands.settings import PredictSettings  # pylint: disable=import-outside-toplevel
  return PredictSettings


def read_inputs(arguments, input_format="text", path=None, stdin=None):
  """The inputs: the arguments, else the lines of ``path`` or of stdin
  (strings), or a CoNLL-U file's sentences (word lists)."""
  # pylint: disable=import-outside-toplevel
  from maskmodels.data import readers
  from maskmodels.errors import InputError
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
  """``(predict function, task)`` of a model directory or a SavedModel."""
  # pylint: disable=import-outside-toplevel
  from maskmodels import export, serving, training
  if not export.is_saved_model(model_dir):
    run = training.load_trained(model_dir)
    return run.server().predict, run.task
  loaded = export.load_saved_model(model_dir)
  meta = json.loads(loaded.metadata().numpy().decode())
  task = serving.task_of_saved_model(meta)
  signatures = loaded.signatures
  return lambda inputs, batch_size: serving.predict_rows(
      signatures[export.SIGNATURE], signatures.get(export.WORDS_SIGNATURE),
      inputs, batch_size), task


def main(parsed, arguments):
  cli.absorb_onednn_notice()
  own = parsed.own
  inputs = read_inputs(arguments, own.input_format, own.input)
  predict, task = server_and_task(own.model_dir)
  for given, row in zip(inputs, predict(inputs, own.batch_size)):
    print(task.describe(given, row))


def check(parsed):
  # pylint: disable=import-outside-toplevel
  from maskmodels.commands.settings import check_model_dir, check_path
  check_model_dir(parsed.own.model_dir, saved_model=True)
  check_path(parsed.own.input, "input", folder_ok=False)


COMMAND = cli.Command("predict", __doc__, settings, main,
                      arguments="inputs, one per argument", check=check)


def run():
  """The ``maskmodels-predict`` entry point."""
  cli.quiet_start()
  cli.run(COMMAND)
