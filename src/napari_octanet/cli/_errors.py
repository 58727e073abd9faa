"""Errors that mean bad input from the user: reported in one line, without a traceback."""

from __future__ import annotations

from ..core.checkpoint import CheckpointError
from ..core.devices import DeviceError
from ..core.imageio import ImageReadError
from ..core.layouts import LayoutError
from ..core.preprocess import InputError
from ..core.registry import ModelNotFoundError

USER_ERRORS: tuple[type[BaseException], ...] = (
    CheckpointError,
    DeviceError,
    ImageReadError,
    InputError,
    LayoutError,
    ModelNotFoundError,
    FileNotFoundError,
    FileExistsError,
    MemoryError,
    ValueError,
)
