from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from skimage.io import imread, imsave

from napari_octanet.cli import main
from napari_octanet.core.checkpoint import load_model, save_checkpoint
from napari_octanet.core.inference import segment
from napari_octanet.core.network import OctaNet
from tiny_models import TINY


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny.safetensors", OctaNet(TINY))


def test_segment_writes_a_map_and_a_mask_per_input(tmp_path: Path, checkpoint: Path) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    imsave(scans / "a.png", np.random.default_rng(0).integers(0, 255, (40, 50), dtype=np.uint8), check_contrast=False)
    tifffile.imwrite(scans / "b.tif", np.random.default_rng(1).integers(0, 65535, (64, 64), dtype=np.uint16))
    code = main(["segment", str(scans), "--out", str(tmp_path / "out"), "--model", str(checkpoint), "--device", "cpu"])
    assert code == 0
    probability = tifffile.imread(tmp_path / "out" / "a_probability.tif")
    mask = imread(tmp_path / "out" / "a_vessels.png")
    assert probability.shape == mask.shape == (40, 50)
    assert probability.dtype == np.float32 and set(np.unique(mask)) <= {0, 255}
    assert tifffile.imread(tmp_path / "out" / "b_probability.tif").shape == (64, 64)


def test_segment_with_rotations_and_flips(tmp_path: Path, checkpoint: Path) -> None:
    image = np.random.default_rng(2).integers(0, 255, (64, 64), dtype=np.uint8)
    imsave(tmp_path / "a.png", image, check_contrast=False)
    for flag, out in (([], "plain"), (["--tta"], "tta")):
        assert (
            main(["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / out), "--model", str(checkpoint), *flag])
            == 0
        )
    model = load_model(checkpoint)
    for out, tta in (("plain", False), ("tta", True)):
        expected = segment(model, image, device="cpu", tta=tta).fine
        np.testing.assert_allclose(tifffile.imread(tmp_path / out / "a_probability.tif"), expected, atol=1e-5)


def test_fixed_threshold(tmp_path: Path, checkpoint: Path) -> None:
    image = tmp_path / "a.png"
    imsave(image, np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8), check_contrast=False)
    out = tmp_path / "out"
    assert main(["segment", str(image), "--out", str(out), "--model", str(checkpoint), "--threshold", "0.5"]) == 0
    probability = tifffile.imread(out / "a_probability.tif")
    np.testing.assert_array_equal(imread(out / "a_vessels.png") > 0, probability > 0.5)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["segment", "missing.png", "--out", "o"], "missing.png does not exist"),
        (["segment", "{image}", "--out", "o", "--model", "nowhere.safetensors"], "nowhere.safetensors"),
        (["segment", "{image}", "--out", "o", "--model", "{checkpoint}", "--threshold", "2"], "outside"),
        (["segment", "{image}", "--out", "o", "--model", "{checkpoint}", "--device", "tpu"], "tpu"),
        (["evaluate", "{empty}", "--model", "{checkpoint}"], "layout"),
    ],
)
def test_user_errors_are_one_line_without_traceback(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    image = tmp_path / "a.png"
    imsave(image, np.zeros((64, 64), np.uint8), check_contrast=False)
    (tmp_path / "empty").mkdir()
    values = {"image": str(image), "checkpoint": str(checkpoint), "empty": str(tmp_path / "empty")}
    code = main([a.format(**values) for a in arguments])
    error = capsys.readouterr().err
    assert code == 2
    assert message in error and "Traceback" not in error


def test_info_prints_the_config(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(checkpoint)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["configuration"] == "tiny" and info["network"]["blocks"] == [1, 1, 1, 1]


def test_export_half(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "half.safetensors"
    assert main(["export", str(checkpoint), str(out), "--half"]) == 0
    assert out.stat().st_size < checkpoint.stat().st_size
