"""The built wheel carries the manifest and the weights, and npe2 validates the installed wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return next(out.glob("napari_octanet-*.whl"))


def test_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "napari_octanet/napari.yaml" in names
    assert "napari_octanet/weights/octanet-lite-default.safetensors" in names
    assert "[napari.manifest]" in entry_points and "napari-octanet = napari_octanet:napari.yaml" in entry_points
    assert "octanet = napari_octanet.cli:main" in entry_points


def test_top_level_manifest_is_the_package_manifest() -> None:
    top, inner = REPO / "napari.yaml", REPO / "src" / "napari_octanet" / "napari.yaml"
    assert top.is_symlink() and top.resolve() == inner.resolve()


def test_npe2_validates_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = "import napari_octanet; print(napari_octanet.__file__)"
    located = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert located.stdout.startswith(str(target))
    npe2 = Path(sys.executable).with_name("npe2")
    result = subprocess.run(
        [str(npe2), "validate", "napari-octanet", "--imports"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "valid" in result.stdout, result.stdout + result.stderr
