"""MultiWorkerMirroredStrategy with 2 local worker processes (TF_CONFIG)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def start_workers(model_dir, cluster, *extra):
  """Starts one train.py process per worker of ``cluster``."""
  workers = []
  for index in range(len(cluster["worker"])):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
               TF_CONFIG=json.dumps({"cluster": cluster,
                                     "task": {"type": "worker",
                                              "index": index}}))
    workers.append(subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
         "--strategy=multi_worker_mirrored", f"--model_dir={model_dir}",
         "--embedding_dim=16", "--conv_filters=16", "--gru_units=8",
         "--vocab_size=400", "--max_len=96", "--batch_size=32", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT))
  return workers


@pytest.mark.slow
def test_two_workers_train_and_only_the_chief_checkpoints(tmp_path):
  model_dir = str(tmp_path / "run")
  cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
  workers = start_workers(model_dir, cluster, "--train_steps=8",
                          "--steps_per_loop=4", "--checkpoint_every_steps=4",
                          "--members=naive_bayes",
                          "--naive_bayes_buckets=4099")
  outputs = [w.communicate(timeout=900) for w in workers]
  for worker, (_, err) in zip(workers, outputs):
    assert worker.returncode == 0, err[-3000:]
  latest = tf.train.latest_checkpoint(model_dir)
  assert latest and latest.endswith("ckpt-8")
  reader = tf.train.load_checkpoint(latest)
  assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 8
  # Each worker counted the naive Bayes ratios before training, and the
  # member trained: two [4099, 2] tables (ratios, kernel), both non-zero.
  tables = [reader.get_tensor(name) for name, shape in
            reader.get_variable_to_shape_map().items()
            if name.startswith("model/") and shape == [4099, 2]]
  assert len(tables) == 2 and all(abs(t).max() > 0 for t in tables)
  assert not [n for n in os.listdir(model_dir) if n.startswith(".worker_tmp")]
  assert "held-out test accuracy" in outputs[0][0]


@pytest.mark.slow
def test_sigterm_to_one_worker_checkpoints_all_and_the_rerun_resumes(
    tmp_path):
  model_dir = str(tmp_path / "run")
  cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
  args = ("--train_steps=400", "--steps_per_loop=2",
          "--checkpoint_every_steps=1000")
  workers = start_workers(model_dir, cluster, *args)
  deadline = time.time() + 600
  while not os.path.exists(os.path.join(model_dir, "train")):
    assert time.time() < deadline and all(w.poll() is None for w in workers)
    time.sleep(0.5)
  time.sleep(5)  # some loops of steps, before any interval checkpoint
  workers[1].send_signal(signal.SIGTERM)  # a non-chief worker is preempted
  outputs = [w.communicate(timeout=600) for w in workers]
  for worker, (_, err) in zip(workers, outputs):
    assert worker.returncode == 75, err[-3000:]
  chief_err = outputs[0][1]
  stopped_at = int(re.search(r"Stopped by SIGTERM at step (\d+)",
                             chief_err).group(1))
  assert 0 < stopped_at < 400
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
  assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == stopped_at

  cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
  workers = start_workers(model_dir, cluster, *args)
  outputs = [w.communicate(timeout=900) for w in workers]
  for worker, (_, err) in zip(workers, outputs):
    assert worker.returncode == 0, err[-3000:]
  assert f"at step {stopped_at}." in outputs[0][1]  # "Resumed from ..."
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-400")


@pytest.mark.slow
def test_a_killed_worker_is_named_and_both_workers_resume(tmp_path):
  model_dir = str(tmp_path / "run")
  cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
  args = ("--train_steps=200", "--steps_per_loop=2",
          "--checkpoint_every_steps=4")
  workers = start_workers(model_dir, cluster, *args)
  deadline = time.time() + 600
  seen = 0
  while seen < 8:
    assert time.time() < deadline and all(w.poll() is None for w in workers)
    latest = tf.train.latest_checkpoint(model_dir)
    seen = int(latest.rsplit("-", 1)[1]) if latest else 0
    time.sleep(0.2)
  workers[1].kill()  # SIGKILL: no chance to checkpoint or say goodbye
  start = time.time()
  _, err = workers[0].communicate(timeout=300)
  workers[1].communicate(timeout=60)
  assert workers[0].returncode == 69, err[-3000:]
  assert re.search(r"error: Lost worker /job:worker/replica:0/task:1 of the "
                   r"cluster during training", err), err[-3000:]
  assert "Traceback" not in err
  assert time.time() - start < 120
  last = int(tf.train.latest_checkpoint(model_dir).rsplit("-", 1)[1])

  cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
  workers = start_workers(model_dir, cluster, *args)
  outputs = [w.communicate(timeout=900) for w in workers]
  for worker, (_, err) in zip(workers, outputs):
    assert worker.returncode == 0, err[-3000:]
  assert f"at step {last}." in outputs[0][1]  # "Resumed from ..."
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-200")
