"""What a run's labels are: read by the data pipeline and by the tasks.

The input side is an input kind (``maskmodels.data.kinds``): token ids from
text, from word lists, or frames with lengths.
"""

import dataclasses
import importlib.resources


@dataclasses.dataclass(frozen=True)
class LabelSpec:
  """A task's labels, per example.

  Attributes:
    dtype: ``"int32"`` (class or tag indices) or ``"float32"`` (targets).
    per_token: False for one label per example (shape ``[]``), True for
      one per input step (shape ``[time]``, aligned with the steps: a
      word's tag, a frame's label).
    pad: the label of filler rows and pad steps; it never counts.
    sequence: a target sequence of its own length per example: int ids
      ``[references, length]`` (one row per acceptable target, each
      ``pad``-padded to the longest; a batch pads both axes), never cut.
      The lengths are the ids before the first ``pad``, so ``pad`` is no
      target's id.
  """
  dtype: str = "int32"
  per_token: bool = False
  pad: float = 0
  sequence: bool = False

  def __post_init__(self):
    if self.sequence and self.per_token:
      raise ValueError("A label is per token or a sequence of its own "
                       "length, not both.")


@dataclasses.dataclass(frozen=True)
class DefaultData:
  """Data shipped with the package: a task's ``--data_format=default``, or
  a format's data when no ``--data_path`` is given.

  Attributes:
    data_format: the reader's name (``"jsonl"``, ``"conllu"``).
    files: ``{split: file name}`` inside ``maskmodels/data``.
    description: one line for messages.
  """
  data_format: str
  files: dict
  description: str = ""

  def path(self, split):
    """A context manager yielding the local path of ``split``'s file."""
    if split not in self.files:
      from maskmodels.data.readers import UnknownSplit  # pylint: disable=import-outside-toplevel,cyclic-import
      raise UnknownSplit(f"the embedded data has no split {split!r}; "
                         f"expected one of {', '.join(self.files)}.")
    return importlib.resources.as_file(importlib.resources.files(
        "maskmodels.data").joinpath(self.files[split]))
