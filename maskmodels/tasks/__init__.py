"""Tasks: the problem a run solves (labels, model, loss, metrics, serving).

Built in: ``classification`` (one text, one class) and ``tagging`` (one tag
per word). Research code registers its own with
:func:`maskmodels.register_task`.
"""

from maskmodels.tasks.base import (DefaultData, LabelSpec, NoSettings, Task,
                                   build_task, model_outputs, per_item)
from maskmodels.tasks.classification import ClassificationTask
from maskmodels.tasks.tagging import TaggingTask
