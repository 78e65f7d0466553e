"""The ctc and seq2seq tasks through every command, each in a fresh process:
strings in, strings out; and a research decoder and step via --import."""

import json
import subprocess
import sys

import pytest

from helpers import env, run_script

TINY = ["--embedding_dim=8", "--conv_filters=8", "--gru_units=8",
        "--train_steps=8", "--steps_per_loop=4", "--warmup_steps=2",
        "--batch_size=32", "--checkpoint_every_steps=4"]
WORDS = ["HELLO", "", "A", "PHOTOSYNTHESIS"]

LOAD = """
import json, sys
import tensorflow as tf, tensorflow_text
model = tf.saved_model.load(sys.argv[1])
out = model.signatures["serving_default"](texts=tf.constant(json.loads(sys.argv[2])))
print(json.dumps({"output": [s.decode() for s in out["output"].numpy()],
                  "lengths": out["lengths"].numpy().tolist(),
                  "tokens": out["tokens"].numpy().tolist()}))
"""


@pytest.mark.parametrize("task", ["seq2seq", "ctc"])
def test_a_task_trains_on_its_embedded_sample_and_serves_strings(tmp_path,
                                                                 task):
  model_dir, export_dir = tmp_path / "run", tmp_path / "exported"
  extra = (['--decoder_config={"units": 16, "embedding_dim": 8}',
            "--beam_width=3"] if task == "seq2seq" else ["--beam_width=4"])
  trained = run_script("train.py", f"--task={task}",
                       f"--model_dir={model_dir}", *TINY, *extra)
  assert trained.returncode == 0, trained.stderr[-3000:]
  summary = json.load(open(model_dir / "summary.json"))
  assert summary["test_examples"] == 400
  assert 0.0 <= summary["test_token_error_rate"]
  assert 0.0 <= summary["test_sequence_error_rate"] <= 1.0
  # Bytes that are not UTF-8 on stdin are replaced, as readers do.
  predicted = run_script("predict.py", f"--model_dir={model_dir}",
                         stdin=("\n".join(WORDS) + "\n").encode() +
                         b"CAF\xc9\n")
  assert predicted.returncode == 0, predicted.stderr[-3000:]
  lines = predicted.stdout.splitlines()
  assert [line.split("\t")[1] for line in lines] == WORDS + ["CAF\ufffd"]
  lines = lines[:len(WORDS)]
  exported = run_script("export.py", f"--model_dir={model_dir}",
                        f"--export_dir={export_dir}")
  assert exported.returncode == 0, exported.stderr[-3000:]
  served = subprocess.run(
      [sys.executable, "-c", LOAD, str(export_dir), json.dumps(WORDS)],
      capture_output=True, text=True, env=env(), check=True)
  outputs = json.loads(served.stdout.splitlines()[-1])
  assert outputs["output"] == [line.split("\t")[0] for line in lines]
  names = json.load(open(model_dir / "config.json"))["data"]["label_names"]
  for text, length, tokens in zip(outputs["output"], outputs["lengths"],
                                  outputs["tokens"]):
    assert text == " ".join(names[t] for t in tokens[:length])
    assert not any(tokens[length:])
  (tmp_path / "words.txt").write_text("READ  R IY D\nREAD  R EH D\n"
                                      "CAT  K AE T\n")
  evaluated = run_script("evaluate.py", f"--model_dir={model_dir}",
                         "--data_format=cmudict",
                         f"--data_path={tmp_path / 'words.txt'}")
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  metrics = json.loads(evaluated.stdout.splitlines()[-1])
  assert metrics["examples"] == 2  # READ's two pronunciations: one word


RESEARCH = '''
import tensorflow as tf
import maskmodels as mm
from maskmodels import masking


@mm.register_decoder("mean_context")
class MeanContextDecoder(mm.AttentionGRUDecoder):
  """Reads the mean of the real encoder steps instead of attending."""

  def _next_logits(self, outputs, source):
    context = masking.masked_mean(source.values, source.mask)
    context = tf.broadcast_to(context[:, None], tf.concat(
        [tf.shape(outputs)[:2], tf.shape(context)[1:]], 0))
    return self.logits(self.combine(tf.concat(
        [outputs, tf.cast(context, outputs.dtype)], -1)))


@mm.register_task("smoothed_seq2seq")
class SmoothedSeq2Seq(mm.Seq2SeqTask):
  """seq2seq whose training step adds the mean negative log probability
  over the target vocabulary (label smoothing, 0.1)."""

  def train_step(self, model, batch, loss_weights, total_weight):
    from maskmodels.tasks.seq2seq import decoder_io
    features, labels, _ = batch
    targets_in, _, _ = decoder_io(labels)
    logits = model.teacher_forced(features, targets_in, training=True)
    losses = self.compute_loss(labels, logits, True)
    smooth = -tf.reduce_mean(tf.nn.log_softmax(logits.outputs), axis=-1)
    mixed = 0.9 * losses + 0.1 * smooth
    objective = tf.reduce_sum(mixed * loss_weights) / total_weight
    return objective, {"output": logits, "losses": {"loss": losses}}
'''


def test_a_research_decoder_and_step_run_through_every_command(tmp_path):
  """A module outside the package registers a decoder and a task with a
  step of its own; train, evaluate and export find them with --import,
  and predict reads the SavedModel in a process that never imports the
  module."""
  (tmp_path / "g2p_research.py").write_text(RESEARCH)
  words = tmp_path / "words.txt"
  words.write_text("CAT  K AE T\nDOG  D AO G\nDOGS  D AO G Z\n")
  model_dir, export_dir = tmp_path / "run", tmp_path / "exported"
  common = ["--import=g2p_research", f"--model_dir={model_dir}"]
  steps = [
      ("train.py", common + TINY + [
          "--task=smoothed_seq2seq", "--decoder=mean_context",
          '--decoder_config={"units": 16}']),
      ("evaluate.py", common + ["--data_format=cmudict",
                                f"--data_path={words}"]),
      ("export.py", common + [f"--export_dir={export_dir}"]),
      ("predict.py", [f"--model_dir={export_dir}"]),
  ]
  outputs = {}
  for script, args in steps:
    result = run_script(script, *args, cwd=str(tmp_path),
                        stdin="CAT\nDOGS\n")
    assert result.returncode == 0, (script, result.stderr[-3000:])
    outputs[script] = result.stdout
  saved = json.load(open(model_dir / "config.json"))
  assert saved["train"]["task"] == "smoothed_seq2seq"
  assert saved["train"]["task_config"]["decoder"] == "mean_context"
  evaluated = json.loads(outputs["evaluate.py"].splitlines()[-1])
  assert evaluated["examples"] == 3 and "token_error_rate" in evaluated
  predicted = outputs["predict.py"].splitlines()
  assert [line.split("\t")[-1] for line in predicted] == ["CAT", "DOGS"], (
      outputs["predict.py"])
