r"""Exports a trained model directory as a SavedModel that takes raw strings.

    maskmodels-export --model_dir=runs/default --export_dir=exported
    saved_model_cli show --dir exported --tag_set serve --signature_def \
        serving_default
"""

from absl import app, flags

from maskmodels import cli

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model_dir", None, "The trained model directory.",
                      required=True)
  flags.DEFINE_string("export_dir", None, "Where the SavedModel is written.",
                      required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from maskmodels import export  # pylint: disable=import-outside-toplevel
  cli.absorb_onednn_notice()
  path = export.export_saved_model(FLAGS.model_dir, FLAGS.export_dir)
  print(f"Exported {FLAGS.model_dir} to {path} (signature "
        f"'{export.SIGNATURE}': strings [batch] -> probabilities, labels).")


def run():
  """The ``maskmodels-export`` entry point."""
  cli.quiet_start()
  cli.run(main, define_flags, __doc__)
