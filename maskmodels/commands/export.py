r"""Exports a trained model directory as a SavedModel that takes raw strings.

    maskmodels-export --model_dir=runs/default --export_dir=exported
    saved_model_cli show --dir exported --tag_set serve --signature_def \
        serving_default
"""

from maskmodels import cli


def settings():
  from maskmodels.commands.settings import ExportSettings  # pylint: disable=import-outside-toplevel
  return ExportSettings


def main(parsed, arguments):
  del arguments
  from maskmodels import export  # pylint: disable=import-outside-toplevel
  cli.absorb_onednn_notice()
  own = parsed.own
  path = export.export_saved_model(own.model_dir, own.export_dir)
  print(export.describe(path))


def check(parsed):
  from maskmodels.commands.settings import check_model_dir  # pylint: disable=import-outside-toplevel
  check_model_dir(parsed.own.model_dir)


COMMAND = cli.Command("export", __doc__, settings, main, check=check)


def run():
  """The ``maskmodels-export`` entry point."""
  cli.quiet_start()
  cli.run(COMMAND)
