"""Errors that mean bad input from the user: reported in one line, without a traceback."""

from __future__ import annotations

import errno

from ..core.checkpoint import CheckpointError
from ..core.devices import DeviceError
from ..core.imageio import ImageReadError
from ..core.layouts import LayoutError
from ..core.preprocess import InputError
from ..core.registry import ModelNotFoundError

#: Every OSError is here as a safety net: a path the system refuses (a folder where a file was
#: meant, no permission, a full disk) is the user's to fix, never a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    CheckpointError,
    DeviceError,
    ImageReadError,
    InputError,
    LayoutError,
    ModelNotFoundError,
    OSError,
    MemoryError,
    ValueError,
)

#: What to do about the system errors a user meets most, by errno.
_OS_FIXES = {
    errno.EACCES: "check its permissions, or choose another place",
    errno.EPERM: "check its permissions, or choose another place",
    errno.EROFS: "the file system is read-only; choose another place",
    errno.ENOSPC: "the disk is full; free some space or choose another place",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOENT: "check the path",
}


def error_line(error: BaseException) -> str:
    """The line a user error is reported with.

    An OSError raised by the system ("[Errno 13] Permission denied: 'x'") becomes the path, the
    system's reason and what to do; errors with a message of their own keep it.
    """
    if not isinstance(error, OSError) or error.strerror is None:
        return str(error)
    paths = [str(name) for name in (error.filename, error.filename2) if name is not None]
    where = f"{' -> '.join(paths)}: " if paths else ""
    fix = _OS_FIXES.get(error.errno) if error.errno is not None else None
    return f"{where}{error.strerror}" + (f"; {fix}" if fix else "")
