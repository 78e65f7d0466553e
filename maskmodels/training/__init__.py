"""Training: settings, strategies, the custom loop, checkpoints, the run."""

# optimization and strategy first: the config module reads their registries.
from maskmodels.training.optimization import (OPTIMIZERS, PRECISIONS,
                                              SCHEDULES, learning_rate_schedule,
                                              make_optimizer, set_precision)
from maskmodels.training.strategy import STRATEGIES, get_strategy, split_cpu
from maskmodels.training.config import (CheckpointConfig, DataConfig,
                                        ExperimentConfig, ModelConfig,
                                        RuntimeConfig, TrainConfig)
from maskmodels.training.actions import PREEMPTED_EXIT_CODE, TrainingInterrupted
from maskmodels.training.controller import Controller
from maskmodels.training.inference import TrainedRun, evaluate, load_trained
from maskmodels.training.model_dir import ModelDirectory
from maskmodels.training.prepare import (PreparedRun, Splits, prepare,
                                         read_splits)
from maskmodels.training.runner import Runner, train_and_evaluate
from maskmodels.training.trainer import NonFiniteLossError, Trainer
