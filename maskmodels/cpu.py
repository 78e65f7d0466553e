"""What the CPU offers the kernels that run on it."""

import os


def cpu_flags(cpuinfo="/proc/cpuinfo"):
  """The CPU's feature flags (``avx2``, ``avx512_bf16``...) as a set, or
  None if they cannot be read (not Linux)."""
  try:
    with open(cpuinfo) as f:
      line = next((line for line in f if line.startswith("flags")), "")
  except OSError:
    return None
  return set(line.partition(":")[2].split())


def onednn_below_avx512():
  """Whether oneDNN runs its AVX2 (or older) kernels here: the CPU has no
  AVX-512, or ``ONEDNN_MAX_CPU_ISA`` holds oneDNN below it. False when
  that cannot be told (not Linux)."""
  cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
  if cap not in ("ALL", "DEFAULT") and not cap.startswith(("AVX512",
                                                          "AVX10", "AMX")):
    return True
  flags = cpu_flags()
  return flags is not None and "avx512f" not in flags
