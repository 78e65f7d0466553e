"""The wheel installs the console commands, and they work outside a checkout."""

import os
import subprocess
import sys
import zipfile

import pytest

from helpers import ROOT, TINY_FLAGS, env


def _run(*command, cwd):
  return subprocess.run(command, capture_output=True, text=True, env=env(),
                        cwd=cwd, timeout=900)


@pytest.mark.slow
def test_commands_from_a_wheel_in_a_fresh_venv(tmp_path):
  wheels = tmp_path / "wheels"
  built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps",
               "--no-build-isolation", "-w", str(wheels), ROOT, cwd=ROOT)
  assert built.returncode == 0, built.stderr[-3000:]
  wheel = next(wheels.glob("maskmodels-*.whl"))
  # The embedded data travels in the wheel, the tagged sample with the
  # treebank's license and README (CC BY-SA 4.0).
  names = set(zipfile.ZipFile(wheel).namelist())
  for name in ("default_train.jsonl.gz", "default_test.jsonl.gz",
               "ewt_sample_train.conllu.gz", "ewt_sample_test.conllu.gz",
               "ud_ewt_LICENSE.txt", "ud_ewt_README.md", "ud_ewt_SAMPLE.md"):
    assert f"maskmodels/data/{name}" in names, name
  venv = tmp_path / "venv"
  # TensorFlow and the other dependencies come from this interpreter's
  # site-packages; maskmodels itself only from the wheel.
  created = _run(sys.executable, "-m", "venv", "--system-site-packages",
                 str(venv), cwd=tmp_path)
  assert created.returncode == 0, created.stderr
  python, bin_dir = venv / "bin" / "python", venv / "bin"
  installed = _run(str(python), "-m", "pip", "install", "--no-deps",
                   str(wheel), cwd=tmp_path)
  assert installed.returncode == 0, installed.stderr[-3000:]
  where = _run(str(python), "-c", "import maskmodels; print(maskmodels."
               "__file__)", cwd=tmp_path)
  assert where.stdout.startswith(str(venv)), where.stdout

  model_dir = str(tmp_path / "run")
  trained = _run(str(bin_dir / "maskmodels-train"), f"--model_dir={model_dir}",
                 *TINY_FLAGS, "--train_steps=4", "--steps_per_loop=2",
                 cwd=tmp_path)
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert "held-out test accuracy" in trained.stdout
  evaluated = _run(str(bin_dir / "maskmodels-evaluate"),
                   f"--model_dir={model_dir}", cwd=tmp_path)
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  assert '"examples": 2000' in evaluated.stdout
  exported = _run(str(bin_dir / "maskmodels-export"),
                  f"--model_dir={model_dir}",
                  f"--export_dir={tmp_path / 'export'}", cwd=tmp_path)
  assert exported.returncode == 0, exported.stderr[-3000:]
  predicted = _run(str(bin_dir / "maskmodels-predict"),
                   f"--model_dir={tmp_path / 'export'}", "A superb film.",
                   cwd=tmp_path)
  assert predicted.returncode == 0, predicted.stderr[-3000:]
  assert predicted.stdout.split("\t")[2].strip() == "A superb film."
  helped = _run(str(bin_dir / "maskmodels-train"), "--help", cwd=tmp_path)
  assert "Trains a masked sequence model" in helped.stdout
  assert os.path.exists(os.path.join(model_dir, "curves.png"))
