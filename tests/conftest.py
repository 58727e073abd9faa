"""Fixtures shared by the core and plugin tests: a tiny checkpoint, registered for the test only.

Nothing here imports Qt or napari, so the core tests stay Qt-free.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tiny_models import TINY


@dataclass(frozen=True)
class RegisteredCheckpoint:
    name: str
    path: Path


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint of the tiny network (seeded random weights) in the test's folder."""
    import torch

    from napari_octanet.core.checkpoint import save_checkpoint
    from napari_octanet.core.network import OctaNet

    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny.safetensors", OctaNet(TINY))


@pytest.fixture
def registered_tiny(tiny_checkpoint: Path) -> Iterator[RegisteredCheckpoint]:
    """The tiny checkpoint in the process-wide registry; every name registered during the test is removed after."""
    from napari_octanet.core.registry import registry

    before = set(registry.names())
    entry = registry.register(tiny_checkpoint, name="tiny-test")
    yield RegisteredCheckpoint(entry.name, entry.path)
    for name in set(registry.names()) - before:
        registry.unregister(name)
