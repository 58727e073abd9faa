"""Writing results safely: never half a file, never a surprise after the work is done.

Every file napari-octanet writes (checkpoints, masks, probability maps, layers saved from napari)
goes through :func:`write_atomically`; every command checks its output folder with
:func:`ensure_writable_folder` before it starts work that could be lost.
"""

from __future__ import annotations

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
