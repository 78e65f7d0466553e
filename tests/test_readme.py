"""The README's and docs/extending.md's examples and commands stay true."""

import json
import pathlib
import re
import shlex
import sys

import pytest

from helpers import EXIT_BOUND, ROOT, run_script

README = pathlib.Path(ROOT, "README.md")
EXTENDING = pathlib.Path(ROOT, "docs", "extending.md")


def _block(marker, language, page=README):
  text = page.read_text()
  return re.search(re.escape(f"<!-- {marker}: run by tests/test_readme.py -->")
                   + rf"\s*```{language}\n(.*?)```", text, re.S).group(1)


def test_the_readme_is_short_and_opens_with_its_two_commands():
  lines = README.read_text().splitlines()
  assert len(lines) <= 250
  blocks = re.findall(r"```bash\n(.*?)```", "\n".join(lines[:20]), re.S)
  assert [b.strip() for b in blocks] == [
      "pip install -e . && python scripts/train.py --strategy=mirrored",
      'pip install -e ".[test]" && python -m pytest']
  with open(pathlib.Path(ROOT, ".ci", "run")) as f:
    assert 'pip install -e ".[test]" && python -m pytest' in f.read()


def test_the_conv1d_demo_shows_keras_reading_padding_and_maskmodels_not(
    capsys):
  namespace = {"__name__": "readme_demo"}
  exec(compile(_block("conv1d-demo", "python"), "README.md", "exec"),
       namespace)
  printed = capsys.readouterr().out.splitlines()
  changes = {line.split(":")[0]: float(line.rsplit(" ", 1)[1])
             for line in printed}
  assert changes["Sequential"] > 1e-4  # the textbook model reads padding
  assert changes["SequenceModel"] == 0.0


def test_research_example_runs_and_is_registered():
  block = _block("research-example", "python")
  assert len(block.strip().splitlines()) <= 40
  namespace = {"__name__": "readme_example"}
  exec(compile(block, "README.md", "exec"), namespace)  # raises if not invariant
  import maskmodels as mm
  assert mm.ENCODERS.get("residual_dilated_cnn") is namespace[
      "ResidualDilatedCNN"]


def _commands():
  """The README's research commands as argument lists per script."""
  lines = _block("research-commands", "bash", EXTENDING).replace("\\\n",
                                                                 " ")
  commands = []
  for line in lines.splitlines():
    words = shlex.split(line)
    assert words[:2] == ["python", f"scripts/{words[1][8:]}"], words
    commands.append((words[1][8:], words[2:]))
  return commands


@pytest.fixture(scope="module")
def research_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp("research")
  (folder / "my_research.py").write_text(_block("research-module", "python",
                                                EXTENDING))
  return folder


def test_research_module_passes_the_checker_battery(research_dir):
  sys.path.insert(0, str(research_dir))
  try:
    import my_research  # pylint: disable=import-outside-toplevel,import-error
  finally:
    sys.path.remove(str(research_dir))
  import maskmodels as mm
  from maskmodels import testing
  features = testing.random_sequences(6, 12, dim=8, seed=2)
  testing.assert_layer(lambda **kw: my_research.ConvAttention(8, **kw),
                       features)
  testing.assert_layer(lambda **kw: my_research.MeanStd(**kw), features)
  testing.assert_padding_invariant(
      mm.SequenceModel.classifier(50, 2, encoder="conv_attention",
                                  encoder_config={"channels": 8},
                                  pooling="mean_std"),
      testing.random_sequences(6, 12, vocab_size=50))
  # Its data format reads through the library's reader entry point.
  lines = research_dir / "train.tsv"
  lines.write_text("pos\tA superb film.\nneg\tDull.\n")
  examples = mm.data.read_examples("labelled_lines", str(lines))
  assert examples.texts == ["A superb film.", "Dull."]
  assert examples.labels == ["pos", "neg"]
  lines.write_text("no tab here\n")
  with pytest.raises(mm.InputError, match="train.tsv:1: expected"):
    mm.data.read_examples("labelled_lines", str(lines))


def test_research_commands_train_resume_evaluate_export_and_serve(
    research_dir):
  tiny = ["--embedding_dim=16", "--vocab_size=400", "--max_len=64",
          "--batch_size=32", "--steps_per_loop=3", "--warmup_steps=1"]
  results = {}
  for script, args in _commands():
    args = [a.replace("runs/", f"{research_dir}/runs/") for a in args]
    extra = tiny + ["--train_steps=3"] if script == "train.py" else []
    result = run_script(script, *args, *extra, cwd=str(research_dir))
    assert result.returncode == 0, (script, result.stderr[-3000:])
    results[script] = result
  config = json.load(open(research_dir / "runs/research/config.json"))
  assert config["model"]["encoder_config"] == {"channels": 32, "heads": 2}
  assert config["train"]["task_config"] == {"label_smoothing": 0.1}
  # The command evaluates the weights the run tested, on the same split.
  summary = json.load(open(research_dir / "runs/research/summary.json"))
  evaluated = json.loads(results["evaluate.py"].stdout.splitlines()[-1])
  assert evaluated["examples"] == summary["test_examples"] == 2000
  assert evaluated["accuracy"] == pytest.approx(summary["test_accuracy"],
                                                abs=1e-6)
  label, probability, text = results["predict.py"].stdout.split("\t")
  assert label in ("neg", "pos") and text.strip() == "A superb film."

  for result in results.values():
    assert result.exit_seconds < EXIT_BOUND


def test_resuming_the_research_task_with_another_setting_is_refused(
    research_dir):
  """In-process: the task's own setting is checked on resume."""
  import maskmodels as mm  # pylint: disable=import-outside-toplevel
  from maskmodels import training  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, str(research_dir))
  try:
    import my_research  # noqa: F401  pylint: disable=import-outside-toplevel,import-error,unused-import
  finally:
    sys.path.remove(str(research_dir))
  model_dir = research_dir / "runs" / "research"
  if not (model_dir / "config.json").exists():
    pytest.skip("the commands test did not train the research model")
  saved = training.ModelDirectory(str(model_dir)).load_config()
  changed = saved.replace(task_config={"label_smoothing": 0.2})
  assert changed.resume_mismatches(saved) == [
      "task_config.label_smoothing: 0.1 in the model directory, 0.2 now"]
  assert mm.TASKS.get("smoothed").Config().label_smoothing == 0.1
