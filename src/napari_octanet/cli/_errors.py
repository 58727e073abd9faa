"""Errors that mean bad input from the user: reported in one line (:func:`error_line`), without a traceback."""

from __future__ import annotations

from ..core.checkpoint import CheckpointError
from ..core.devices import DeviceError
from ..core.files import error_line
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

__all__ = ["USER_ERRORS", "error_line"]
