"""The machine a benchmark ran on, printed as its first line."""

import os
import platform

from maskmodels.training import optimization


def cpu_description():
  """The CPU model and the vector extensions that matter here."""
  model = platform.processor() or platform.machine()
  flags_line = ""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name") and model in ("", "x86_64"):
          model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
          flags_line = line
          break
  except OSError:
    pass
  wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni")
  return {"cpu": model, "cores": os.cpu_count(),
          "extensions": [f for f in wanted if f in flags_line.split()],
          "native_bfloat16": optimization.cpu_has_native_bfloat16()}
