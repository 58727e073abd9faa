"""The OCTA-Net model core: network, checkpoints, inference, training, metrics and data layouts.

No Qt and no napari here; usable from scripts, notebooks, the command line and GPU servers.
Submodules are imported on first use, so ``import napari_octanet.core`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Every module and package of core (a test keeps this complete), so ``core.measure`` and the like work.
_SUBMODULES = (
    "allocator",
    "batch",
    "centerline",
    "checkpoint",
    "devices",
    "evaluation",
    "files",
    "imageio",
    "inference",
    "layouts",
    "library",
    "measure",
    "metrics",
    "network",
    "preprocess",
    "progress",
    "quality",
    "registry",
    "scale",
    "synthetic",
    "thresholds",
    "training",
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
