"""End to end: data -> vocabulary -> model -> training -> evaluation.

``train_and_evaluate`` is what ``scripts/train.py`` runs; ``load_trained``
and ``predict`` serve ``scripts/evaluate.py`` and ``scripts/predict.py``.
A model directory holds everything needed afterwards::

    config.json  vocab.txt  checkpoint, ckpt-<step>.*  best/  train/  eval/
    history.json  summary.json  curves.png
"""

import dataclasses
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from maskmodels import atomic_files
from maskmodels.data import pipeline, readers, text
from maskmodels.training import controller as controller_lib
from maskmodels.training import optimization
from maskmodels.training.run_config import VOCAB_FILE, RunConfig
from maskmodels.training.strategy import is_chief
from maskmodels.training.trainer import Trainer


@dataclasses.dataclass
class Splits:
  """The examples of a run: train, validation and (maybe empty) test."""
  train: readers.Examples
  validation: readers.Examples
  test: readers.Examples = None


def read_splits(config):
  """Reads the run's data and carves the validation split from train."""
  if config.data_format == "default":
    train, test = readers.read_default("train"), readers.read_default("test")
  else:
    if not config.data_path:
      raise ValueError(f"data_path is required with data_format="
                       f"{config.data_format!r}.")
    train = readers.read_examples(config.data_format, config.data_path,
                                  config.train_split, config.text_column,
                                  config.label_column, config.class_names)
    test = None
    if config.data_format == "aclimdb" and config.test_split:
      test = readers.read_examples("aclimdb", config.data_path,
                                   config.test_split,
                                   class_names=train.class_names)
  train, validation = readers.split_validation(
      train, config.validation_fraction, config.seed)
  return Splits(train, validation, test)


def prepare_tokenizer(config, examples, model_dir, write_dir=None):
  """The run's tokenizer: the model directory's vocabulary, or a new one.

  A new vocabulary is written to ``write_dir`` (default ``model_dir``); a
  non-chief worker passes its temporary directory, as every worker learns the
  same vocabulary from the same data.
  """
  path = os.path.join(model_dir, VOCAB_FILE)
  if not os.path.exists(path):
    path = os.path.join(write_dir or model_dir, VOCAB_FILE)
    start = time.perf_counter()
    vocab = text.learn_vocabulary(examples.texts, config.tokenizer,
                                  config.vocab_size)
    text.write_vocabulary(vocab, path)
    logging.info("Learned a %s vocabulary of %d tokens in %.1f s.",
                 config.tokenizer, len(vocab), time.perf_counter() - start)
  return text.build_tokenizer(config.tokenizer, path, config.num_oov_buckets)


def build_model(config, vocab_size, strategy):
  """The run's model, with its weights created under ``strategy``."""
  with strategy.scope():
    model = config.build_model(vocab_size)
    model(tf.zeros([1, 1], tf.int32), training=False)
  return model


def _check_resumable(config, model_dir):
  try:
    saved = RunConfig.load(model_dir)
  except FileNotFoundError:
    return
  mismatches = config.architecture_mismatches(saved)
  if mismatches and tf.train.latest_checkpoint(model_dir):
    raise ValueError(
        f"Cannot resume from {model_dir}: its checkpoint was trained with a "
        f"different model or vocabulary ({'; '.join(mismatches)}). Use a new "
        f"--model_dir, or the same settings.")


def train_and_evaluate(config, model_dir, strategy):
  """Trains (or resumes) a run in ``model_dir`` and evaluates it.

  Returns:
    The run summary (also written to ``summary.json``).
  """
  start = time.perf_counter()
  if config.deterministic and config.jit_compile:
    raise ValueError("--deterministic and --jit_compile cannot be combined: "
                     "XLA has no deterministic gradient for max-pooling. "
                     "Choose one.")
  keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  optimization.set_precision(config.precision)
  os.makedirs(model_dir, exist_ok=True)
  splits = read_splits(config)
  config = dataclasses.replace(config, class_names=splits.train.class_names)
  if isinstance(strategy, tf.distribute.TPUStrategy) and not (
      config.static_shapes):
    logging.info("TPU: padding every batch to its bucket's edge "
                 "(static shapes).")
    config = dataclasses.replace(config, static_shapes=True)
  _check_resumable(config, model_dir)
  chief = is_chief(strategy)
  write_dir = model_dir if chief else controller_lib.worker_temp_dir(
      model_dir, strategy)
  tokenizer = prepare_tokenizer(config, splits.train, model_dir, write_dir)
  if chief:
    config.save(model_dir)
  boundaries = None
  if config.num_buckets > 1:
    lengths = pipeline.token_lengths(splits.train.texts, tokenizer,
                                     config.max_len, config.truncation)
    boundaries = pipeline.length_boundaries(lengths, config.num_buckets)
  pipeline_config = config.pipeline_config(boundaries)
  eval_pipeline_config = config.pipeline_config(boundaries, evaluation=True)
  full_batches = len(splits.train) // config.batch_size
  steps_per_epoch = max(1, full_batches if config.static_shapes else
                        math.ceil(len(splits.train) / config.batch_size))
  total_steps = config.train_steps or config.epochs * steps_per_epoch

  model = build_model(config, tokenizer.vocab_size, strategy)
  with strategy.scope():
    optimizer = optimization.make_optimizer(
        config.optimizer, optimization.learning_rate_schedule(
            config.lr_schedule, config.learning_rate, total_steps,
            config.warmup_steps), config.weight_decay, config.precision)
    optimizer.build(model.trainable_variables)
  trainer = Trainer(model, optimizer, strategy, clip_norm=config.clip_norm,
                    jit_compile=config.jit_compile)
  controller = controller_lib.Controller(
      trainer, model_dir, config.checkpoint_every_steps,
      config.keep_checkpoints, steps_per_loop=config.steps_per_loop,
      check_gradients=config.precision != "mixed_float16")

  def train_input(context):
    dataset = pipeline.make_dataset(splits.train, tokenizer, pipeline_config,
                                    True, context).repeat()
    # On resume, skip what earlier runs consumed: the order is seeded.
    per_step = context.num_replicas_in_sync // context.num_input_pipelines
    return dataset.skip(controller.step_value * per_step)

  def eval_input(examples):
    dataset = pipeline.make_dataset(examples, tokenizer,
                                    eval_pipeline_config, False)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return strategy.experimental_distribute_dataset(
        dataset.with_options(options))

  history = controller.fit(
      strategy.distribute_datasets_from_function(train_input),
      eval_input(splits.validation), total_steps, steps_per_epoch,
      examples_per_step=config.batch_size)
  summary = {
      "steps": controller.step_value, "epochs": total_steps / steps_per_epoch,
      "train_examples": len(splits.train),
      "validation_examples": len(splits.validation),
      "best_validation_accuracy": controller.best_value,
      "train_examples_per_second": controller.examples_per_second,
      "padded_step_fraction": history["train"][-1][1].get(
          "padded_fraction") if history["train"] else None,
  }
  if splits.test is not None:
    if config.evaluate_checkpoint == "best":
      controller.restore_best()
    test = trainer.evaluate(eval_input(splits.test))
    summary.update(test_accuracy=test["accuracy"], test_loss=test["loss"],
                   test_examples=int(test["examples"]))
  summary["wall_seconds"] = time.perf_counter() - start
  if chief:
    atomic_files.write_json(os.path.join(model_dir, "summary.json"), summary,
                            indent=2)
  controller.close()
  return summary


def load_trained(model_dir):
  """``(config, tokenizer, model)`` of a trained model directory.

  Restores the checkpoint ``config.evaluate_checkpoint`` names: the best
  by validation accuracy (else the latest), or the final one.
  """
  config = RunConfig.load(model_dir)
  optimization.set_precision(config.precision)
  tokenizer = text.build_tokenizer(config.tokenizer,
                                   os.path.join(model_dir, VOCAB_FILE),
                                   config.num_oov_buckets)
  model = build_model(config, tokenizer.vocab_size, tf.distribute.get_strategy())
  path = controller_lib.best_or_latest_checkpoint(
      model_dir, prefer_best=config.evaluate_checkpoint == "best")
  if path is None:
    raise FileNotFoundError(f"No checkpoint in {model_dir}; train first.")
  controller_lib.restore_weights(model, path)
  return config, tokenizer, model


def evaluate(model_dir, examples):
  """Loss, accuracy and example count of a trained model on ``examples``."""
  config, tokenizer, model = load_trained(model_dir)
  if list(examples.class_names) != list(config.class_names):
    raise ValueError(f"The data's classes {examples.class_names} differ from "
                     f"the model's {config.class_names}.")
  dataset = pipeline.make_dataset(examples, tokenizer,
                                  config.pipeline_config(evaluation=True),
                                  False)
  trainer = Trainer(model, None, tf.distribute.get_strategy())
  return trainer.evaluate(dataset)


def predict(config, tokenizer, model, texts, batch_size=64):
  """Class probabilities ``[len(texts), classes]`` for raw strings."""
  probabilities = []
  for start in range(0, len(texts), batch_size):
    ids = tokenizer.encode(texts[start:start + batch_size],
                           config.inference_max_len,
                           config.truncation).to_tensor()
    logits = model(ids, training=False)
    probabilities.append(tf.nn.softmax(tf.cast(logits, tf.float32)).numpy())
  return (np.concatenate(probabilities) if probabilities else
          np.zeros((0, len(config.class_names)), np.float32))
