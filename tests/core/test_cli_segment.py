"""``octanet segment``, ``measure``, ``evaluate`` and ``train`` with pixel sizes, and the batch's leftovers:
row names, ``--overwrite`` on a table, a bad device with every result kept, one-line warnings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage.io import imsave

from builders import make_pairs_tree
from napari_octanet.cli import build_parser, main
from napari_octanet.core.synthetic import synthetic_octa


def _scan(path: Path, seed: int = 0, size: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, synthetic_octa(size, seed=seed)[0], check_contrast=False)
    return path


def _segment(*arguments: str, checkpoint: Path) -> int:
    return main(["segment", *arguments, "--model", str(checkpoint), "--device", "cpu"])


def _rows(table: Path) -> list[dict[str, str]]:
    with table.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _record(path: Path) -> dict[str, object]:
    return json.loads(path.read_text())


@pytest.fixture
def inference_calls(monkeypatch: pytest.MonkeyPatch) -> list[float | None]:
    """The pixel size each call of the core inference was given (the calls go on to the real one)."""
    from napari_octanet.core.batch import scan

    calls: list[float | None] = []
    real = scan.segment

    def recording(model: object, image: np.ndarray, **options: object) -> object:
        calls.append(options.get("pixel_size_um"))  # type: ignore[arg-type]
        return real(model, image, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(scan, "segment", recording)
    return calls


def test_the_parsers_defaults_are_the_core_options() -> None:
    from napari_octanet.cli.segment import options_from
    from napari_octanet.core.batch import BatchOptions

    assert options_from(build_parser().parse_args(["segment", "a.png", "--out", "o"])) == BatchOptions()


def test_measures_rows_are_named_by_the_path_below_the_inputs_common_parent(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    first, second = _scan(tmp_path / "a" / "scan.png", 1), _scan(tmp_path / "b" / "scan.png", 2)
    out = tmp_path / "out"
    assert _segment(str(first), str(second), "--out", str(out), "--measure", checkpoint=tiny_checkpoint) == 0
    assert {row["file"] for row in _rows(out / "measures.csv")} == {"a/scan.png", "b/scan.png"}
    masks = [str(out / "a" / "scan_vessels.png"), str(out / "b" / "scan_vessels.png")]
    assert main(["measure", *masks, "--masks", "--out", str(tmp_path / "m.csv")]) == 0
    assert {row["file"] for row in _rows(tmp_path / "m.csv")} == {"a/scan_vessels.png", "b/scan_vessels.png"}


def test_overwrite_on_an_existing_table_replaces_the_table_only(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, out = tmp_path / "scans", tmp_path / "out"
    for seed in range(2):
        _scan(folder / f"s{seed}.png", seed)
    assert _segment(str(folder), "--out", str(out), "--measure", checkpoint=tiny_checkpoint) == 0
    results = {path: path.stat().st_mtime_ns for path in out.iterdir() if path.name != "measures.csv"}
    (out / "measures.csv").write_text("an old table")
    capsys.readouterr()
    assert _segment(str(folder), "--out", str(out), "--measure", checkpoint=tiny_checkpoint) == 2
    assert "measures.csv already exists" in capsys.readouterr().err
    assert _segment(str(folder), "--out", str(out), "--measure", "--overwrite", checkpoint=tiny_checkpoint) == 0
    captured = capsys.readouterr()
    assert "2 image(s) already have results" in captured.err and "segmented" not in captured.err
    assert {path: path.stat().st_mtime_ns for path in results} == results, "no scan segmented again"
    assert {row["file"] for row in _rows(out / "measures.csv")} == {"s0.png", "s1.png"}


def test_overwrite_rewrites_results_of_another_version(tmp_path: Path, tiny_checkpoint: Path) -> None:
    scan, out = _scan(tmp_path / "in" / "scan.png"), tmp_path / "out"
    assert _segment(str(scan), "--out", str(out), checkpoint=tiny_checkpoint) == 0
    record = _record(out / "scan_segment.json")
    assert set(record["outputs"]) == {"scan_probability.tif", "scan_vessels.png"}  # type: ignore[arg-type]
    (out / "scan_segment.json").write_text(json.dumps({**record, "version": "0.1.0"}))
    mask = out / "scan_vessels.png"
    before = mask.stat().st_mtime_ns
    assert _segment(str(scan), "--out", str(out), checkpoint=tiny_checkpoint) == 0
    assert mask.stat().st_mtime_ns == before, "kept without --overwrite"
    assert _segment(str(scan), "--out", str(out), "--overwrite", checkpoint=tiny_checkpoint) == 0
    assert mask.stat().st_mtime_ns != before and _record(out / "scan_segment.json")["version"] != "0.1.0"


def test_a_bad_device_is_reported_when_every_result_is_kept(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan, out = _scan(tmp_path / "in" / "scan.png"), tmp_path / "out"
    assert _segment(str(scan), "--out", str(out), checkpoint=tiny_checkpoint) == 0
    capsys.readouterr()
    assert main(["segment", str(scan), "--out", str(out), "--model", str(tiny_checkpoint), "--device", "tpu"]) == 2
    error = capsys.readouterr().err
    assert "'tpu'" in error and "already have results" not in error


def test_an_image_read_warning_is_one_line(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planar = tmp_path / "planar.tif"
    colour = np.stack([synthetic_octa(64, seed=seed)[0] for seed in range(3)])
    tifffile.imwrite(planar, colour, photometric="rgb", planarconfig="separate", metadata=None)
    assert _segment(str(planar), "--out", str(tmp_path / "out"), checkpoint=tiny_checkpoint) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "planar.tif" in line]
    assert lines == [
        f"warning: {planar}: read as one colour image (its tags say planar RGB, from a program other "
        "than tifffile); if it holds slices, save each slice as its own file"
    ]


def test_matching_scans_are_listed_once_per_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    masks, scans = tmp_path / "masks", tmp_path / "scans"
    for i in range(4):
        image, label = synthetic_octa(64, seed=i)
        _scan(scans / f"{i}.png", i)
        masks.mkdir(exist_ok=True)
        imsave(masks / f"{i}.png", label.astype(np.uint8) * 255, check_contrast=False)
    listed: list[Path] = []
    real = Path.iterdir

    def iterdir(self: Path):  # type: ignore[no-untyped-def]
        listed.append(self)
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    assert main(["measure", str(masks), "--masks", "--scans", str(scans), "--out", str(tmp_path / "m.csv")]) == 0
    assert listed.count(scans) == 1 and len(_rows(tmp_path / "m.csv")) == 4


def test_every_result_records_its_pixel_size_and_a_change_is_refused(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str], inference_calls: list[float | None]
) -> None:
    scan = _scan(tmp_path / "in" / "scan.png")
    unknown, given = tmp_path / "unknown", tmp_path / "given"
    assert _segment(str(scan), "--out", str(unknown), "--measure", checkpoint=tiny_checkpoint) == 0
    assert _record(unknown / "scan_segment.json")["pixel_size_um"] is None
    assert _rows(unknown / "measures.csv")[0]["pixel_size_um"] == ""
    assert _segment(str(scan), "--out", str(given), "--fov-mm", "0.64", "--measure", checkpoint=tiny_checkpoint) == 0
    assert _record(given / "scan_segment.json")["pixel_size_um"] == pytest.approx(10.0)
    assert float(_rows(given / "measures.csv")[0]["pixel_size_um"]) == pytest.approx(10.0)
    assert inference_calls == [None, pytest.approx(10.0)]
    capsys.readouterr()
    assert _segment(str(scan), "--out", str(given), "--pixel-size", "12", checkpoint=tiny_checkpoint) == 2
    assert "was made with 10 µm per pixel (now 12 µm per pixel)" in capsys.readouterr().err
    assert _segment(str(scan), "--out", str(given), "--pixel-size", "10", checkpoint=tiny_checkpoint) == 0
    assert "already have results" in capsys.readouterr().err, "the same pixel size, given another way"


def test_an_octa500_folder_states_the_pixel_size(
    tmp_path: Path, tiny_checkpoint: Path, inference_calls: list[float | None]
) -> None:
    scan = _scan(tmp_path / "OCTA500_3M" / "scan.png", size=96)
    assert _segment(str(scan), "--out", str(tmp_path / "out"), checkpoint=tiny_checkpoint) == 0
    assert inference_calls == [pytest.approx(3000 / 96)]
    assert _record(tmp_path / "out" / "scan_segment.json")["pixel_size_um"] == pytest.approx(3000 / 96)


def test_scans_of_one_size_but_other_pixel_sizes_are_segmented_apart(
    tmp_path: Path, tiny_checkpoint: Path, inference_calls: list[float | None]
) -> None:
    three, six = _scan(tmp_path / "OCTA500_3M" / "a.png", 1), _scan(tmp_path / "OCTA500_6M" / "b.png", 2)
    assert _segment(str(three), str(six), "--out", str(tmp_path / "out"), checkpoint=tiny_checkpoint) == 0
    assert inference_calls == [pytest.approx(3000 / 64), pytest.approx(6000 / 64)]


def test_measure_and_evaluate_segment_at_the_pixel_size_given(
    tmp_path: Path, tiny_checkpoint: Path, inference_calls: list[float | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_octanet.core import evaluation

    scan = _scan(tmp_path / "scans" / "eye.png")
    model = ["--model", str(tiny_checkpoint), "--device", "cpu"]
    assert main(["measure", str(scan), *model, "--pixel-size", "9", "--out", str(tmp_path / "m.csv")]) == 0
    assert inference_calls == [9.0] and float(_rows(tmp_path / "m.csv")[0]["pixel_size_um"]) == 9.0

    given: list[float | None] = []
    real = evaluation.segment
    monkeypatch.setattr(evaluation, "segment", lambda *a, **k: given.append(k["pixel_size_um"]) or real(*a, **k))
    make_pairs_tree(tmp_path / "data", n=1, sets={"OCTA500_6M": ("test",)})
    assert main(["evaluate", str(tmp_path / "data"), *model]) == 0
    assert given == [pytest.approx(6000 / 64)], "the folder's field of view"
    assert main(["evaluate", str(tmp_path / "data"), *model, "--pixel-size", "12"]) == 0
    assert given[-1] == 12.0


def test_train_takes_the_pixel_size_for_every_data_set() -> None:
    from napari_octanet.cli.train import settings_from

    args = build_parser().parse_args(["train", "data", "--out", "m.safetensors", "--fov-mm", "3"])
    settings = settings_from(args)
    assert (settings.fov_mm, settings.pixel_size_um) == (3.0, None)
    args = build_parser().parse_args(["train", "data", "--out", "m.safetensors", "--pixel-size", "9.87"])
    assert settings_from(args).pixel_size_um == 9.87


def _clean_scan(path: Path, seed: int) -> Path:
    """A synthetic scan whose speckle spans a pixel or so, as a device's does: no flags (core.synthetic's is white
    pixel by pixel, which is flagged as low signal)."""
    from scipy.ndimage import gaussian_filter

    path.parent.mkdir(parents=True, exist_ok=True)
    smooth = gaussian_filter(synthetic_octa(64, seed=seed)[0].astype(np.float64), 0.6)
    imsave(path, np.round(smooth).astype(np.uint8), check_contrast=False)
    return path


def test_a_featureless_scan_gets_confidence_0_and_the_featureless_flag_in_the_record_and_the_table(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = tmp_path / "in" / "blank.png"
    blank.parent.mkdir()
    imsave(blank, np.zeros((64, 64), dtype=np.uint8), check_contrast=False)
    out = tmp_path / "out"
    assert _segment(str(blank), "--out", str(out), "--measure", checkpoint=tiny_checkpoint) == 0
    record = _record(out / "blank_segment.json")
    assert record["confidence"] == 0.0
    assert record["flags"] == [{"name": "featureless", "reason": "one value everywhere: no signal at all"}]
    assert {(row["confidence"], row["flags"]) for row in _rows(out / "measures.csv")} == {("0.0", "featureless")}
    assert f"  0.000  {blank}  (featureless: one value everywhere: no signal at all)" in capsys.readouterr().out


@pytest.fixture
def spread_checkpoint(tmp_path: Path, tiny_checkpoint: Path) -> Path:
    """The tiny network with a calibration of its own whose confidence varies from scan to scan (the default
    calibration gives its random maps 0 throughout)."""
    from napari_octanet.core.checkpoint import load_model, save_checkpoint
    from napari_octanet.core.quality import PROVENANCE_KEY, Calibration

    spread = Calibration(("vessel_contrast",), (1.0,), 0.5)
    network = load_model(tiny_checkpoint).network
    return save_checkpoint(tmp_path / "spread.safetensors", network, provenance={PROVENANCE_KEY: spread.to_dict()})


def test_segment_ends_with_the_flagged_scans_then_the_least_confident(
    tmp_path: Path, spread_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    clean = [_clean_scan(folder / f"c{seed}.png", seed) for seed in range(7)]
    noisy = _scan(folder / "noisy.png", 9)  # white speckle: flagged as low signal
    assert _segment(str(folder), "--out", str(out), "--measure", checkpoint=spread_checkpoint) == 0
    printed = capsys.readouterr().out.splitlines()
    start = printed.index(
        "scans to check first (1 flagged, then the 5 of lowest confidence; confidence = predicted Dice):"
    )
    block = printed[start + 1 :]
    confidence = {path: _record(out / f"{path.stem}_segment.json")["confidence"] for path in [*clean, noisy]}
    assert block[0].startswith(f"  {confidence[noisy]:.3f}  {noisy}  (") and "low_signal: " in block[0]
    assert len(set(confidence.values())) == len(confidence), "a spread of confidences to sort"
    lowest = sorted(clean, key=lambda path: confidence[path])[:5]
    assert block[1:] == [f"  {confidence[path]:.3f}  {path}" for path in lowest]
    rows = {row["file"]: row for row in _rows(out / "measures.csv") if row["region"] == "whole"}
    assert "low_signal" in rows["noisy.png"]["flags"].split("; ") and rows["c0.png"]["flags"] == ""
    assert float(rows["c0.png"]["confidence"]) == confidence[clean[0]]


def test_measure_takes_the_confidence_from_segmenting_or_from_the_record_beside_a_mask(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    scan, out = _clean_scan(tmp_path / "in" / "eye.png", 3), tmp_path / "out"
    assert _segment(str(scan), "--out", str(out), checkpoint=tiny_checkpoint) == 0
    recorded = _record(out / "eye_segment.json")["confidence"]
    model = ["--model", str(tiny_checkpoint), "--device", "cpu"]
    assert main(["measure", str(scan), *model, "--out", str(tmp_path / "scans.csv")]) == 0
    assert {row["confidence"] for row in _rows(tmp_path / "scans.csv")} == {str(recorded)}, "segmented alike"
    assert main(["measure", str(out), "--masks", "--out", str(tmp_path / "masks.csv")]) == 0
    assert {(row["confidence"], row["flags"]) for row in _rows(tmp_path / "masks.csv")} == {(str(recorded), "")}
    (out / "eye_segment.json").unlink()
    assert main(["measure", str(out), "--masks", "--out", str(tmp_path / "unknown.csv")]) == 0
    assert {(row["confidence"], row["flags"]) for row in _rows(tmp_path / "unknown.csv")} == {("", "")}
