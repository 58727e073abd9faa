"""The OCTA-Net network: ResNeSt encoder, SCS decoders, SRS fine stage, named configurations.

The configurations need no torch; the modules (and torch) load on first use of a network class,
so that readers and other light code can use the configuration constants cheaply.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import CONFIGS, LITE, PAPER, NetworkConfig, get_config

_LAZY = {"OctaNet": "octanet", "OctaNetOutput": "octanet", "count_parameters": "octanet"}

__all__ = ["CONFIGS", "LITE", "PAPER", "NetworkConfig", "OctaNet", "OctaNetOutput", "count_parameters", "get_config"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
