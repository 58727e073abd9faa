"""The top-level Python API: load_model, segment, measure, segment_folder; cheap to import."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage.io import imsave

import napari_octanet as octanet
from napari_octanet.core.synthetic import synthetic_octa

#: The README's "Python API" example, run as it stands (with scans/ holding one scan).
README_EXAMPLE = """
import napari_octanet as octanet
from napari_octanet.core.synthetic import synthetic_octa

image, _ = synthetic_octa(304, seed=0)  # or a scan of yours, as a 2D array
model = octanet.load_model("default")
result = octanet.segment(image, model=model, pixel_size_um=9.87)
result.mask, result.probability, result.notes
row = octanet.measure(result.mask, pixel_size_um=9.87)
row["vad"]
octanet.segment_folder("scans/", "results/", pixel_size_um=9.87)
"""


def test_import_is_cheap_and_says_its_version() -> None:
    code = "import sys, napari_octanet; print(napari_octanet.__version__, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["0.2.0", "False"]


def test_segment_gives_the_maps_the_mask_and_notes(tiny_checkpoint: Path) -> None:
    from napari_octanet.core.inference import Segmentation
    from napari_octanet.core.thresholds import DEFAULT_SPECK_SIZE, binarise

    model = octanet.load_model(tiny_checkpoint, device="cpu")
    image, _ = synthetic_octa(64, seed=0)
    result = octanet.segment(image, model=model, pixel_size_um=9.87, device="cpu")
    assert isinstance(result, Segmentation) and result.pixel_size_um == 9.87
    assert result.probability is result.fine and result.probability.shape == image.shape
    np.testing.assert_array_equal(result.mask, binarise(result.fine, "otsu", DEFAULT_SPECK_SIZE))
    fixed = octanet.segment(image, model=model, device="cpu", threshold=0.5, speck_size=0)
    np.testing.assert_array_equal(fixed.mask, fixed.probability > 0.5)


def test_segment_says_how_far_to_trust_each_scan_as_the_core_does(tiny_checkpoint: Path) -> None:
    from napari_octanet.core.quality import assess, model_calibration

    model = octanet.load_model(tiny_checkpoint, device="cpu")
    image, _ = synthetic_octa(64, seed=0)
    result = octanet.segment(image, model=model, device="cpu")
    (expected,) = assess(result, image, model_calibration(model.info.provenance))
    assert isinstance(result.confidence, float) and result.confidence == expected.confidence
    assert result.flags == expected.flags and "low_signal" in [flag.name for flag in result.flags]

    stack = np.stack([image, np.zeros_like(image)])
    both = octanet.segment(stack, model=model, device="cpu")
    assert isinstance(both.confidence, list) and both.confidence[0] == expected.confidence
    assert both.confidence[1] == 0.0 and [flag.name for flag in both.flags[1]] == ["featureless"]
    assert both.flags[0] == expected.flags


def test_measure_gives_the_whole_scan_row_of_the_csv(tmp_path: Path) -> None:
    from napari_octanet.cli import main

    image, label = synthetic_octa(304, seed=1)
    row = octanet.measure(label, pixel_size_um=9.87, scan=image)
    assert row["region"] == "whole" and row["vad"] == pytest.approx(100 * label.mean())
    imsave(tmp_path / "eye.png", image, check_contrast=False)
    imsave(tmp_path / "eye_vessels.png", label.astype(np.uint8) * 255, check_contrast=False)
    out = tmp_path / "m.csv"
    command = ["measure", str(tmp_path / "eye_vessels.png"), "--masks", "--scans", str(tmp_path)]
    assert main([*command, "--pixel-size", "9.87", "--out", str(out)]) == 0
    with out.open(newline="") as file:
        whole = next(csv.DictReader(file))
    assert list(whole) == ["file", "confidence", "flags", *row]
    assert whole["confidence"] == whole["flags"] == "", "a mask without a record of segment: unknown"
    assert all(whole[key] == ("" if value is None else str(value)) for key, value in row.items())
    assert octanet.measure(label)["units"] == "px" and "faz_area_px2" not in octanet.measure(label)


def test_segment_folder_runs_the_batch(tmp_path: Path, tiny_checkpoint: Path) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    for seed in range(2):
        imsave(scans / f"s{seed}.png", synthetic_octa(64, seed=seed)[0], check_contrast=False)
    options = {"model": str(tiny_checkpoint), "device": "cpu", "pixel_size_um": 9.87, "measure": True}
    report = octanet.segment_folder(scans, tmp_path / "out", **options)
    assert report.segmented == 2 and report.failures == []
    assert (tmp_path / "out" / "s1_vessels.png").is_file() and report.measures == tmp_path / "out" / "measures.csv"


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "scans").mkdir()
    imsave(tmp_path / "scans" / "eye.png", synthetic_octa(304, seed=2)[0], check_contrast=False)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(README_EXAMPLE, namespace)  # noqa: S102 - the README's own example
    assert namespace["result"].mask.any() and 0 < namespace["row"]["vad"] < 100  # type: ignore[attr-defined,index]
    assert (tmp_path / "results" / "eye_vessels.png").is_file()
