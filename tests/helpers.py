"""Shared test helpers: tiny runs on synthetic reviews."""

import json
import os
import subprocess
import sys

import tensorflow as tf

from maskmodels import training
from maskmodels.data import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Settings of a small, fast model for the command-line tools.
TINY_FLAGS = ["--embedding_dim=16", "--conv_filters=16", "--gru_units=8",
              "--vocab_size=400", "--max_len=96", "--batch_size=32"]


def write_jsonl(path, count, seed, text_key="text", label_key="label"):
  """``count`` synthetic reviews as JSON Lines; returns ``path``."""
  texts, labels = synthetic.generate_reviews(count, seed=seed)
  with open(path, "w") as f:
    for text, label in zip(texts, labels):
      f.write(json.dumps({text_key: text,
                          label_key: ["neg", "pos"][label]}) + "\n")
  return str(path)


def tiny_config(data_path, **overrides):
  """A run of 12 steps of a small model on a JSON Lines file."""
  values = dict(
      data_format="jsonl", data_path=data_path, validation_fraction=0.2,
      vocab_size=400, max_len=96, num_buckets=3, embedding_dim=16,
      conv_filters=[16], kernel_size=3, pool_size=2, gru_units=[8],
      dropout=0.1, batch_size=16, train_steps=12, steps_per_loop=3,
      warmup_steps=2, checkpoint_every_steps=3, deterministic=True, seed=5)
  values.update(overrides)
  return training.ExperimentConfig.create(**values)


def checkpoint_values(model_dir):
  """``{name: value}`` of the latest checkpoint's model, optimizer and step."""
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
  names = sorted(name for name in reader.get_variable_to_shape_map()
                 if name.startswith(("model/", "optimizer/", "step")))
  return {name: reader.get_tensor(name) for name in names}


def env(**extra):
  """The environment of a command-line tool run by a test."""
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
              **extra)


def run_script(script, *args, stdin=None, cwd=ROOT, timeout=600, **extra_env):
  """Runs ``scripts/<script>`` in a fresh process."""
  return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script),
                         *args], capture_output=True, text=True,
                        env=env(**extra_env), input=stdin, timeout=timeout,
                        cwd=cwd)
