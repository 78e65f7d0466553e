r"""Exports a trained model directory as a SavedModel that takes raw strings.

    python scripts/export.py --model_dir=runs/default --export_dir=exported
    saved_model_cli show --dir exported --tag_set serve --signature_def \
        serving_default
"""

from absl import app, flags

from maskmodels import cli, export
from maskmodels import flags as mm_flags

FLAGS = flags.FLAGS
mm_flags.define_model_dir_flag()
flags.DEFINE_string("export_dir", None, "Where the SavedModel is written.",
                    required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.quiet_tensorflow()
  path = export.export_saved_model(FLAGS.model_dir, FLAGS.export_dir)
  print(f"Exported {FLAGS.model_dir} to {path} (signature "
        f"'{export.SIGNATURE}': strings [batch] -> probabilities, labels).")


if __name__ == "__main__":
  cli.run(main)
