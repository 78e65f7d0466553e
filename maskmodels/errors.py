"""What can go wrong that is not a bug, and the exit status of each.

The command-line tools print each of these as one ``error:`` line and exit
with its status (``--traceback`` shows the traceback too); any other
exception is a bug and keeps its traceback, so a bug in library or
research code can be found.

====  =====================================================================
exit  meaning
====  =====================================================================
1     :class:`InputError`: data that cannot be used as given (a malformed
      line, an unknown label), a model directory of other settings
2     :class:`SettingError`: a flag's value (out of bounds, wrong type,
      unknown name, a path that names nothing)
65    :class:`DamagedFile`: a file of the model directory is damaged (not
      UTF-8, corrupt JSON, a checksum that does not match, no readable
      checkpoint)
66    cannot read a file (permission denied, an I/O error)
69    :class:`WorkerLost`: a multi-worker run lost a worker
73    a file stands where a folder is expected, or a folder where a file is
74    the disk is full (or over quota), or another I/O error while writing
75    stopped by SIGTERM or Ctrl-C after a checkpoint; rerun to resume
77    the folder is read-only, or writing to it is not permitted
====  =====================================================================
"""

import errno
import re

USAGE_EXIT_CODE = 2
DAMAGED_EXIT_CODE = 65
UNREADABLE_EXIT_CODE = 66
WORKER_LOST_EXIT_CODE = 69
NOT_A_DIRECTORY_EXIT_CODE = 73
DISK_FULL_EXIT_CODE = 74
PREEMPTED_EXIT_CODE = 75
READ_ONLY_EXIT_CODE = 77


class InputError(ValueError):
  """A data file or model directory that cannot be used as given.

  The message names the value at fault and what is allowed.
  """

  exit_code = 1


class SettingError(InputError):
  """A setting (a flag) whose value cannot be used: the message names the
  flag, the value and what is allowed."""

  exit_code = USAGE_EXIT_CODE


class DamagedFile(InputError):
  """A file of a model directory is damaged: not UTF-8, corrupt, or not
  what its checksum in ``config.json`` says."""

  exit_code = DAMAGED_EXIT_CODE


class ModelDirectoryInUse(InputError):
  """Another live run holds the model directory."""


class WorkerLost(RuntimeError):
  """A multi-worker run lost a peer; rerun every worker to resume."""

  exit_code = WORKER_LOST_EXIT_CODE


class EnvironmentFault(Exception):
  """The machine refused an operation on a path: a full disk, a read-only
  folder, a file where a folder is expected, a file that cannot be read.

  Attributes:
    path: the path at fault.
    exit_code: the fault's exit status (see the module docstring).
  """

  def __init__(self, message, path, exit_code):
    super().__init__(message)
    self.path = path
    self.exit_code = exit_code


# errno -> (cause, what to do, exit status).
_FAULTS = {
    errno.ENOSPC: ("the disk is full", "free space there (or choose a "
                   "folder on another disk) and rerun", DISK_FULL_EXIT_CODE),
    errno.EDQUOT: ("the disk quota is exceeded", "free space there (or "
                   "choose a folder on another disk) and rerun",
                   DISK_FULL_EXIT_CODE),
    errno.EROFS: ("the file system is read-only", "choose a writable "
                  "folder", READ_ONLY_EXIT_CODE),
    errno.EACCES: ("permission denied", "choose a folder you may write to, "
                   "or change its permissions", READ_ONLY_EXIT_CODE),
    errno.EPERM: ("operation not permitted", "choose a folder you may write "
                  "to", READ_ONLY_EXIT_CODE),
    errno.ENOTDIR: ("a file stands where a folder is expected", "choose "
                    "another path, or move the file away",
                    NOT_A_DIRECTORY_EXIT_CODE),
    errno.EEXIST: ("a file stands where a folder is expected", "choose "
                   "another path, or move the file away",
                   NOT_A_DIRECTORY_EXIT_CODE),
    errno.EISDIR: ("a folder stands where a file is expected", "choose "
                   "another path", NOT_A_DIRECTORY_EXIT_CODE),
    errno.EIO: ("an I/O error", "check the disk, then rerun",
                DISK_FULL_EXIT_CODE),
}
# The same causes as TensorFlow's file system reports them in a message.
_MESSAGES = (("No space left on device", errno.ENOSPC),
             ("Disk quota exceeded", errno.EDQUOT),
             ("Read-only file system", errno.EROFS),
             ("Permission denied", errno.EACCES),
             ("Not a directory", errno.ENOTDIR),
             ("Is a directory", errno.EISDIR),
             ("File exists", errno.EEXIST),
             ("Input/output error", errno.EIO))


def _tensorflow_path(message):
  """The path a TensorFlow file-system message names, if it names one
  (device names such as ``/job:worker/...`` are not paths)."""
  for found in re.finditer(r"((?:/|\w+://)[^\s:;,'\"]+)", message):
    if not found.group(1).startswith(("/job", "/device", "/replica")):
      return found.group(1)
  return ""


def environment_fault(error, path=None, reading=False):
  """The :class:`EnvironmentFault` an ``OSError`` (or a TensorFlow file
  error) means, or None if it is not one a user can cause or meet.

  Args:
    error: the exception.
    path: the path the operation was on (else the one the error names).
    reading: the operation read (a permission error is then a file that
      cannot be read, exit status 66).
  """
  code = getattr(error, "errno", None) if isinstance(error, OSError) else None
  message = str(error)
  if code is None:
    for text, number in _MESSAGES:
      if text in message:
        code = number
        break
  if code not in _FAULTS:
    return None
  cause, advice, exit_code = _FAULTS[code]
  where = path or (getattr(error, "filename", None) if isinstance(
      error, OSError) else None) or _tensorflow_path(message) or "a file"
  if reading and code in (errno.EACCES, errno.EPERM, errno.EIO):
    cause, advice, exit_code = (f"it cannot be read ({cause})", "check its "
                                "permissions and the disk",
                                UNREADABLE_EXIT_CODE)
  return EnvironmentFault(f"{where}: {cause}; {advice}.", where, exit_code)
