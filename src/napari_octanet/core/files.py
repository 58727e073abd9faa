"""Writing results safely: never half a file, never a surprise after the work is done.

Every file napari-octanet writes (checkpoints, masks, probability maps, layers saved from napari)
goes through :func:`write_atomically`; every command checks where it writes before it starts work
that could be lost: a folder with :func:`ensure_writable_folder`, a file with :func:`check_output_file`.
:func:`error_line` words a system error on a path for the user.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path


class OutputError(ValueError):
    """A place results cannot be written to; the message names it and the reason."""


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Have ``write`` create a temporary file beside ``path``, then rename it over ``path``.

    A crash, a full disk or a concurrent writer never leaves half a file, and the earlier file
    stays until the new one is whole. ``write`` creates the file with ``open()`` (as tifffile,
    scikit-image and safetensors' bytes do), so it gets the user's umask like any new file. The
    temporary name keeps ``path``'s suffix, for writers that choose the format by it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def ensure_writable_folder(folder: Path, *, create: bool = True) -> None:
    """Check that a file can be written in ``folder``, before any work starts.

    With ``create`` the folder is made now. Without it a missing folder is left for the first
    write to make (:func:`write_atomically` does), so that a run that ends up writing nothing
    leaves no empty folder behind, and the nearest folder above it that exists is checked instead.
    """
    place = folder if create else next(p for p in (folder, *folder.parents) if p.exists())
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        probe = place / f".octanet-write-test-{os.getpid()}-{threading.get_ident()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise OutputError(f"cannot write into {folder}: {error.strerror or error}") from None


def check_output_file(out: Path, *, overwrite: bool, example: str) -> None:
    """``out`` must be a file that may be written: not a folder, not an existing file unless ``overwrite``,
    in a folder this process can write to (a missing folder is left for the write to make).

    ``example`` is a file name the message suggests when ``out`` is a folder (``measures.csv``).
    """
    if out.is_dir():
        raise OutputError(f"{out} is a folder; give a file name, such as {out / example}")
    if out.exists() and not overwrite:
        raise OutputError(f"{out} already exists; choose another name, or add --overwrite to replace it")
    ensure_writable_folder(out.parent, create=False)


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


def failure_line(path: Path, error: BaseException) -> str:
    """How a file of a batch that failed is listed: the error's line, naming the file once."""
    text = error_line(error)
    return text if str(path) in text else f"{path}: {text}"
