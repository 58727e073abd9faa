"""A trained model's own confidence calibration (``core.quality``, docs/confidence.md), kept in its provenance.

A run with at least MIN_CALIBRATION_IMAGES validation images fits one when it ends: the features of
the best model's maps of each image against that image's Dice, which costs one more validation pass,
of the best model only. A run with fewer keeps the calibration of the model it started from (or the
default one, where that model has none), and its provenance says so under NOTE_KEY.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import load_checkpoint, read_info, save_checkpoint
from ..metrics import evaluate_image
from ..network import OctaNet
from ..quality import DEFAULT_CALIBRATION, PROVENANCE_KEY, Calibration, fit_calibration, scan_features
from .data import TrainingImage
from .validation import validation_maps

#: The fewest validation images (each with features and a defined Dice) a run fits its own calibration on.
#: The fit has the default calibration's 4 features and an intercept; on fewer than about twice as many
#: scans it follows their noise, ridge or not, and the calibration the model started from is the better guess.
MIN_CALIBRATION_IMAGES = 8
#: Where a model's provenance says why its calibration is not its own (absent where it is).
NOTE_KEY = "confidence_calibration_note"


def initial_calibration(started_from: Mapping[str, Any] | None, validation_images: int) -> dict[str, Any]:
    """The calibration entries a run's checkpoints carry until it fits its own, and for good with too few images."""
    if validation_images < MIN_CALIBRATION_IMAGES:
        why = f"only {validation_images} validation image(s), fewer than the {MIN_CALIBRATION_IMAGES} a fit needs"
    else:
        why = f"the run that wrote it ended before fitting its own on its {validation_images} validation images"
    return inherited_calibration(started_from, why)


def inherited_calibration(started_from: Mapping[str, Any] | None, why: str) -> dict[str, Any]:
    """The starting model's calibration (none stored: the default one) with a note saying whence and ``why``."""
    parent = (started_from or {}).get("model")
    stored = (started_from or {}).get(PROVENANCE_KEY)
    if stored is not None:
        return {PROVENANCE_KEY: stored, NOTE_KEY: f"inherited from {parent}: {why}"}
    whence = f"{parent} carries none of its own" if parent else "trained from scratch"
    return {NOTE_KEY: f"the default calibration ({whence}): {why}"}


def calibrate_best_model(
    path: Path, images: Sequence[TrainingImage], device: torch.device, mixed_precision: bool, *, half: bool
) -> str:
    """Fit the model at ``path`` its own calibration on the validation ``images`` and store it in its provenance
    in place of the inherited one; returns what its calibration is, for the run's last message."""
    if len(images) < MIN_CALIBRATION_IMAGES:
        return f"confidence calibration: {read_info(path).provenance.get(NOTE_KEY)}"
    model, _ = load_checkpoint(path, device)
    fitted, usable = fit_on_validation(model.network, images, device, mixed_precision, fitted_on=path.name)
    provenance = {key: value for key, value in model.info.provenance.items() if key not in (PROVENANCE_KEY, NOTE_KEY)}
    if fitted is not None:
        entries: dict[str, Any] = {PROVENANCE_KEY: fitted.to_dict()}
        said = f"confidence calibrated on its {usable} validation images"
    else:
        why = (
            f"only {usable} of its {len(images)} validation images have signal and a defined Dice, "
            f"fewer than the {MIN_CALIBRATION_IMAGES} a fit needs"
        )
        entries = inherited_calibration(provenance.get("started_from"), why)
        said = f"confidence calibration: {entries[NOTE_KEY]}"
    save_checkpoint(path, model.network, provenance={**provenance, **entries}, half=half)
    return said


def fit_on_validation(
    network: OctaNet,
    images: Sequence[TrainingImage],
    device: torch.device,
    mixed_precision: bool,
    *,
    fitted_on: str,
) -> tuple[Calibration | None, int]:
    """A calibration fitted on the network's maps of ``images`` (the default's features against each image's
    Dice, Otsu on the fine map as the confidence predicts it; each data set (group) weighing alike), and how
    many images had both; None where fewer than MIN_CALIBRATION_IMAGES did."""
    features, dices, groups = [], [], []
    for image, maps in zip(images, validation_maps(network, images, device, mixed_precision), strict=True):
        measured = scan_features(maps, image.image)
        dice = evaluate_image(maps.fine, image.label)["dice"]
        if measured and np.isfinite(dice):
            features.append(measured)
            dices.append(dice)
            groups.append(image.group)
    if len(features) < MIN_CALIBRATION_IMAGES:
        return None, len(features)
    weights = [1.0 / groups.count(group) for group in groups]
    named = ", ".join(sorted(set(filter(None, groups))))
    description = f"{fitted_on}: {len(features)} validation images" + (
        f" of {named}, each weighing alike" if named else ""
    )
    fitted = fit_calibration(features, dices, DEFAULT_CALIBRATION.features, weights=weights, fitted_on=description)
    return fitted, len(features)
