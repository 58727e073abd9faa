"""The batch pipeline in the core: progress events and a report instead of printing, the writer the
Segment dock shares, and the pixel-size rule of a batch."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage.io import imread, imsave

from napari_octanet.core.batch import (
    BatchOptions,
    ResultPaths,
    iter_segment_folder,
    segment_folder,
    write_result,
)
from napari_octanet.core.scale import PixelSizeRule
from napari_octanet.core.synthetic import synthetic_octa


def _scans(folder: Path, count: int, size: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        imsave(folder / f"s{seed}.png", synthetic_octa(size, seed=seed)[0], check_contrast=False)
    return folder


def test_a_batch_yields_what_to_say_and_returns_a_report_without_printing(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, out = _scans(tmp_path / "scans", 2), tmp_path / "out"
    (folder / "broken.png").write_bytes(b"not a png")
    options = BatchOptions(model=str(tiny_checkpoint), device="cpu", measure=True, fov_mm=3)
    batch = iter_segment_folder(folder, out, options)
    events = []
    while True:
        try:
            events.append(next(batch))
        except StopIteration as finished:
            report = finished.value
            break
    assert capsys.readouterr() == ("", "")
    kinds = [event.kind for event in events]
    assert kinds.count("written") == 2 and kinds.count("failure") == 1 and kinds[0] == "info"
    assert events[-1].done == events[-1].total == 3
    assert (report.scans, report.attempted, report.segmented, report.skipped) == (3, 3, 2, 0)
    assert len(report.failures) == 1 and "broken.png: not a readable image" in report.failures[0]
    assert report.measures == out / "measures.csv" and report.measures.is_file()

    again = segment_folder([folder / "s0.png", folder / "s1.png"], out, replace(options, measure=False))
    assert (again.skipped, again.attempted) == (2, 0), "results kept and skipped"


def test_a_loaded_model_is_taken_as_it_is_and_recorded_by_its_file(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from napari_octanet.core.checkpoint import load_model

    folder, out = _scans(tmp_path / "scans", 1), tmp_path / "out"
    report = segment_folder(folder, out, BatchOptions(model=load_model(tiny_checkpoint), device="cpu"))
    assert report.segmented == 1
    record = json.loads((out / "s0_segment.json").read_text())
    assert record["model"] == str(tiny_checkpoint.resolve()) and record["pixel_size_um"] is None


def test_write_result_writes_maps_mask_and_record_and_keeps_files_unless_asked(tmp_path: Path) -> None:
    probability = np.random.default_rng(0).random((32, 40)).astype(np.float32)
    mask = probability > 0.5
    written = write_result(tmp_path, "eye", probability, mask, {"source": "layer eye", "pixel_size_um": 9.87})
    paths = ResultPaths.at(tmp_path, "eye")
    assert written == [paths.probability, paths.mask]
    np.testing.assert_array_equal(tifffile.imread(paths.probability), probability)
    np.testing.assert_array_equal(imread(paths.mask) > 0, mask)
    record = json.loads(paths.record.read_text())
    assert record["pixel_size_um"] == 9.87 and set(record["outputs"]) == {"eye_probability.tif", "eye_vessels.png"}

    assert write_result(tmp_path, "eye", probability, ~mask) == [], "existing files are kept"
    np.testing.assert_array_equal(imread(paths.mask) > 0, mask)
    assert write_result(tmp_path, "eye", probability, ~mask, overwrite=True) == [paths.probability, paths.mask]
    np.testing.assert_array_equal(imread(paths.mask) > 0, ~mask)

    stack = write_result(tmp_path, "stack", np.stack([probability] * 3), np.stack([mask] * 3))
    assert stack[1].name == "stack_vessels.tif" and tifffile.imread(stack[1]).shape == (3, 32, 40)
    with tifffile.TiffFile(stack[0]) as tif:
        assert len(tif.pages) == 3, "a stack is written as pages, not as one colour image"
    assert not (tmp_path / "stack_segment.json").exists(), "no record asked for"


def test_the_pixel_size_rule_of_a_batch(tmp_path: Path) -> None:
    octa500 = tmp_path / "OCTA500_6M" / "scan.png"
    assert PixelSizeRule().of(octa500, 400) == pytest.approx(15.0)
    assert PixelSizeRule().of(tmp_path / "scan.png", 400) is None
    assert PixelSizeRule(pixel_size_um=9.0).of(octa500, 400) == 9.0, "given beats the folder"
    assert PixelSizeRule(fov_mm=3.0).of(octa500, 300) == pytest.approx(10.0)
    assert PixelSizeRule(9.87, 3.0).of(octa500, 304) == 9.87, "both given, agreeing"
    with pytest.raises(ValueError, match="pixel size 9.87 µm and field of view 6 mm disagree"):
        PixelSizeRule(9.87, 6.0).of(octa500, 304)
    assert not PixelSizeRule(pixel_size_um=9.0).needs_width(octa500)
    assert PixelSizeRule().needs_width(octa500) and not PixelSizeRule().needs_width(tmp_path / "scan.png")
    with pytest.raises(ValueError, match="pixel size 0.001 µm makes no sense"):
        BatchOptions(pixel_size_um=0.001).pixel_sizes.check()


def test_each_result_records_the_scans_confidence_and_flags_and_a_kept_result_keeps_them(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    folder, out = _scans(tmp_path / "scans", 2), tmp_path / "out"
    imsave(folder / "blank.png", np.full((64, 64), 7, dtype=np.uint8), check_contrast=False)
    options = BatchOptions(model=str(tiny_checkpoint), device="cpu")
    report = segment_folder(folder, out, options)
    assert set(report.quality) == {folder / "s0.png", folder / "s1.png", folder / "blank.png"}
    for source, checked in report.quality.items():
        record = json.loads((out / f"{source.stem}_segment.json").read_text())
        assert {key: record[key] for key in ("confidence", "flags")} == checked.to_dict()
    blank = report.quality[folder / "blank.png"]
    assert blank.confidence == 0.0 and [flag.name for flag in blank.flags] == ["featureless"]
    assert 0.0 <= report.quality[folder / "s0.png"].confidence <= 1.0

    # The confidence is what the run found, not a setting: another value recorded does not make the result
    # outdated (not even for --overwrite), and a kept result keeps it.
    record_path = out / "s0_segment.json"
    record_path.write_text(json.dumps({**json.loads(record_path.read_text()), "confidence": 0.1234}))
    for overwrite in (False, True):
        again = segment_folder(folder, out, replace(options, overwrite=overwrite))
        assert (again.skipped, again.attempted) == (3, 0)
        assert again.quality[folder / "s0.png"].confidence == 0.1234
        assert again.quality[folder / "blank.png"] == blank


def test_a_batch_assesses_scans_with_the_models_own_calibration(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from napari_octanet.core.checkpoint import load_model, save_checkpoint
    from napari_octanet.core.quality import PROVENANCE_KEY, Calibration

    constant = Calibration(("map_agreement",), (0.0,), 0.4242)
    model = save_checkpoint(
        tmp_path / "own.safetensors",
        load_model(tiny_checkpoint).network,
        provenance={PROVENANCE_KEY: constant.to_dict()},
    )
    report = segment_folder(
        _scans(tmp_path / "scans", 1), tmp_path / "out", BatchOptions(model=str(model), device="cpu")
    )
    assert [checked.confidence for checked in report.quality.values()] == [0.4242]
    assert json.loads((tmp_path / "out" / "s0_segment.json").read_text())["confidence"] == 0.4242


def test_the_scans_to_check_first_are_the_flagged_then_the_least_confident() -> None:
    from napari_octanet.core.batch import BatchReport
    from napari_octanet.core.quality import Flag, ScanQuality

    motion = (Flag("motion", "rows 3-9 shifted"),)
    quality = {
        Path(name): ScanQuality(confidence, flags)
        for name, confidence, flags in [
            ("good.png", 0.95, ()),
            ("worse.png", 0.80, ()),
            ("moved.png", 0.93, motion),
            ("worst.png", 0.70, ()),
            ("blank.png", 0.0, (Flag("featureless", "one value everywhere"),)),
            ("fine.png", 0.90, ()),
        ]
    }
    report = BatchReport(6, quality=quality)
    order = ["blank.png", "moved.png", "worst.png", "worse.png"]
    assert [path.name for path, _ in report.to_check_first(lowest=2)] == order
    assert [path.name for path, _ in report.to_check_first()] == [*order, "fine.png", "good.png"]
    assert BatchReport(0).to_check_first() == []
