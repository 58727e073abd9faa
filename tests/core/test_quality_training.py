"""A trained model carries its own confidence calibration (issue 35, item 4): fitted on its validation
images when it has enough of them, else inherited from the model it started from, with a note."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from napari_octanet.core.checkpoint import load_model, read_info, save_checkpoint
from napari_octanet.core.network import OctaNet
from napari_octanet.core.quality import DEFAULT_CALIBRATION, PROVENANCE_KEY, Calibration, model_calibration
from napari_octanet.core.synthetic import synthetic_octa
from napari_octanet.core.training.calibration import MIN_CALIBRATION_IMAGES, NOTE_KEY
from napari_octanet.core.training.data import TrainingImage, training_image
from napari_octanet.core.training.trainer import TrainSettings, iter_train
from tiny_models import TINY

#: The starting model's own calibration: the default's, recognisable by what it says it was fitted on.
PARENT_CALIBRATION = Calibration(
    DEFAULT_CALIBRATION.features,
    DEFAULT_CALIBRATION.coefficients,
    DEFAULT_CALIBRATION.intercept,
    fitted_on="the parent's own",
    ranges=DEFAULT_CALIBRATION.ranges,
)


def _images(count: int, group: str = "") -> list[TrainingImage]:
    return [training_image(*synthetic_octa(64, seed=i), name=f"s{i}", group=group) for i in range(count)]


def _parent(tmp_path: Path, calibration: Calibration | None) -> Path:
    torch.manual_seed(0)
    provenance = {} if calibration is None else {PROVENANCE_KEY: calibration.to_dict()}
    return save_checkpoint(tmp_path / "parent.safetensors", OctaNet(TINY), provenance=provenance)


def _fine_tune(tmp_path: Path, parent: Path, val: list[TrainingImage]) -> tuple[dict[str, object], str]:
    """Fine-tune ``parent`` briefly; the best model's provenance and the run's last message."""
    settings = TrainSettings(
        out=str(tmp_path / "run" / "model.safetensors"),
        init=str(parent),
        epochs=1,
        fine_epochs=1,
        batch_size=2,
        crop_size=64,
        samples_per_epoch=4,
        device="cpu",
        seed=0,
    )
    events = list(iter_train(_images(2), val, settings))
    return read_info(settings.out).provenance, events[-1].message


def test_a_model_fine_tuned_with_enough_validation_images_carries_a_calibration_fitted_on_them(
    tmp_path: Path,
) -> None:
    val = _images(MIN_CALIBRATION_IMAGES, group="OCTA500_3M")
    provenance, message = _fine_tune(tmp_path, _parent(tmp_path, PARENT_CALIBRATION), val)
    fitted = Calibration.from_dict(provenance[PROVENANCE_KEY])  # type: ignore[arg-type]
    assert (
        fitted.fitted_on
        == f"model.safetensors: {MIN_CALIBRATION_IMAGES} validation images of OCTA500_3M, each weighing alike"
    )
    assert fitted.features == DEFAULT_CALIBRATION.features and len(fitted.ranges) == len(fitted.features)
    assert fitted.coefficients != PARENT_CALIBRATION.coefficients
    assert NOTE_KEY not in provenance
    assert f"confidence calibrated on its {MIN_CALIBRATION_IMAGES} validation images" in message
    model = load_model(tmp_path / "run" / "model.safetensors")
    assert model_calibration(model.info.provenance) == fitted, "what the batch and the API read back"


def test_a_model_fine_tuned_with_too_few_validation_images_inherits_its_parents_calibration_with_a_note(
    tmp_path: Path,
) -> None:
    few = MIN_CALIBRATION_IMAGES - 1
    provenance, message = _fine_tune(tmp_path, _parent(tmp_path, PARENT_CALIBRATION), _images(few))
    assert Calibration.from_dict(provenance[PROVENANCE_KEY]) == PARENT_CALIBRATION  # type: ignore[arg-type]
    note = f"inherited from parent.safetensors: only {few} validation image(s), fewer than the 8 a fit needs"
    assert provenance[NOTE_KEY] == note and note in message


def test_a_parent_without_a_calibration_of_its_own_leaves_the_default_with_a_note(tmp_path: Path) -> None:
    provenance, _ = _fine_tune(tmp_path, _parent(tmp_path, None), _images(1))
    assert PROVENANCE_KEY not in provenance and model_calibration(provenance) == DEFAULT_CALIBRATION
    assert str(provenance[NOTE_KEY]).startswith("the default calibration (parent.safetensors carries none of its own)")


def test_validation_images_without_signal_do_not_count_towards_a_fit(tmp_path: Path) -> None:
    blank = [training_image(np.zeros((64, 64)), synthetic_octa(64, seed=i)[1], name=f"b{i}") for i in range(2)]
    val = _images(MIN_CALIBRATION_IMAGES - 1) + blank
    provenance, _ = _fine_tune(tmp_path, _parent(tmp_path, PARENT_CALIBRATION), val)
    assert Calibration.from_dict(provenance[PROVENANCE_KEY]) == PARENT_CALIBRATION  # type: ignore[arg-type]
    assert "only 7 of its 9 validation images have signal and a defined Dice" in str(provenance[NOTE_KEY])
