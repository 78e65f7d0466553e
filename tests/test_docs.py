"""The docs stay true: generated parts current, links alive, help useful."""

import os
import re
import subprocess
import sys

from helpers import ROOT, env
import maskmodels as mm
from maskmodels.cli import sections
from maskmodels.commands import evaluate, export, predict, train


def test_generated_docs_and_tables_are_current():
  """docs/cli.md, docs/results.md, docs/performance.md's tables and the
  README's results table are what scripts/make_docs.py writes now (in a
  fresh process: no test's registrations)."""
  result = subprocess.run([sys.executable, "scripts/make_docs.py", "--check"],
                          cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]


def test_every_link_of_the_readme_and_the_docs_exists():
  pages = ["README.md", "BUILD.md", "CHANGELOG.md"] + [
      os.path.join("docs", name) for name in os.listdir(
          os.path.join(ROOT, "docs"))]
  missing = []
  for page in pages:
    text = re.sub(r"```.*?```", "", open(os.path.join(ROOT, page)).read(),
                  flags=re.S)
    for target in re.findall(r"\]\(([^)#\s\"']+)(?:#[^)]*)?\)", text):
      if "://" not in target and not os.path.exists(
          os.path.join(ROOT, os.path.dirname(page), target)):
        missing.append(f"{page}: {target}")
  assert not missing, missing


@mm.register_encoder("docs_research_encoder")
class ResearchEncoder(mm.Encoder):
  """Registered here, as research code would register it."""

  def call(self, inputs, mask=None, training=None):
    return inputs, mask


def test_version_prints_and_exits_0(capsys):
  import pytest  # pylint: disable=import-outside-toplevel
  from maskmodels import cli  # pylint: disable=import-outside-toplevel
  with pytest.raises(SystemExit) as exit_:
    cli.parse(predict.COMMAND, ["predict", "--version"])
  assert exit_.value.code == 0
  assert capsys.readouterr().out == f"maskmodels {mm.__version__}\n"


def test_helpshort_lists_each_command_s_flags_by_section_with_choices():
  for command in (train.COMMAND, evaluate.COMMAND, predict.COMMAND,
                  export.COMMAND):
    text = sections.help_text(command, mm.__version__)
    for section in sections.sections(command):
      assert f"\n{section.title}" in text
      for flag in section.flags:
        assert f"  {flag.usage}" in text, (command.name, flag.name)
  text = sections.help_text(train.COMMAND, mm.__version__)
  encoder = re.search(r"--encoder=conv_gru  \[(.*?)\]", text).group(1)
  assert "docs_research_encoder" in encoder  # a research registration
  for title in ("Data", "Model", "encoder conv_gru", "Training",
                "Checkpoints", "Runtime", "Every command"):
    assert f"\n{title}:" in text or f"\n{title}\n" in text, title
  assert "--strategy=default  [one of default, mirrored, " in text
  assert "--optimizer=adam  [one of adam, adamw, rmsprop, sgd]" in text


def test_results_rows_never_average_runs_of_other_settings():
  """Runs with one command but another flagfile text are rows of their
  own; the README's table shows the most recently run settings."""
  sys.path.insert(0, os.path.join(ROOT, "scripts"))
  try:
    import make_docs  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.pop(0)
  base = dict(benchmark="japanese_vowels", version="0.4.0", split="test",
              cpu="CPU", extensions=[], wall_seconds=30.0,
              command="python scripts/train.py --flagfile=f --seed=0")
  records = [dict(base, value=0.90, settings="old", commit="aaaaaaa"),
             dict(base, value=0.92, settings="old", commit="aaaaaaa"),
             dict(base, value=0.99, settings="new", commit="bbbbbbb")]
  every = make_docs.accuracy_rows(records, latest_only=False)
  assert [(row[2], row[3]) for row in every] == [("91.00 ± 1.41", "2"),
                                                 ("99.00", "1")]
  latest = make_docs.accuracy_rows(records, latest_only=True)
  assert [(row[2], row[6]) for row in latest] == [("99.00",
                                                   "0.4.0 (bbbbbbb)")]
