"""The tests' own hang check: idle is a hang, busy is not, however loaded
the machine is."""

import subprocess
import sys

import pytest

from helpers import run_command

SLEEPER = ("print('working', flush=True)\n"
           "import time\n"
           "time.sleep(600)\n")
# Prints once, then works silently for 1.5 s of its own CPU time.
WORKER = ("import time\n"
          "print('working', flush=True)\n"
          "start = time.process_time()\n"
          "while time.process_time() - start < 1.5:\n"
          "  pass\n"
          "print('done', flush=True)\n")


def test_a_command_idle_after_its_output_is_a_hang():
  with pytest.raises(AssertionError, match="did not exit: idle"):
    run_command([sys.executable, "-c", SLEEPER], bound=1.0, timeout=60)


def test_a_silent_command_at_work_on_a_loaded_machine_is_not_a_hang():
  """Four busy processes on the machine's cores: the worker's silence
  lasts well past the bound, but it is at work, so it runs to its end."""
  hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
          for _ in range(4)]
  try:
    result = run_command([sys.executable, "-c", WORKER], bound=1.0,
                         timeout=120)
  finally:
    for hog in hogs:
      hog.kill()
      hog.wait()
  assert result.returncode == 0 and result.stdout.split() == ["working",
                                                              "done"]
  assert result.exit_seconds < 1.0
