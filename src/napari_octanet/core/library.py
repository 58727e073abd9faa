"""The model library: one user folder that keeps every model trained in the dock or with ``octanet train``.

The folder is ``$NAPARI_OCTANET_MODELS`` when that is set, otherwise platformdirs' user data
folder for napari-octanet plus ``models``. Every ``*.safetensors`` file under it (recursively) is
a model named by its file stem; ``<name>-last.safetensors`` files are a run's resume state, not
models, and hidden folders (a run's working files) are skipped. Listing only looks at file
names, and reading a header needs no torch: torch loads only when weights are loaded or written.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import load_checkpoint, read_info, save_checkpoint

ENV_VAR = "NAPARI_OCTANET_MODELS"
SUFFIX = ".safetensors"
#: The trainer's resume files end so (``TrainSettings.last_path``).
RESUME_STEM_END = "-last"


def check_model_file_name(path: Path, option: str) -> None:
    """A model is a safetensors file: refuse another name rather than write safetensors under it."""
    if path.suffix != SUFFIX:
        raise ValueError(f"{option} {path}: a model is written as {SUFFIX}; give a name such as {path.stem}{SUFFIX}")


def models_dir() -> Path:
    """The library folder (it may not exist yet)."""
    override = os.environ.get(ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-octanet", appauthor=False)) / "models"


@dataclass(frozen=True)
class LibraryModel:
    name: str
    path: Path


@dataclass(frozen=True)
class ModelSummary:
    """What ``octanet models`` prints of a model: read from the file and its provenance."""

    name: str
    path: Path
    size_bytes: int
    modified: float
    #: The best validation Dice recorded in the checkpoint's provenance; None when it had no validation.
    val_dice: float | None


def is_model_file(path: Path, root: Path) -> bool:
    """A checkpoint under ``root`` that is a model: not a resume file, not inside a hidden folder."""
    relative = path.relative_to(root)
    hidden = any(part.startswith(".") for part in relative.parts)
    return path.is_file() and not hidden and not path.stem.endswith(RESUME_STEM_END)


def library_models(root: Path | None = None) -> list[LibraryModel]:
    """Every model in the library, named by file stem (by relative path where two stems are equal)."""
    root = models_dir() if root is None else root
    if not root.is_dir():
        return []
    files = sorted(p for p in root.rglob(f"*{SUFFIX}") if is_model_file(p, root))
    stems = [p.stem for p in files]
    return [
        LibraryModel(p.stem if stems.count(p.stem) == 1 else p.relative_to(root).with_suffix("").as_posix(), p)
        for p in files
    ]


def unique_name(wanted: str, root: Path | None = None) -> str:
    """``wanted``, or ``wanted-2``, ``wanted-3``…: the first that names no file and no model in the library."""
    root = models_dir() if root is None else root
    taken = {model.name for model in library_models(root)}
    name, number = wanted, 1
    while name in taken or (root / f"{name}{SUFFIX}").exists():
        number += 1
        name = f"{wanted}-{number}"
    return name


def save_to_library(
    checkpoint: Path, name: str, provenance: dict[str, Any] | None = None, root: Path | None = None
) -> Path:
    """Copy a trained checkpoint into the library as float16, under a new unique name; returns the new file.

    Resume state (optimizer tensors, training state) is left behind: a library model is for use
    and fine-tuning. ``provenance`` is added to what the checkpoint already records.
    """
    root = models_dir() if root is None else root
    model, _ = load_checkpoint(checkpoint)
    target = root / f"{unique_name(name, root)}{SUFFIX}"
    merged = {**model.info.provenance, **(provenance or {}), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return save_checkpoint(target, model.network, provenance=merged, half=True)


def summarise(model: LibraryModel) -> ModelSummary:
    """Size, date and validation Dice of one model (reads the checkpoint's header, not its weights)."""
    stat = model.path.stat()
    best = read_info(model.path).provenance.get("best_validation")
    val_dice = best.get("val_dice") if isinstance(best, dict) else None
    return ModelSummary(model.name, model.path, stat.st_size, stat.st_mtime, val_dice)


def find(name: str, root: Path | None = None) -> LibraryModel | None:
    return next((model for model in library_models(root) if model.name == name), None)


__all__ = [
    "ENV_VAR",
    "LibraryModel",
    "ModelSummary",
    "find",
    "library_models",
    "models_dir",
    "save_to_library",
    "summarise",
    "unique_name",
]
