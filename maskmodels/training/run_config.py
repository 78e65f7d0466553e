"""RunConfig: every setting of a training run, saved as JSON in the model dir."""

import dataclasses
import inspect
import json
import os

from maskmodels import atomic_files
from maskmodels.data import pipeline
from maskmodels.registry import ENCODERS, MODELS

CONFIG_FILE = "config.json"
# Which weights the test pass, evaluate.py, predict.py and export use.
EVALUATE_CHECKPOINTS = ("best", "final")
VOCAB_FILE = "vocab.txt"
# Fields that fix the model's weights' shapes or meaning: a checkpoint written
# under other values cannot be resumed.
ARCHITECTURE_FIELDS = (
    "tokenizer", "vocab_size", "num_oov_buckets", "model", "encoder",
    "encoder_config", "embedding_dim", "conv_filters", "kernel_size",
    "strides", "dilation_rate", "pool_size", "gru_units", "bidirectional",
    "pooling", "normalization", "head_units", "class_names",
    # A zero rate creates no seed variable, a positive one does.
    "dropout", "token_dropout")


@dataclasses.dataclass
class RunConfig:
  """Settings of one run; ``scripts/train.py`` fills it from flags."""
  # Data.
  data_format: str = "default"
  data_path: str = ""
  train_split: str = "train"
  test_split: str = "test"
  text_column: str = "text"
  label_column: str = "label"
  validation_fraction: float = 0.1
  class_names: list = None
  # Tokenization and batching.
  tokenizer: str = "word"
  vocab_size: int = 8000
  num_oov_buckets: int = 1
  max_len: int = 256
  eval_max_len: int = 0
  truncation: str = "head"
  num_buckets: int = 8
  static_shapes: bool = False
  # Model.
  model: str = "classifier"
  encoder: str = "conv_gru"
  encoder_config: dict = None
  embedding_dim: int = 64
  conv_filters: list = dataclasses.field(default_factory=lambda: [64])
  kernel_size: int = 5
  strides: int = 1
  dilation_rate: int = 1
  pool_size: int = 2
  gru_units: list = dataclasses.field(default_factory=lambda: [64])
  bidirectional: bool = True
  pooling: str = "max"
  normalization: str = "batch"
  dropout: float = 0.1
  token_dropout: float = 0.0
  head_units: list = dataclasses.field(default_factory=list)
  # Optimization.
  batch_size: int = 64
  epochs: int = 3
  train_steps: int = 0
  learning_rate: float = 3e-3
  lr_schedule: str = "cosine"
  warmup_steps: int = 50
  optimizer: str = "adam"
  weight_decay: float = 0.0
  clip_norm: float = 1.0
  precision: str = "float32"
  jit_compile: bool = False
  steps_per_loop: int = 20
  seed: int = 0
  deterministic: bool = False
  # Checkpoints.
  checkpoint_every_steps: int = 200
  evaluate_checkpoint: str = "best"
  keep_checkpoints: int = 3

  @property
  def inference_max_len(self):
    """Tokens kept per text in evaluation, prediction and export."""
    return self.eval_max_len or self.max_len

  def pipeline_config(self, bucket_boundaries=None, evaluation=False):
    """The input-pipeline settings of this run (training or evaluation)."""
    return pipeline.PipelineConfig(
        max_len=self.inference_max_len if evaluation else self.max_len,
        batch_size=self.batch_size,
        truncation=self.truncation, bucket_boundaries=bucket_boundaries,
        static_shapes=self.static_shapes, seed=self.seed)

  def model_kwargs(self):
    """Constructor arguments of the registered model class."""
    encoder_config = self.encoder_config
    if encoder_config is None:
      # The conv/GRU settings, as far as the encoder's constructor takes them.
      settings = dict(
          conv_filters=self.conv_filters, kernel_size=self.kernel_size,
          strides=self.strides, dilation_rate=self.dilation_rate,
          pool_size=self.pool_size, normalization=self.normalization,
          gru_units=self.gru_units, bidirectional=self.bidirectional,
          dropout=self.dropout)
      accepted = inspect.signature(ENCODERS.get(self.encoder)).parameters
      encoder_config = {k: v for k, v in settings.items() if k in accepted}
    return dict(num_classes=len(self.class_names),
                embedding_dim=self.embedding_dim, encoder=self.encoder,
                encoder_config=encoder_config, pooling=self.pooling,
                head_units=self.head_units, dropout=self.dropout,
                token_dropout=self.token_dropout)

  def build_model(self, vocab_size):
    """A new (unbuilt) model for a tokenizer emitting ``vocab_size`` ids."""
    return MODELS.get(self.model)(vocab_size=vocab_size, **self.model_kwargs())

  def save(self, model_dir):
    atomic_files.write_json(os.path.join(model_dir, CONFIG_FILE),
                            dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def load(cls, model_dir):
    """The config saved in ``model_dir``; a clear error if there is none."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"{path} not found: {model_dir} is not a maskmodels model directory "
          f"(train one with scripts/train.py --model_dir={model_dir}).")
    try:
      with open(path) as f:
        values = json.load(f)
    except json.JSONDecodeError as error:
      raise ValueError(f"{path} is corrupt: {error}") from None
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})

  def architecture_mismatches(self, other):
    """Names and values of architecture fields that differ from ``other``."""
    mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
    return [f"{name}: {theirs[name]!r} in the model directory, "
            f"{mine[name]!r} now" for name in ARCHITECTURE_FIELDS
            if mine[name] != theirs[name]]
