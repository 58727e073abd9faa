from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage.io import imread, imsave
from skimage.measure import label as label_pieces

from builders import octanet_command, one_thread_environment
from napari_octanet.cli import main
from napari_octanet.core.checkpoint import load_model
from napari_octanet.core.inference import segment
from napari_octanet.core.thresholds import DEFAULT_SPECK_SIZE


@pytest.fixture
def checkpoint(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


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
            main(
                [
                    "segment",
                    str(tmp_path / "a.png"),
                    "--out",
                    str(tmp_path / out),
                    "--model",
                    str(checkpoint),
                    "--device",
                    "cpu",
                    *flag,
                ]
            )
            == 0
        )
    model = load_model(checkpoint)
    for out, tta in (("plain", False), ("tta", True)):
        expected = segment(model, image, device="cpu", tta=tta).fine
        np.testing.assert_allclose(tifffile.imread(tmp_path / out / "a_probability.tif"), expected, atol=1e-5)


def test_fixed_threshold_then_specks_dropped_unless_asked_to_keep_them(tmp_path: Path, checkpoint: Path) -> None:
    image = tmp_path / "a.png"
    imsave(image, np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8), check_contrast=False)
    command = ["segment", str(image), "--model", str(checkpoint), "--full-precision"]  # finely graded maps
    assert main([*command, "--out", str(tmp_path / "all"), "--threshold", "0.5", "--speck-size", "0"]) == 0
    probability = tifffile.imread(tmp_path / "all" / "a_probability.tif")
    np.testing.assert_array_equal(imread(tmp_path / "all" / "a_vessels.png") > 0, probability > 0.5)

    level = f"{np.quantile(probability, 0.97):.6f}"  # leaves scattered specks of noise
    assert main([*command, "--out", str(tmp_path / "default"), "--threshold", level]) == 0
    every_piece = probability > float(level)
    pieces = label_pieces(every_piece, connectivity=2)
    sizes = np.bincount(pieces.ravel())
    assert (sizes[1:] <= DEFAULT_SPECK_SIZE).any(), "the test needs a speck to drop"
    without_specks = every_piece & (sizes[pieces] > DEFAULT_SPECK_SIZE)
    np.testing.assert_array_equal(imread(tmp_path / "default" / "a_vessels.png") > 0, without_specks)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["segment", "missing.png", "--out", "o"], "missing.png does not exist"),
        (["segment", "{image}", "--out", "o", "--model", "nowhere.safetensors"], "nowhere.safetensors"),
        (["segment", "{image}", "--out", "o", "--model", "{checkpoint}", "--threshold", "2"], "outside"),
        (["segment", "{image}", "--out", "o", "--model", "{checkpoint}", "--device", "tpu"], "tpu"),
        (["evaluate", "{empty}", "--model", "{checkpoint}"], "layout"),
        (["segment", "{image}", "--out", "{image}", "--model", "{checkpoint}"], "is a file"),
        (["segment", "{image}", "--out", "{image}/below", "--model", "{checkpoint}"], "cannot write into"),
        (["train", "{empty}", "--out", "{checkpoint}", "--init", "{checkpoint}"], "already exists"),
        (["train", "{empty}", "--out", "{image}/m.safetensors", "--batch-size", "1"], "batch normalisation"),
        (["train", "{empty}", "--out", "{image}/m.safetensors", "--freeze-batch-norm"], "from scratch has none"),
        (["train", "{empty}", "--out", "{image}/m.safetensors"], "cannot write into"),
        (["train", "{empty}", "--out", "{empty}/m2.pt"], "give a name such as m2.safetensors"),
        (["train", "{empty}", "--out", "{empty}/m3"], "give a name such as m3.safetensors"),
        (["train", "{empty}", "--resume", "{checkpoint}"], "with --init {checkpoint}"),
        (["train", "--out", "{empty}/m.safetensors"], "no DATA"),
        (["segment", "{image}", "--out", "o", "--pixel-size", "5", "--fov-mm", "3"], "pixel size 5 µm and field of"),
        (["segment", "{image}", "--out", "o", "--pixel-size", "0.01"], "pixel size 0.01 µm makes no sense"),
        (["evaluate", "{empty}", "--fov-mm", "0"], "field of view 0.0 mm makes no sense"),
        (["train", "{empty}", "--out", "{empty}/m.safetensors", "--pixel-size", "300"], "pixel size 300.0 µm"),
    ],
)
def test_user_errors_are_one_line_without_traceback(
    tmp_path: Path,
    checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # where a relative --out would go
    image = tmp_path / "a.png"
    imsave(image, np.zeros((64, 64), np.uint8), check_contrast=False)
    (tmp_path / "empty").mkdir()
    values = {"image": str(image), "checkpoint": str(checkpoint), "empty": str(tmp_path / "empty")}
    code = main([a.format(**values) for a in arguments])
    error = capsys.readouterr().err
    assert code == 2
    assert message.format(**values) in error and "Traceback" not in error
    assert checkpoint.is_file() and image.is_file()
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == [] and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("option", "value", "messages"),
    [
        ("--batch-size", "0", ["not a positive whole number"]),
        ("--batch-size", "-2", ["not a positive whole number"]),
        ("--speck-size", "-1", ["speck size", "-1"]),
        ("--speck-size", "many", ["speck size", "many"]),
    ],
)
def test_a_bad_batch_or_speck_size_is_refused_by_the_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, messages: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["segment", "a.png", "--out", str(tmp_path), option, value])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and all(message in error for message in messages) and "Traceback" not in error


def test_a_crop_size_that_is_not_a_number_or_whole_is_refused_by_the_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(tmp_path), "--crop-size", "full"])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and "'full'" in error and "'whole'" in error and "Traceback" not in error


def _scan(path: Path, seed: int = 0, size: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8), check_contrast=False)
    return path


def _segment(*arguments: str, checkpoint: Path) -> int:
    return main(["segment", *arguments, "--model", str(checkpoint), "--device", "cpu"])


def _segment_command(*arguments: str, checkpoint: Path, ranks: int = 1, port: int = 29531) -> list[str]:
    """``_segment``'s command line for a subprocess (under torchrun with ``ranks`` > 1)."""
    return octanet_command("segment", *arguments, "--model", str(checkpoint), "--device", "cpu", ranks=ranks, port=port)


def _scans(folder: Path, count: int) -> Path:
    """``count`` random 64 px scans, s0.png, s1.png, ..., in ``folder``."""
    for seed in range(count):
        _scan(folder / f"s{seed}.png", seed)
    return folder


def _assert_maps_match_one_by_one(folder: Path, out: Path, stems: list[str], checkpoint: Path) -> None:
    """Each written probability map equals what segment() gives for its scan alone."""
    model = load_model(checkpoint)
    for stem in stems:
        expected = segment(model, imread(folder / f"{stem}.png"), device="cpu").fine
        np.testing.assert_allclose(tifffile.imread(out / f"{stem}_probability.tif"), expected, atol=1e-5)


def test_same_names_in_different_folders_get_their_own_results(tmp_path: Path, checkpoint: Path) -> None:
    first, second = _scan(tmp_path / "a" / "scan.png", 1), _scan(tmp_path / "b" / "scan.png", 2)
    beside = _scan(tmp_path / "b" / "scan.tif", 3)
    out = tmp_path / "out"
    assert _segment(str(first), str(tmp_path / "b"), "--out", str(out), checkpoint=checkpoint) == 0
    a = tifffile.imread(out / "a" / "scan_probability.tif")
    b = tifffile.imread(out / "b" / "scan_png_probability.tif")
    assert not np.array_equal(a, b)
    assert (out / "b" / "scan_tif_vessels.png").is_file() and beside.is_file() and second.is_file()


def test_existing_results_are_skipped_and_rewritten_only_when_asked(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = _scan(tmp_path / "in" / "scan.png")
    out = tmp_path / "out"
    assert _segment(str(scan), "--out", str(out), checkpoint=checkpoint) == 0
    mask = out / "scan_vessels.png"
    mask.write_bytes(b"the user's edited mask")
    capsys.readouterr()
    assert _segment(str(scan), "--out", str(out), checkpoint=checkpoint) == 0
    assert mask.read_bytes() == b"the user's edited mask"
    assert "already have results" in capsys.readouterr().err
    assert _segment(str(scan), "--out", str(out), "--overwrite", checkpoint=checkpoint) == 0
    assert set(np.unique(imread(mask))) <= {0, 255}


def test_a_mistyped_model_is_named_even_when_every_result_exists(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = _scan(tmp_path / "in" / "scan.png")
    out = tmp_path / "out"
    assert _segment(str(scan), "--out", str(out), checkpoint=checkpoint) == 0
    capsys.readouterr()
    assert main(["segment", str(scan), "--out", str(out), "--model", "defualt"]) == 2
    error = capsys.readouterr().err
    assert "'defualt' is neither a registered model" in error and "already have results" not in error


def test_a_missing_result_is_written_without_touching_the_other(tmp_path: Path, checkpoint: Path) -> None:
    scan = _scan(tmp_path / "in" / "scan.png")
    out = tmp_path / "out"
    assert _segment(str(scan), "--out", str(out), checkpoint=checkpoint) == 0
    (out / "scan_vessels.png").unlink()
    probability = out / "scan_probability.tif"
    probability.write_bytes(b"kept")
    assert _segment(str(scan), "--out", str(out), checkpoint=checkpoint) == 0
    assert probability.read_bytes() == b"kept" and (out / "scan_vessels.png").is_file()


def test_the_tools_own_outputs_are_never_inputs(tmp_path: Path, checkpoint: Path) -> None:
    folder = tmp_path / "scans"
    _scan(folder / "scan.png")
    assert _segment(str(folder), "--out", str(folder), checkpoint=checkpoint) == 0
    assert _segment(str(folder), "--out", str(folder), checkpoint=checkpoint) == 0
    written = ["scan_probability.tif", "scan_segment.json", "scan_vessels.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["scan.png", *written]


def test_an_unreadable_file_does_not_stop_the_batch(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scans"
    _scan(folder / "a.png", 1)
    (folder / "b.png").write_bytes(b"not a png")
    _scan(folder / "c.png", 2)
    out = tmp_path / "out"
    assert _segment(str(folder), "--out", str(out), checkpoint=checkpoint) == 1
    assert (out / "a_vessels.png").is_file() and (out / "c_vessels.png").is_file()
    error = capsys.readouterr().err
    assert "1 of 3 image(s) failed" in error and "b.png" in error and "Traceback" not in error


def test_a_batch_whose_every_image_fails_leaves_no_folder_or_table(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    (folder / "b.tif").write_bytes(b"nor a tiff")
    out = tmp_path / "results" / "run1"
    assert _segment(str(folder), "--out", str(out), "--measure", checkpoint=checkpoint) == 1
    assert not (tmp_path / "results").exists()
    error = capsys.readouterr().err
    assert "2 of 2 image(s) failed" in error and "Traceback" not in error
    assert "no image was segmented" in error and "0.00 images/s" not in error


def test_a_blank_scan_gives_an_empty_mask_and_a_warning_naming_it(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = tmp_path / "blank.png"
    imsave(blank, np.zeros((64, 64), np.uint8), check_contrast=False)
    assert _segment(str(blank), "--out", str(tmp_path / "out"), checkpoint=checkpoint) == 0
    assert not imread(tmp_path / "out" / "blank_vessels.png").any()
    assert f"warning: {blank}: the image is featureless" in capsys.readouterr().err


def test_a_blank_scan_in_a_batch_is_named_not_numbered(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scans"
    _scan(folder / "a.png", 1)
    imsave(folder / "b.png", np.full((64, 64), 9, np.uint8), check_contrast=False)
    assert _segment(str(folder), "--out", str(tmp_path / "out"), checkpoint=checkpoint) == 0
    error = capsys.readouterr().err
    assert f"warning: {folder / 'b.png'}: the image is featureless" in error and "slice(s)" not in error
    assert not imread(tmp_path / "out" / "b_vessels.png").any() and imread(tmp_path / "out" / "a_vessels.png").any()


def test_evaluate_json_says_null_for_undefined_metrics(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for kind in ("image", "label"):
        (tmp_path / "data" / "val" / kind).mkdir(parents=True)
    _scan(tmp_path / "data" / "val" / "image" / "x.png")
    imsave(tmp_path / "data" / "val" / "label" / "x.png", np.zeros((64, 64), np.uint8), check_contrast=False)
    code = main(["evaluate", str(tmp_path / "data"), "--split", "val", "--model", str(checkpoint), "--json"])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))
    assert summary["auc"] is None
    assert "1/1" in captured.err, "evaluate shows its progress on stderr"


def test_info_prints_the_config(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(checkpoint)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["configuration"] == "tiny" and info["network"]["blocks"] == [1, 1, 1, 1]


def test_export_half(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "half.safetensors"
    assert main(["export", str(checkpoint), str(out), "--half"]) == 0
    assert out.stat().st_size < checkpoint.stat().st_size


def test_export_never_replaces_a_file_unasked(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine.safetensors"
    out.write_bytes(b"the user's file")
    assert main(["export", str(checkpoint), str(out)]) != 0
    assert out.read_bytes() == b"the user's file" and "--overwrite" in capsys.readouterr().err
    assert main(["export", str(checkpoint), str(out), "--overwrite"]) == 0
    assert load_model(out).info.network == load_model(checkpoint).info.network


def test_export_replaces_the_note_and_keeps_the_rest(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "noted.safetensors"
    assert main(["export", str(checkpoint), str(out), "--note", "CC BY 4.0 data"]) == 0
    before, after = load_model(checkpoint).info.provenance, load_model(out).info.provenance
    assert after["note"] == "CC BY 4.0 data"
    assert {k: v for k, v in after.items() if k not in ("note", "exported_from", "float16")} == {
        k: v for k, v in before.items() if k != "note"
    }


def test_mixed_sizes_batch_by_size_and_match_one_by_one(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scans"
    sizes = {"a": 64, "b": 64, "c": 96, "d": 64, "e": 64, "f": 64}
    for seed, (name, size) in enumerate(sizes.items()):
        _scan(folder / f"{name}.png", seed, size)
    out = tmp_path / "out"
    assert _segment(str(folder), "--out", str(out), "--batch-size", "3", checkpoint=checkpoint) == 0
    assert "6 image(s)" in capsys.readouterr().err
    _assert_maps_match_one_by_one(folder, out, list(sizes), checkpoint)


@pytest.mark.slow
def test_torchrun_splits_the_files_across_ranks(tmp_path: Path, checkpoint: Path) -> None:
    folder, out = _scans(tmp_path / "scans", 5), tmp_path / "out"
    command = _segment_command(str(folder), "--out", str(out), checkpoint=checkpoint, ranks=2, port=29541)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=one_thread_environment())
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("segmented 3 image(s)") == 1 and result.stderr.count("segmented 2 image(s)") == 1
    _assert_maps_match_one_by_one(folder, out, [f"s{seed}" for seed in range(5)], checkpoint)


def test_segment_measure_writes_one_table_for_the_batch(tmp_path: Path, checkpoint: Path) -> None:
    import csv

    folder, out = _scans(tmp_path / "scans", 2), tmp_path / "out"
    assert _segment(str(folder), "--out", str(out), "--measure", "--fov-mm", "3", checkpoint=checkpoint) == 0
    with (out / "measures.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert {row["file"] for row in rows} == {"s0.png", "s1.png"}
    assert all(row["units"] == "mm" for row in rows) and any(row["region"] == "whole" for row in rows)


@pytest.mark.slow
def test_two_concurrent_runs_into_one_folder_lose_nothing(tmp_path: Path, checkpoint: Path) -> None:
    folder, out = _scans(tmp_path / "scans", 6), tmp_path / "out"
    command = _segment_command(str(folder), "--out", str(out), checkpoint=checkpoint)
    env = one_thread_environment()
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    assert [run.wait(timeout=300) for run in runs] == [0, 0]
    for seed in range(6):
        assert tifffile.imread(out / f"s{seed}_probability.tif").shape == (64, 64)
        assert set(np.unique(imread(out / f"s{seed}_vessels.png"))) <= {0, 255}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"s{seed}{suffix}" for seed in range(6) for suffix in ("_probability.tif", "_vessels.png", "_segment.json")
    ), "no temporary file left behind"


@pytest.mark.parametrize("full", [False, True])
def test_full_precision_reaches_the_network_and_the_log_line(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], full: bool
) -> None:
    from napari_octanet.cli.train import add_parser as add_train_parser
    from napari_octanet.cli.train import settings_from
    from napari_octanet.core import devices

    monkeypatch.setattr(devices, "_cpu_has_amx", lambda: True)
    image = np.random.default_rng(5).integers(0, 255, (64, 64), dtype=np.uint8)
    imsave(tmp_path / "a.png", image, check_contrast=False)
    flag = ["--full-precision"] if full else []
    command = ["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--model", str(checkpoint)]
    assert main([*command, "--device", "cpu", *flag]) == 0
    assert ("float32" if full else "bfloat16 autocast") in capsys.readouterr().err
    expected = segment(load_model(checkpoint), image, device="cpu", mixed_precision=not full).fine
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "a_probability.tif"), expected)

    commands = argparse.ArgumentParser().add_subparsers()
    add_train_parser(commands)
    args = commands.choices["train"].parse_args(["data", "--out", str(tmp_path / "m.safetensors"), *flag])
    assert settings_from(args).mixed_precision is (False if full else None)


def test_threads_reach_torch_before_the_model_runs(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    asked: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)
    scan = _scan(tmp_path / "a.png")
    assert _segment(str(scan), "--out", str(tmp_path / "out"), "--threads", "3", checkpoint=checkpoint) == 0
    assert asked == [3]


@pytest.mark.parametrize("command", ["segment", "evaluate", "measure", "train"])
def test_a_thread_count_below_one_is_refused_by_every_command_that_computes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    out = [] if command == "evaluate" else ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_:
        main([command, str(tmp_path), *out, "--threads", "0"])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and "not a positive whole number" in error and "Traceback" not in error


def test_one_bad_image_fails_alone_and_the_rest_of_its_group_is_written(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, out = _scans(tmp_path / "scans", 3), tmp_path / "out"
    with_nan = np.random.default_rng(9).random((64, 64)).astype(np.float32)
    with_nan[5, 5] = np.nan
    tifffile.imwrite(folder / "z.tif", with_nan)  # same size: one batch with the three good scans
    assert _segment(str(folder), "--out", str(out), checkpoint=checkpoint) == 1
    error = capsys.readouterr().err
    assert "1 of 4 image(s) failed" in error and f"{folder / 'z.tif'}: image contains 1 NaN" in error
    assert "s0.png: image contains" not in error
    _assert_maps_match_one_by_one(folder, out, ["s0", "s1", "s2"], checkpoint)
    assert not (out / "z_vessels.png").exists()


def _rows(csv_file: Path) -> list[dict[str, str]]:
    import csv

    with csv_file.open() as file:
        return sorted(csv.DictReader(file), key=lambda row: (row["file"], row["region"]))


def test_segment_measure_also_measures_the_images_it_skips(tmp_path: Path, checkpoint: Path) -> None:
    folder = _scans(tmp_path / "scans", 2)
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    assert _segment(str(folder), "--out", str(out), "--fov-mm", "3", checkpoint=checkpoint) == 0
    _scan(folder / "s2.png", 2)
    measure = ["--measure", "--fov-mm", "3"]
    assert _segment(str(folder), "--out", str(out), *measure, checkpoint=checkpoint) == 0
    assert _segment(str(folder), "--out", str(fresh), *measure, checkpoint=checkpoint) == 0
    rows = _rows(out / "measures.csv")
    assert {row["file"] for row in rows} == {"s0.png", "s1.png", "s2.png"}
    assert rows == _rows(fresh / "measures.csv"), "skipped images measured from their masks as if segmented now"


def test_an_interrupted_segment_says_the_measures_were_not_written(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from napari_octanet.core.batch import scan

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(scan, "segment_scan", interrupted)
    out = tmp_path / "out"
    assert _segment(str(_scans(tmp_path / "scans", 1)), "--out", str(out), "--measure", checkpoint=checkpoint) == 130
    assert f"interrupted; {out / 'measures.csv'} was not written" in capsys.readouterr().err
    assert not (out / "measures.csv").exists()


@pytest.mark.parametrize(
    ("second_run", "said"),
    [
        (["{b}"], "from {a}"),
        (["{a}", "--threshold", "0.5"], "with --threshold otsu (now 0.5)"),
        (["{a}", "--tta"], "with --tta off (now on)"),
        (["{a}", "--model", "{other_model}"], "with the model {checkpoint} (now {other_model})"),
    ],
)
def test_results_made_from_another_scan_or_other_settings_are_refused(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str], second_run: list[str], said: str
) -> None:
    from napari_octanet.core.checkpoint import save_checkpoint

    other_model = tmp_path / "other.safetensors"
    save_checkpoint(other_model, load_model(checkpoint).network, provenance={"note": "another model"})
    names = {"a": _scan(tmp_path / "a" / "scan.png", 1), "b": _scan(tmp_path / "b" / "scan.png", 2)}
    names |= {"checkpoint": checkpoint.resolve(), "other_model": other_model.resolve()}
    out = tmp_path / "out"
    command = ["segment", "--out", str(out), "--model", str(checkpoint), "--device", "cpu"]
    assert main([*command, str(names["a"])]) == 0
    record = (out / "scan_segment.json").read_text()
    capsys.readouterr()
    arguments = [argument.format(**names) for argument in second_run]
    assert main([*command, *arguments]) == 2
    error = capsys.readouterr().err
    assert f"{out / 'scan_probability.tif'} was made {said.format(**names)}" in error
    assert "--overwrite" in error and "another --out" in error and "skipped" not in error
    assert (out / "scan_segment.json").read_text() == record
    assert main([*command, *arguments, "--overwrite"]) == 0
    assert (out / "scan_segment.json").read_text() != record


def test_results_without_a_record_are_kept_by_name_with_one_note(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, out = _scans(tmp_path / "scans", 2), tmp_path / "out"
    assert _segment(str(folder), "--out", str(out), checkpoint=checkpoint) == 0
    records = sorted(out.glob("*_segment.json"))
    assert json.loads(records[0].read_text())["source"] == str((folder / "s0.png").resolve())
    for record in records:  # as an older version left them
        record.unlink()
    capsys.readouterr()
    assert _segment(str(folder), "--out", str(out), "--threshold", "0.5", checkpoint=checkpoint) == 0
    error = capsys.readouterr().err
    assert "2 image(s) already have results" in error and error.count("from an older version") == 1


def test_segment_results_are_masks_for_measure_but_never_scans(tmp_path: Path, checkpoint: Path) -> None:
    from napari_octanet.core.batch import find_inputs

    folder = _scans(tmp_path / "scans", 2)
    assert _segment(str(folder), "--out", str(folder), checkpoint=checkpoint) == 0
    mask = folder / "s0_vessels.png"
    assert find_inputs([str(mask)], masks=True).files == [mask]
    found = find_inputs([str(folder)], masks=True)
    assert found.files == [mask, folder / "s1_vessels.png"]
    assert found.notes[0].startswith(f"left out {folder / 's0.png'} and 1 more: the folder holds masks written by")
    found = find_inputs([str(mask), str(folder / "s1.png")])
    assert found.files == [folder / "s1.png"]
    assert found.notes[0].startswith(f"left out {mask}: results of octanet segment")
    with pytest.raises(FileNotFoundError, match="no scans among the inputs, only .*results of octanet segment"):
        find_inputs([str(mask)])


def test_notes_on_inputs_left_out_are_printed(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _scans(tmp_path / "scans", 1)
    assert _segment(str(folder), "--out", str(folder), checkpoint=checkpoint) == 0
    capsys.readouterr()
    assert (
        _segment(str(folder / "s0.png"), str(folder / "s0_vessels.png"), "--out", str(folder), checkpoint=checkpoint)
        == 0
    )
    assert f"note: left out {folder / 's0_vessels.png'}: results of octanet segment" in capsys.readouterr().err


def test_train_split_help_says_it_matches_prefixes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "starting with it and '_' (train also takes train_manual and train_sam" in help_text


def _write_pairs(root: Path, count: int) -> Path:
    """An image/label-pairs tree with ``count`` 64 px scans in train/ and in val/."""
    from napari_octanet.core.synthetic import synthetic_octa

    for split, seed in (("train", 0), ("val", 100)):
        for kind in ("image", "label"):
            (root / split / kind).mkdir(parents=True)
        for i in range(count):
            image, label = synthetic_octa(64, seed=seed + i)
            imsave(root / split / "image" / f"{i}.png", image, check_contrast=False)
            imsave(root / split / "label" / f"{i}.png", (label * 255).astype(np.uint8), check_contrast=False)
    return root


def test_resume_alone_goes_on_with_the_runs_data_out_and_settings(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Ctrl-C line's ``octanet train --resume OUT-last`` continues the run: its model file, its
    validation split (not a holdout), its precision; it used to start a new model in the library."""
    library = tmp_path / "library"
    monkeypatch.setenv("NAPARI_OCTANET_MODELS", str(library))
    data, out = _write_pairs(tmp_path / "data", 3), tmp_path / "run" / "model.safetensors"
    recipe = ["--epochs", "1", "--fine-epochs", "0", "--batch-size", "2", "--crop-size", "64"]
    recipe += ["--samples-per-epoch", "4", "--device", "cpu", "--full-precision", "--keep-resume-state"]
    first = ["train", str(data), "--val-split", "val", "--init", str(checkpoint), "--out", str(out), *recipe]
    assert main(first) == 0
    last = out.with_name("model-last.safetensors")
    started = load_model(last).info.provenance
    capsys.readouterr()
    monkeypatch.chdir(tmp_path / "run")  # DATA was recorded as an absolute path
    assert main(["train", "--resume", last.name, "--epochs", "2"]) == 0
    error = capsys.readouterr().err
    resumed = load_model(last).info.provenance
    assert not library.exists(), "no new model in the library"
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert sorted(p.name for p in out.parent.iterdir()) == ["model-last.safetensors", "model.safetensors"]
    assert resumed["validation_images"] == started["validation_images"] == 3, "the val split, not a holdout"
    assert resumed["data_choice"] == started["data_choice"]
    for name in ("mixed_precision", "half", "init", "device", "keep_resume_state", "crop_size"):
        assert resumed["settings"][name] == started["settings"][name], name
    assert f"as its run was started: DATA {data}, --val-split val, --out model.safetensors and the recipe" in error
    assert "resuming with changed settings: epochs 2 (was 1)" in error


def test_resume_changes_are_named_in_words() -> None:
    from napari_octanet.core.training.settings import TrainSettings, resume_changes

    before = TrainSettings()
    after = replace(before, half=True, freeze_batch_norm=True, mixed_precision=False, crop_size=None)
    assert resume_changes(after, before) == [
        "crop size whole (was 256)",
        "reduced precision off (was auto)",
        "freeze batch norm on (was off)",
        "best model stored in float16 (was float32)",
    ]
