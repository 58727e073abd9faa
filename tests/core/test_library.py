"""The model library (one user folder of trained models), the registry's view of it, and ``octanet models``."""

from __future__ import annotations

import io
import os
import pkgutil
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from napari_octanet.cli import main
from napari_octanet.core import library
from napari_octanet.core.checkpoint import read_info, save_checkpoint
from napari_octanet.core.registry import (
    BUNDLED_MODELS,
    DEFAULT_NAME,
    ModelNotFoundError,
    ModelRegistry,
    bundled_checkpoint,
    bundled_checkpoints,
)


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv(library.ENV_VAR, str(root))
    return root


def put(checkpoint: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(checkpoint, target)
    return target


def test_the_folder_is_the_environment_variable_or_the_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(library.ENV_VAR, str(tmp_path / "mine"))
    assert library.models_dir() == tmp_path / "mine"
    monkeypatch.delenv(library.ENV_VAR)
    default = library.models_dir()
    assert default.name == "models" and "napari-octanet" in str(default)


def test_lists_checkpoints_recursively_by_stem_without_resume_or_hidden_files(models, tiny_checkpoint):
    put(tiny_checkpoint, models / "a.safetensors")
    put(tiny_checkpoint, models / "runs" / "b.safetensors")
    put(tiny_checkpoint, models / "runs" / "b-last.safetensors")
    put(tiny_checkpoint, models / ".training" / "c.safetensors")
    put(tiny_checkpoint, models / "x" / "same.safetensors")
    put(tiny_checkpoint, models / "y" / "same.safetensors")

    names = [model.name for model in library.library_models()]

    assert sorted(names) == ["a", "b", "x/same", "y/same"]


def test_missing_folder_is_an_empty_library(models):
    assert library.library_models() == []


def test_registry_lists_the_bundled_model_once_and_the_library_after_a_restart(models, tiny_checkpoint):
    put(tiny_checkpoint, models / "mine.safetensors")

    fresh = ModelRegistry()  # what a new process builds

    names = fresh.names()
    assert "mine" in names and "lite" not in names
    assert fresh.resolve("mine") == models / "mine.safetensors"
    if bundled_checkpoint() is not None:
        assert names.count(DEFAULT_NAME) == 1
        assert fresh.resolve("lite") == fresh.resolve(DEFAULT_NAME) == bundled_checkpoint()
        assert len([e for e in fresh.entries() if e.path == bundled_checkpoint()]) == 1


def test_a_registered_library_file_is_listed_once(models, tiny_checkpoint):
    path = put(tiny_checkpoint, models / "mine.safetensors")
    fresh = ModelRegistry()
    fresh.register(path, "mine")
    assert fresh.names().count("mine") == 1


def test_listing_does_not_import_torch(models, tiny_checkpoint):
    put(tiny_checkpoint, models / "mine.safetensors")
    code = (
        "import sys; from napari_octanet.core.registry import registry; "
        "assert 'mine' in registry.names(); sys.exit('torch' in sys.modules)"
    )
    env = {**os.environ, library.ENV_VAR: str(models)}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


def test_save_to_library_is_float16_unique_and_keeps_provenance(models, tiny_checkpoint):
    first = library.save_to_library(tiny_checkpoint, "run", {"epochs": 3, "source_layers": ["scan"]})
    second = library.save_to_library(tiny_checkpoint, "run", {"epochs": 4})

    assert (first.name, second.name) == ("run.safetensors", "run-2.safetensors")
    with safe_open(str(first), framework="pt") as handle:
        dtypes = {str(handle.get_tensor(key).dtype) for key in handle.keys()}  # noqa: SIM118
    assert "torch.float32" not in dtypes and "torch.float16" in dtypes
    provenance = read_info(first).provenance
    assert provenance["epochs"] == 3 and provenance["source_layers"] == ["scan"] and "saved_at" in provenance
    assert first.stat().st_size < tiny_checkpoint.stat().st_size


def test_saved_models_follow_the_umask(models, tiny_checkpoint):
    previous = os.umask(0o027)
    try:
        path = library.save_to_library(tiny_checkpoint, "private")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_octanet_models_lists_name_size_date_dice_and_path(models, tiny_network, capsys):
    history = {"stage": 2, "epoch": 3, "val_dice": 0.8125}
    save_checkpoint(models / "scored.safetensors", tiny_network, provenance={"best_validation": history})
    save_checkpoint(models / "unscored.safetensors", tiny_network)

    assert main(["models"]) == 0

    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "0.8125" in lines["scored"] and str(models / "scored.safetensors") in lines["scored"]
    assert " - " in lines["unscored"] and "MB" in lines["unscored"]
    assert set(lines) >= {"NAME", "scored", "unscored"}
    for bundled, path in bundled_checkpoints():
        recorded = read_info(path).provenance["best_validation"]["val_dice"]
        assert f"{recorded:.4f}" in lines[bundled.name] and "bundled" in lines[bundled.name]


def test_octanet_models_rm_needs_yes_and_never_removes_the_bundled_model(models, tiny_checkpoint, monkeypatch):
    path = put(tiny_checkpoint, models / "old.safetensors")
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a terminal: an answer cannot be asked for

    assert main(["models", "rm", "old"]) == 2 and path.exists()
    assert main(["models", "rm", "old", "--yes"]) == 0 and not path.exists()
    assert main(["models", "rm", "old", "--yes"]) == 2
    for bundled in BUNDLED_MODELS:
        assert main(["models", "rm", bundled.name, "--yes"]) == 2
        if bundled_checkpoint(bundled.name) is not None:
            assert bundled_checkpoint(bundled.name).is_file()


def test_octanet_models_lists_a_broken_file_with_its_problem_and_the_rest(models, tiny_network, capsys):
    """One truncated file used to make 'octanet models' fail without listing anything."""
    save_checkpoint(models / "good.safetensors", tiny_network)
    (models / "broken one.safetensors").write_bytes((models / "good.safetensors").read_bytes()[:1000])

    assert main(["models"]) == 0

    captured = capsys.readouterr()
    lines = {line.split("  ")[0].strip(): line for line in captured.out.splitlines()}
    assert {"good", "broken one", *(bundled.name for bundled, _ in bundled_checkpoints())} <= set(lines)
    assert "unreadable" in lines["broken one"] and "unreadable" not in lines["good"]
    assert "broken one: checkpoint" in captured.err and "octanet models rm 'broken one'" in captured.err
    assert main(["models", "rm", "broken one", "--yes"]) == 0
    assert not (models / "broken one.safetensors").exists()


def test_every_core_module_is_reachable_as_an_attribute_of_core():
    """``core.measure`` and the like: the lazy list names every module and package of core."""
    import napari_octanet.core as core

    on_disk = {info.name for info in pkgutil.iter_modules(core.__path__) if not info.name.startswith("_")}
    assert set(core._SUBMODULES) == on_disk
    assert core.measure.__name__ == "napari_octanet.core.measure"


def test_every_bundled_preset_is_listed_resolvable_and_lean(models):
    fresh = ModelRegistry()
    for bundled in BUNDLED_MODELS:
        path = bundled_checkpoint(bundled.name)
        assert path is not None, f"the package must ship {bundled.file}"
        assert fresh.resolve(bundled.name) == path and fresh.names().count(bundled.name) == 1
        assert path.stat().st_size <= 8 * 2**20
        provenance = read_info(path).provenance
        assert "OCTA-500" in provenance["note"] and provenance["command"].startswith("octanet train")


def test_segment_resolves_a_library_name(models, tiny_checkpoint, tmp_path):
    put(tiny_checkpoint, models / "mine.safetensors")
    from skimage.io import imsave

    imsave(tmp_path / "scan.png", np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    out = tmp_path / "out"
    code = main(["segment", str(tmp_path / "scan.png"), "--out", str(out), "--model", "mine", "--device", "cpu"])
    assert code == 0 and any(out.iterdir())


def test_unknown_names_are_not_found(models):
    with pytest.raises(ModelNotFoundError, match="nope"):
        ModelRegistry().resolve("nope")


def test_octanet_train_without_out_keeps_a_float16_model_in_the_library(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skimage.io import imsave

    from napari_octanet.core.synthetic import synthetic_octa

    for kind in ("image", "label"):
        (tmp_path / "data" / "train" / kind).mkdir(parents=True)
    for i in range(2):
        image, label = synthetic_octa(64, seed=i)
        imsave(tmp_path / "data" / "train" / "image" / f"{i}.png", image, check_contrast=False)
        imsave(tmp_path / "data" / "train" / "label" / f"{i}.png", (label * 255).astype(np.uint8), check_contrast=False)
    monkeypatch.setenv("NAPARI_OCTANET_MODELS", str(tmp_path / "library"))
    arguments = ["train", str(tmp_path / "data"), "--val-fraction", "0", "--init", str(tiny_checkpoint)]
    arguments += ["--epochs", "1", "--fine-epochs", "0", "--batch-size", "2", "--crop-size", "64", "--device", "cpu"]
    assert main([*arguments, "--name", "mine"]) == 0
    assert main([*arguments, "--name", "mine"]) == 0, "a second run must not replace the first model"
    assert sorted(p.name for p in (tmp_path / "library").iterdir()) == ["mine-2.safetensors", "mine.safetensors"]
    with safe_open(str(tmp_path / "library" / "mine.safetensors"), "pt") as handle:
        dtypes = {str(handle.get_tensor(key).dtype) for key in handle.keys()}  # noqa: SIM118 - not iterable
    assert "torch.float16" in dtypes and "torch.float32" not in dtypes
