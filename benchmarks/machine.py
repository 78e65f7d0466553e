"""The machine a benchmark ran on, printed as its first line."""

import os
import platform

from maskmodels.training import optimization


def cpu_model():
  """The CPU's model name ("AMD EPYC ..."), or the machine type."""
  model = platform.processor()
  if model in ("", "x86_64"):
    try:
      with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f
                      if line.startswith("model name")), model)
    except OSError:
      pass
  return model or platform.machine()


def cpu_description():
  """The CPU model and the vector extensions that matter here."""
  flags = optimization.cpu_flags() or set()
  wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni")
  return {"cpu": cpu_model(), "cores": os.cpu_count(),
          "extensions": [f for f in wanted if f in flags],
          "native_bfloat16": optimization.cpu_has_native_bfloat16()}
