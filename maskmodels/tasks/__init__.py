"""Tasks: the problem a run solves (labels, model, loss, metrics, serving).

Built in: ``classification`` (one text, one class), ``tagging`` (one tag
per word), and outputs of their own length: ``ctc`` and ``seq2seq`` (an
attention decoder). Research code registers its own with
:func:`maskmodels.register_task`.
"""

from maskmodels.tasks.base import (DefaultData, LabelSpec, NoSettings, Task,
                                   build_task, model_outputs, per_item)
from maskmodels.tasks.classification import ClassificationTask
from maskmodels.tasks.tagging import TaggingTask
from maskmodels.tasks.ctc import CTCTask
from maskmodels.tasks.seq2seq import Seq2SeqTask
from maskmodels.tasks.targets import TargetSequenceTask
