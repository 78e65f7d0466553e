"""Decisions stay with their owners: the shared code names no input kind,
feature or task (the kinds, label specs and tasks decide for themselves;
``../shared/DESIGN.md``)."""

import ast
import os

from helpers import ROOT
import maskmodels as mm

# The shared rooms: the run, the pipeline, the commands, serving.
SHARED = ["maskmodels/training", "maskmodels/data/pipeline.py",
          "maskmodels/commands", "maskmodels/serving.py"]
# Feature names of the built-in kinds (besides the contract's "lengths").
FEATURES = {"ids", "frames", "chars", "words"}


def _files():
  for part in SHARED:
    path = os.path.join(ROOT, part)
    if os.path.isfile(path):
      yield path
      continue
    for name in sorted(os.listdir(path)):
      if name.endswith(".py"):
        yield os.path.join(path, name)


def _names_a_kind(node):
  """Whether ``node`` reads a kind's name (``kind.name``, ``x.kind.like``)."""
  return isinstance(node, ast.Attribute) and node.attr in ("name", "like") and (
      "kind" in ast.unparse(node.value))


def violations(source, forbidden):
  """``[(line, code)]`` of ``source``'s comparisons with, or lookups of, a
  name in ``forbidden`` (docstrings and other strings may name them)."""
  found = []

  def strings(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
      return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
      return [v for element in node.elts for v in strings(element)]
    return []

  for node in ast.walk(ast.parse(source)):
    hit = False
    if isinstance(node, ast.Compare):
      operands = [node.left] + node.comparators
      hit = any(s in forbidden for operand in operands
                for s in strings(operand)) or any(
                    _names_a_kind(operand) for operand in operands)
    elif isinstance(node, ast.Subscript):
      hit = any(s in forbidden for s in strings(node.slice))
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
      hit = node.func.attr in ("get", "pop", "setdefault") and any(
          s in forbidden for arg in node.args[:1] for s in strings(arg))
    if hit:
      found.append((node.lineno, ast.unparse(node)))
  return found


def test_shared_code_names_no_kind_feature_or_task():
  forbidden = set(mm.INPUT_KINDS.names()) | set(mm.TASKS.names()) | FEATURES
  found = {}
  for path in _files():
    with open(path) as f:
      hits = violations(f.read(), forbidden)
    if hits:
      found[os.path.relpath(path, ROOT)] = hits
  assert not found, found


def test_the_check_finds_each_kind_of_branch():
  """Planted: each way shared code has branched on a name is found."""
  forbidden = {"frames", "ids", "tagging"}
  for code in ('if kind.name == "frames": pass',
               'if self.kind.like != other: pass',
               'x = features["ids"]',
               'if "ids" not in features: pass',
               'y = meta.get("tagging", 1)',
               'if task in ("tagging", "other"): pass'):
    assert violations(code, forbidden), code
  assert not violations('"""Frames and ids are named in a docstring."""\n'
                        'x = {"frames": 1}\nname = "tagging"', forbidden)
