"""Bad input on the command line: one line naming the problem and the fix, never a traceback; partial results kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage.io import imsave

from builders import make_pairs_tree
from napari_octanet.cli import main
from napari_octanet.cli._errors import error_line
from napari_octanet.core import checkpoint as checkpoint_module


def _error_of(capsys: pytest.CaptureFixture[str]) -> str:
    """The command's stderr, which must be one line."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_export_to_a_folder_is_refused_up_front(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to end in an IsADirectoryError traceback after loading the model."""
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["export", str(tiny_checkpoint), str(folder), "--overwrite"]) == 2
    assert f"{folder} is a folder; give a file name, such as {folder / 'model.safetensors'}" in _error_of(capsys)


@pytest.mark.parametrize("command", ["measure", "export", "train"])
def test_measure_export_and_train_check_their_output_file_in_one_wording(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "taken.safetensors").write_bytes(b"the user's file")
    arguments = {
        "measure": lambda out: ["measure", str(tmp_path / "data"), "--masks", "--out", str(out)],
        "export": lambda out: ["export", str(tiny_checkpoint), str(out)],
        "train": lambda out: ["train", str(tmp_path / "data"), "--out", str(out), "--init", str(tiny_checkpoint)],
    }[command]
    taken = tmp_path / "taken.safetensors"
    assert main(arguments(taken)) == 2
    assert f"{taken} already exists; choose another name, or add --overwrite to replace it" in _error_of(capsys)
    assert taken.read_bytes() == b"the user's file"
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    example = "measures.csv" if command == "measure" else "model.safetensors"
    assert main(arguments(folder)) == 2
    assert f"{folder} is a folder; give a file name, such as {folder / example}" in _error_of(capsys)


def test_export_to_a_name_that_is_not_safetensors_is_refused(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to write safetensors under any name (exp2.png)."""
    assert main(["export", str(tiny_checkpoint), str(tmp_path / "exp2.png")]) == 2
    assert "a model is written as .safetensors; give a name such as exp2.safetensors" in _error_of(capsys)
    assert not (tmp_path / "exp2.png").exists()


def test_export_under_a_file_is_refused_up_front(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a folder")
    assert main(["export", str(tiny_checkpoint), str(notes / "x.safetensors")]) == 2
    assert f"cannot write into {notes}" in _error_of(capsys)


def test_any_system_error_is_one_line_naming_the_path_and_the_reason(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net: an OSError the checks did not foresee (here a write refused) is no traceback."""
    target = tmp_path / "x.safetensors"

    def refused(path: Path, *args: object, **kwargs: object) -> Path:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(checkpoint_module, "save_checkpoint", refused)
    assert main(["export", str(tiny_checkpoint), str(target)]) == 2
    line = _error_of(capsys)
    assert line.startswith("octanet export: error:") and str(target) in line and "Permission denied" in line


def test_error_line_names_the_path_the_reason_and_the_fix() -> None:
    assert error_line(PermissionError(13, "Permission denied", "ro/x.safetensors")) == (
        "ro/x.safetensors: Permission denied; check its permissions, or choose another place"
    )
    assert (
        error_line(IsADirectoryError(21, "Is a directory", "out1"))
        == "out1: Is a directory; it is a folder; give a file name"
    )
    assert error_line(FileExistsError("out already exists; pass --overwrite")) == "out already exists; pass --overwrite"


def _scan(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, np.random.default_rng(seed).integers(0, 255, (64, 64), dtype=np.uint8), check_contrast=False)


def _label(path: Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, (label > 0).astype(np.uint8) * 255, check_contrast=False)


@pytest.fixture
def val_split(tmp_path: Path) -> Path:
    """data/val with three scans: 'a' with vessels, 'b' whose label has none, 'c' whose label is of another size."""
    split = tmp_path / "data" / "val"
    vessels = np.zeros((64, 64), bool)
    vessels[20:24, :] = True
    for seed, (stem, label) in enumerate(
        (("a", vessels), ("b", np.zeros((64, 64), bool)), ("c", np.ones((40, 50), bool)))
    ):
        _scan(split / "image" / f"{stem}.png", seed)
        _label(split / "label" / f"{stem}.png", label)
    return split


def test_evaluate_skips_a_label_of_the_wrong_size_and_scores_the_rest(
    val_split: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to score the others, then end with exit code 2 and no results."""
    assert main(["evaluate", str(val_split.parent), "--split", "val", "--model", str(tiny_checkpoint), "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["n_images"] == 2 and len(summary["skipped"]) == 1
    assert "c.png" in summary["skipped"][0] and "(40, 50)" in summary["skipped"][0]
    assert "1 image(s) skipped, the others scored:" in captured.err and "c.png" in captured.err


def test_evaluate_leaves_undefined_metrics_out_and_says_over_how_many_images(
    val_split: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A label without vessels has no SEN, G-mean or AUC: not a perfect 1.0 in the mean, and the count says so."""
    assert main(["evaluate", str(val_split), "--model", str(tiny_checkpoint), "--json", "--per-image"]) == 0
    summary = json.loads(capsys.readouterr().out)
    no_vessels = next(row for row in summary["per_image"] if row["image"].endswith("b.png"))
    assert no_vessels["sen"] is None and no_vessels["gmean"] is None and no_vessels["auc"] is None
    assert summary["n_images"] == 2 and summary["sen_n"] == summary["auc_n"] == 1 and summary["acc_n"] == 2

    assert main(["evaluate", str(val_split), "--model", str(tiny_checkpoint)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "(over 1 of 2 images; undefined on the others)" in lines["sen"]
    assert "over" not in lines["acc"]


def test_evaluate_takes_a_split_folder_as_its_split(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """'evaluate DATA/val' used to fail looking for a 'test' split inside it."""
    make_pairs_tree(tmp_path, n=1, sets={"OCTA500_3M": ("train", "val")})
    val = tmp_path / "OCTA500_3M" / "val"
    assert main(["evaluate", str(val), "--model", str(tiny_checkpoint)]) == 0
    assert "(pairs, split val)" in capsys.readouterr().out


def test_evaluate_without_the_split_lists_the_splits_there(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_pairs_tree(tmp_path, n=1, sets={"OCTA500_3M": ("train", "val")})
    assert main(["evaluate", str(tmp_path / "OCTA500_3M"), "--model", str(tiny_checkpoint)]) == 2
    line = _error_of(capsys)
    assert "no split folder named 'test'" in line and "the split folders there are: train, val" in line
