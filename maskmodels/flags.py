"""absl flags shared by the scripts, and their mapping to a RunConfig."""

import dataclasses
import json

from absl import app, flags

from maskmodels.data import readers, text
from maskmodels.layers.conv_block import NORMALIZATIONS
from maskmodels.registry import ENCODERS, MODELS, POOLINGS
from maskmodels.training import optimization, strategy
from maskmodels.training.run_config import EVALUATE_CHECKPOINTS, RunConfig

FLAGS = flags.FLAGS
_DEFAULTS = RunConfig()


def define_model_dir_flag():
  flags.DEFINE_string("model_dir", None,
                      "Model directory: checkpoints, vocabulary, config, "
                      "summaries. A rerun with the same directory resumes.",
                      required=True)


def define_strategy_flags():
  flags.DEFINE_enum("strategy", "default", strategy.STRATEGIES,
                    "tf.distribute strategy.")
  flags.DEFINE_integer("num_cpu_devices", 0,
                       "For --strategy=mirrored without GPUs: logical CPU "
                       "devices (replicas); 0 = 2.", lower_bound=0)
  flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu.")


def define_data_flags():
  flags.DEFINE_enum("data_format", "default", ("default",) + readers.FORMATS,
                    "Data format; 'default' is the embedded dataset.")
  flags.DEFINE_string("data_path", "", "aclImdb root folder or data file.")
  flags.DEFINE_string("train_split", "train", "aclImdb training split.")
  flags.DEFINE_string("test_split", "test", "aclImdb test split ('' = none).")
  flags.DEFINE_string("text_column", "text", "CSV/TSV column or JSONL key.")
  flags.DEFINE_string("label_column", "label", "CSV/TSV column or JSONL key.")
  flags.DEFINE_float("validation_fraction", _DEFAULTS.validation_fraction,
                     "Fraction of train held out for validation.",
                     lower_bound=0.0, upper_bound=1.0)


def define_train_flags():
  """Every RunConfig setting as a flag."""
  define_data_flags()
  d = _DEFAULTS
  flags.DEFINE_enum("tokenizer", d.tokenizer, sorted(text.TOKENIZERS),
                    "Tokenizer.")
  flags.DEFINE_integer("vocab_size", d.vocab_size, "Vocabulary size.",
                       lower_bound=3)
  flags.DEFINE_integer("num_oov_buckets", d.num_oov_buckets,
                       "Hash buckets for unknown words.", lower_bound=1)
  flags.DEFINE_integer("max_len", d.max_len, "Tokens kept per text.",
                       lower_bound=1)
  flags.DEFINE_integer("eval_max_len", d.eval_max_len,
                       "Tokens kept per text in evaluation, prediction and "
                       "export (0: --max_len). A masked model reads any "
                       "length, so it may see whole texts at test time.",
                       lower_bound=0)
  flags.DEFINE_enum("truncation", d.truncation, text.TRUNCATIONS,
                    "Which tokens to keep of a long text.")
  flags.DEFINE_integer("num_buckets", d.num_buckets,
                       "Length buckets (1 = no bucketing).", lower_bound=1)
  flags.DEFINE_bool("static_shapes", d.static_shapes,
                    "Pad every batch to its bucket's edge (TPU).")
  flags.DEFINE_string("model", d.model, "Registered model name.")
  flags.DEFINE_string("encoder", d.encoder, "Registered encoder name.")
  flags.DEFINE_string("encoder_config", "",
                      "JSON keyword arguments for --encoder (overrides the "
                      "conv/GRU flags).")
  flags.DEFINE_integer("embedding_dim", d.embedding_dim, "Embedding width.",
                       lower_bound=1)
  flags.DEFINE_list("conv_filters", [str(v) for v in d.conv_filters],
                    "Filters of each conv block (empty: none).")
  flags.DEFINE_integer("kernel_size", d.kernel_size, "Conv kernel size.",
                       lower_bound=1)
  flags.DEFINE_integer("strides", d.strides, "Conv stride.", lower_bound=1)
  flags.DEFINE_integer("dilation_rate", d.dilation_rate, "Conv dilation.",
                       lower_bound=1)
  flags.DEFINE_integer("pool_size", d.pool_size,
                       "Max-pool size after each conv block (1: none).",
                       lower_bound=1)
  flags.DEFINE_list("gru_units", [str(v) for v in d.gru_units],
                    "Units of each GRU layer (empty: none).")
  flags.DEFINE_bool("bidirectional", d.bidirectional, "Bidirectional GRUs.")
  flags.DEFINE_string("pooling", d.pooling, "Registered pooling name.")
  flags.DEFINE_enum("normalization", d.normalization,
                    [n for n in NORMALIZATIONS if n] + ["none"],
                    "Conv block normalization.")
  flags.DEFINE_float("dropout", d.dropout, "Dropout rate.", lower_bound=0.0,
                     upper_bound=0.99)
  flags.DEFINE_float("token_dropout", d.token_dropout,
                     "Rate of zeroing whole token embeddings in training.",
                     lower_bound=0.0, upper_bound=0.99)
  flags.DEFINE_list("head_units", [], "Hidden layers of the head.")
  flags.DEFINE_integer("batch_size", d.batch_size, "Global batch size.",
                       lower_bound=1)
  flags.DEFINE_integer("epochs", d.epochs, "Epochs (unless --train_steps).",
                       lower_bound=1)
  flags.DEFINE_integer("train_steps", d.train_steps,
                       "Total train steps (0: --epochs).", lower_bound=0)
  flags.DEFINE_float("learning_rate", d.learning_rate, "Peak learning rate.",
                     lower_bound=0.0)
  flags.DEFINE_enum("lr_schedule", d.lr_schedule, optimization.SCHEDULES,
                    "Decay after warm-up.")
  flags.DEFINE_integer("warmup_steps", d.warmup_steps, "Warm-up steps.",
                       lower_bound=0)
  flags.DEFINE_enum("optimizer", d.optimizer, optimization.OPTIMIZERS,
                    "Optimizer.")
  flags.DEFINE_float("weight_decay", d.weight_decay, "AdamW weight decay.",
                     lower_bound=0.0)
  flags.DEFINE_float("clip_norm", d.clip_norm,
                     "Global gradient-norm clip (0: off).", lower_bound=0.0)
  flags.DEFINE_enum("precision", d.precision, optimization.PRECISIONS,
                    "Compute precision.")
  flags.DEFINE_bool("jit_compile", d.jit_compile, "Compile steps with XLA.")
  flags.DEFINE_integer("steps_per_loop", d.steps_per_loop,
                       "Train steps per tf.function call.", lower_bound=1)
  flags.DEFINE_integer("seed", d.seed, "Random seed.")
  flags.DEFINE_bool("deterministic", d.deterministic,
                    "Deterministic TensorFlow ops (slower).")
  flags.DEFINE_integer("checkpoint_every_steps", d.checkpoint_every_steps,
                       "Checkpoint interval.", lower_bound=1)
  flags.DEFINE_enum("evaluate_checkpoint", d.evaluate_checkpoint,
                    EVALUATE_CHECKPOINTS,
                    "Weights for the test pass, evaluation, prediction and "
                    "export: the best by validation accuracy, or the final "
                    "ones (a schedule that decays to zero usually ends best; "
                    "a small validation split picks noisily).")
  flags.DEFINE_integer("keep_checkpoints", d.keep_checkpoints,
                       "Checkpoints kept.", lower_bound=1)


def _ints(name):
  try:
    return [int(v) for v in FLAGS[name].value]
  except ValueError:
    raise app.UsageError(
        f"--{name}={','.join(FLAGS[name].value)}: expected comma-separated "
        f"integers.") from None


def run_config_from_flags():
  """A RunConfig from the parsed flags; a clear error for a bad value."""
  for name, registry in (("model", MODELS), ("encoder", ENCODERS),
                         ("pooling", POOLINGS)):
    if FLAGS[name].value not in registry:
      raise app.UsageError(
          f"--{name}={FLAGS[name].value!r} is not registered; choose one of "
          f"{', '.join(registry.names())}.")
  encoder_config = None
  if FLAGS.encoder_config:
    try:
      encoder_config = json.loads(FLAGS.encoder_config)
    except json.JSONDecodeError as error:
      raise app.UsageError(
          f"--encoder_config is not valid JSON: {error}") from None
  values = {f.name: FLAGS[f.name].value for f in dataclasses.fields(RunConfig)
            if f.name in FLAGS and f.name not in ("class_names",)}
  values.update(
      conv_filters=_ints("conv_filters"), gru_units=_ints("gru_units"),
      head_units=_ints("head_units"), encoder_config=encoder_config,
      normalization=None if FLAGS.normalization == "none" else
      FLAGS.normalization, clip_norm=FLAGS.clip_norm or None)
  if not 0.0 < values["validation_fraction"] < 1.0:
    raise app.UsageError(
        f"--validation_fraction={values['validation_fraction']}: must be "
        f"strictly between 0 and 1.")
  return RunConfig(**values)
