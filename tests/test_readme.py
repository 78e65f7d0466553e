"""The README's commands and research example stay true."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme():
  return (ROOT / "README.md").read_text()


def test_research_example_runs_and_is_registered():
  text = _readme()
  marker = "<!-- research-example: run by tests/test_readme.py -->"
  block = re.search(re.escape(marker) + r"\s*```python\n(.*?)```", text,
                    re.S).group(1)
  assert len(block.strip().splitlines()) <= 40
  namespace = {"__name__": "readme_example"}
  exec(compile(block, "README.md", "exec"), namespace)  # raises if not invariant
  import maskmodels as mm
  assert mm.ENCODERS.get("residual_dilated_cnn") is namespace[
      "ResidualDilatedCNN"]


def test_ci_runs_the_readme_test_command():
  command = re.search(r"```bash\n(pip install -e [^\n]*pytest[^\n]*)\n```",
                      _readme()).group(1)
  assert command in (ROOT / ".ci" / "run").read_text()
