"""Plugin-test fixtures: an empty model library of its own for every test (never the user's), one
torch thread, and the notifications a test's dock showed."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest
import torch
from napari.utils import notifications

from napari_octanet.core.library import ENV_VAR


@pytest.fixture(autouse=True)
def one_torch_thread() -> Generator[None, None, None]:
    """Tiny convolutions run fastest on one thread, and this machine's other cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The notifications shown, by kind, instead of napari's pop-ups."""
    messages: dict[str, list[str]] = {"error": [], "info": [], "warning": []}
    for kind in messages:
        monkeypatch.setattr(notifications, f"show_{kind}", messages[kind].append)
    return messages


@pytest.fixture(autouse=True)
def model_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the docks save models to and list them from, for this test."""
    root = tmp_path / "model-library"
    monkeypatch.setenv(ENV_VAR, str(root))
    return root
