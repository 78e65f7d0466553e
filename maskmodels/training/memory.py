"""Resident memory of this process, for per-epoch reporting."""

import resource

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def peak_resident_mb():
  """Peak resident memory (MiB) since the last ``reset_peak``, or start.

  Reads ``VmHWM`` on Linux; elsewhere falls back to ``getrusage``, whose
  peak covers the whole process life.
  """
  try:
    with open(_STATUS) as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak():
  """Starts a new peak-memory window (Linux; a no-op elsewhere)."""
  try:
    with open(_CLEAR_REFS, "w") as f:
      f.write("5")
  except OSError:
    pass
