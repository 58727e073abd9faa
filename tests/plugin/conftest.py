"""Plugin-test fixtures: every test gets an empty model library of its own (never the user's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_octanet.core.library import ENV_VAR


@pytest.fixture(autouse=True)
def model_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the docks save models to and list them from, for this test."""
    root = tmp_path / "model-library"
    monkeypatch.setenv(ENV_VAR, str(root))
    return root
