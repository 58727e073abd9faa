"""``octanet measure``: masks or scans to one CSV, FAZ with scans, never over an existing file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from skimage.io import imread, imsave

from napari_octanet.cli import main
from napari_octanet.cli.measure import ImagesByStem
from napari_octanet.core.batch import MeasureTable
from napari_octanet.core.synthetic import synthetic_octa


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@pytest.fixture
def synthetic_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A synthetic 304-px scan and its vessel mask, in folders of their own, under the same stem."""
    image, label = synthetic_octa(304, seed=0)
    (tmp_path / "scans").mkdir()
    (tmp_path / "masks").mkdir()
    imsave(tmp_path / "scans" / "eye.png", image, check_contrast=False)
    imsave(tmp_path / "masks" / "eye.png", label.astype(np.uint8) * 255, check_contrast=False)
    return tmp_path / "scans", tmp_path / "masks"


def test_masks_alone_give_vessel_columns_in_pixels(tmp_path: Path, synthetic_pair: tuple[Path, Path]) -> None:
    _, masks = synthetic_pair
    out = tmp_path / "m.csv"
    assert main(["measure", str(masks), "--masks", "--out", str(out)]) == 0
    (row,) = read_rows(out)
    assert (row["file"], row["region"], row["units"]) == ("eye.png", "whole", "px")
    assert float(row["vad"]) == pytest.approx(100 * synthetic_octa(304, seed=0)[1].mean())
    assert not any(name.startswith("faz_") for name in row)


def test_masks_with_scans_and_fov_give_rings_and_faz(tmp_path: Path, synthetic_pair: tuple[Path, Path]) -> None:
    scans, masks = synthetic_pair
    out = tmp_path / "m.csv"
    code = main(
        ["measure", str(masks / "eye.png"), "--masks", "--scans", str(scans), "--fov-mm", "3", "--out", str(out)]
    )
    assert code == 0
    rows = read_rows(out)
    assert [row["region"] for row in rows] == ["whole", "fovea", "parafovea"]
    assert float(rows[0]["pixel_size_um"]) == pytest.approx(3000 / 304)
    assert 0.05 < float(rows[0]["faz_area_mm2"]) < 1.0
    assert rows[1]["faz_area_mm2"] == ""


def test_scans_are_segmented_then_measured(tmp_path: Path, tiny_checkpoint: Path, synthetic_pair) -> None:
    scans, _ = synthetic_pair
    out = tmp_path / "m.csv"
    assert main(["measure", str(scans), "--model", str(tiny_checkpoint), "--device", "cpu", "--out", str(out)]) == 0
    (row,) = read_rows(out)
    assert row["file"] == "eye.png" and "faz_area_px2" in row and 0 <= float(row["vad"]) <= 100


def test_an_existing_csv_is_kept_unless_overwrite(tmp_path: Path, synthetic_pair, capsys) -> None:
    _, masks = synthetic_pair
    out = tmp_path / "m.csv"
    out.write_text("precious")
    assert main(["measure", str(masks), "--masks", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "precious"
    assert main(["measure", str(masks), "--masks", "--out", str(out), "--overwrite"]) == 0
    assert read_rows(out)[0]["file"] == "eye.png"
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fov-mm", "-3"], "field of view -3.0"),
        (["--fov-mm", "nan"], "field of view nan"),
        (["--scans", "{}/missing"], "is not a folder"),
        (["--faz", "{}/missing"], "is not a folder"),
        (["--threshold", "0.3"], "--threshold"),
        (["--speck-size", "0"], "--speck-size"),
        (["--model", "default"], "--model"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, synthetic_pair, capsys, extra: list[str], message: str) -> None:
    _, masks = synthetic_pair
    empty = tmp_path / "empty"
    empty.mkdir()
    extra = [a.format(empty) for a in extra]
    assert main(["measure", str(masks), "--masks", "--out", str(tmp_path / "m.csv"), *extra]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "m.csv").exists()


def test_the_table_measures_each_mask_into_one_csv(tmp_path: Path) -> None:
    table = MeasureTable.checked(tmp_path / "measures.csv", overwrite=False)
    image, label = synthetic_octa(304, seed=1)
    table.add("a.png", label, scan=image, pixel_size_um=3000 / 304)
    table.add("b.png", np.zeros_like(label), scan=None, faz=None, pixel_size_um=3000 / 304)
    rows = read_rows(table.write())
    assert [(r["file"], r["region"]) for r in rows][:3] == [
        ("a.png", "whole"),
        ("a.png", "fovea"),
        ("a.png", "parafovea"),
    ]
    assert rows[-1]["file"] == "b.png" and float(rows[-1]["vad"]) == 0 and rows[-1]["faz_area_mm2"] == ""


def test_a_scan_given_as_a_mask_is_refused_with_what_to_do(
    tmp_path: Path, synthetic_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    scans, _ = synthetic_pair
    out = tmp_path / "m.csv"
    assert main(["measure", str(scans / "eye.png"), "--masks", "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert "not a vessel mask" in error and "segment the scan first" in error and "Traceback" not in error
    assert not out.exists()


def test_a_mask_with_a_few_label_values_counts_every_nonzero_pixel(tmp_path: Path) -> None:
    labels = np.zeros((64, 64), dtype=np.uint8)
    labels[10:20, :] = 1
    labels[30:35, :] = 2
    imsave(tmp_path / "painted.png", labels, check_contrast=False)
    out = tmp_path / "m.csv"
    assert main(["measure", str(tmp_path / "painted.png"), "--masks", "--out", str(out)]) == 0
    (row,) = read_rows(out)
    assert float(row["vad"]) == pytest.approx(100 * 15 / 64)


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_folder_as_out_is_refused_before_any_work(
    tmp_path: Path, synthetic_pair, capsys, overwrite: list[str]
) -> None:
    _, masks = synthetic_pair
    assert main(["measure", str(masks), "--masks", "--out", str(masks), *overwrite]) == 2
    out, err = capsys.readouterr()
    assert "is a folder" in err and "measures.csv" in err and "--overwrite" not in err and "Traceback" not in err
    assert "region(s)" not in out


def test_an_out_that_cannot_be_written_is_refused_before_any_work(tmp_path: Path, synthetic_pair, capsys) -> None:
    _, masks = synthetic_pair
    (tmp_path / "file").write_text("not a folder")
    assert main(["measure", str(masks), "--masks", "--out", str(tmp_path / "file" / "m.csv")]) == 2
    out, err = capsys.readouterr()
    assert "cannot write into" in err and "Traceback" not in err and "region(s)" not in out


def test_a_bad_file_is_listed_and_the_rest_written(tmp_path: Path, synthetic_pair, capsys) -> None:
    scans, masks = synthetic_pair
    (masks / "broken.png").write_text("not an image")
    imsave(masks / "grey.png", imread(scans / "eye.png"), check_contrast=False)
    out = tmp_path / "m.csv"
    assert main(["measure", str(masks), "--masks", "--out", str(out)]) == 1
    assert [row["file"] for row in read_rows(out)] == ["eye.png"]
    err = capsys.readouterr().err
    assert "2 of 3 image(s) failed" in err and "broken.png: not a readable image" in err
    assert "grey.png: the vessel mask holds" in err and "Traceback" not in err


def test_a_scan_of_another_size_names_the_mask(tmp_path: Path, synthetic_pair, capsys) -> None:
    scans, masks = synthetic_pair
    imsave(scans / "eye.png", np.zeros((20, 20), np.uint8), check_contrast=False)
    out = tmp_path / "m.csv"
    assert main(["measure", str(masks), "--masks", "--scans", str(scans), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{masks / 'eye.png'}: the scan is (20, 20) but the vessel mask is (304, 304)" in err
    assert not out.exists()


def test_a_featureless_scan_is_reported(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    imsave(tmp_path / "blank.png", np.zeros((64, 64), np.uint8), check_contrast=False)
    out = tmp_path / "m.csv"
    args = ["measure", str(tmp_path / "blank.png"), "--model", str(tiny_checkpoint), "--device", "cpu"]
    assert main([*args, "--out", str(out)]) == 0
    assert "blank.png: the image is featureless" in capsys.readouterr().err


def test_no_faz_names_the_option_that_gives_one_and_it_is_measured(tmp_path: Path, capsys) -> None:
    for folder in ("masks", "scans", "faz"):
        (tmp_path / folder).mkdir()
    imsave(tmp_path / "masks" / "eye.png", np.zeros((64, 64), np.uint8), check_contrast=False)
    imsave(tmp_path / "scans" / "eye.png", np.zeros((64, 64), np.uint8), check_contrast=False)
    faz = np.zeros((64, 64), np.uint8)
    faz[20:40, 25:35] = 255
    imsave(tmp_path / "faz" / "eye.png", faz, check_contrast=False)
    base = ["measure", str(tmp_path / "masks"), "--masks", "--scans", str(tmp_path / "scans")]
    assert main([*base, "--out", str(tmp_path / "a.csv")]) == 0
    err = capsys.readouterr().err
    assert "No FAZ found" in err and "--faz FOLDER" in err and "Labels layer" not in err
    assert main([*base, "--faz", str(tmp_path / "faz"), "--out", str(tmp_path / "b.csv")]) == 0
    assert float(read_rows(tmp_path / "b.csv")[0]["faz_area_px2"]) == 200


def test_a_mask_written_by_segment_matches_its_scan(tmp_path: Path) -> None:
    for name in ("eye.png", "eye_vessels.png", "other.png"):
        imsave(tmp_path / name, np.full((8, 8), 7 if name == "eye.png" else 255, np.uint8), check_contrast=False)
    images = ImagesByStem(tmp_path)
    assert images.read(Path("results/eye_vessels.png")).max() == 7
    assert images.read(Path("masks/eye.png")).max() == 7
    with pytest.raises(FileNotFoundError, match=f"no image named other_mask.* in {tmp_path} for masks/other_mask.png"):
        images.read(Path("masks/other_mask.png"))


def test_masks_written_by_segment_are_measured_with_their_scans(tmp_path: Path, synthetic_pair) -> None:
    scans, masks = synthetic_pair
    results = tmp_path / "results"
    results.mkdir()
    (masks / "eye.png").rename(results / "eye_vessels.png")
    out = tmp_path / "m.csv"
    assert main(["measure", str(results), "--masks", "--scans", str(scans), "--out", str(out)]) == 0
    (row,) = read_rows(out)
    assert row["file"] == "eye_vessels.png" and float(row["faz_area_px2"]) > 0
