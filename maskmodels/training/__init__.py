"""Training: strategies, the custom loop, checkpoints and the end-to-end run."""

from maskmodels.training.controller import (PREEMPTED_EXIT_CODE, Controller,
                                             TrainingInterrupted)
from maskmodels.training.experiment import (evaluate, load_trained, predict,
                                            read_splits, train_and_evaluate)
from maskmodels.training.optimization import (OPTIMIZERS, PRECISIONS,
                                              SCHEDULES, learning_rate_schedule,
                                              make_optimizer, set_precision)
from maskmodels.training.run_config import RunConfig
from maskmodels.training.strategy import STRATEGIES, get_strategy, split_cpu
from maskmodels.training.trainer import NonFiniteLossError, Trainer
