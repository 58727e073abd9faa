"""The weights shipped in the package: present, loadable, and good on the project's own synthetic scans.

The synthetic images (core.synthetic) are made by the project's code and were never seen in
training, which used real OCTA-500 and ROSSA scans only; the bars sit below what the shipped
weights measured (see the README) so that a broken model, loader or pre-processing fails them.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_octanet.core.checkpoint import LoadedModel, load_model
from napari_octanet.core.inference import segment
from napari_octanet.core.metrics import binary_metrics, evaluate_image
from napari_octanet.core.registry import bundled_checkpoint, registry
from napari_octanet.core.synthetic import synthetic_octa
from napari_octanet.core.thresholds import binarise

DICE_BAR = 0.50
AUC_BAR = 0.90


@pytest.fixture(scope="module")
def bundled() -> LoadedModel:
    path = bundled_checkpoint()
    assert path is not None, "the package must ship its default weights"
    assert path.stat().st_size <= 10 * 2**20
    return load_model(path)


def _scores(model: LoadedModel, image: np.ndarray, label: np.ndarray, **options: float) -> dict[str, float]:
    return evaluate_image(segment(model, image, device="cpu", **options).fine, label)


def test_the_default_model_is_the_bundled_lite_model(bundled: LoadedModel) -> None:
    assert registry.resolve(None) == bundled_checkpoint()
    assert bundled.info.network.name == "lite"
    provenance = bundled.info.provenance
    assert provenance["best_validation"]["val_dice"] > 0.85
    assert "OCTA-500" in provenance["note"] and provenance["command"].startswith("octanet train")


@pytest.mark.parametrize("size", [304, 320, 400, 840])
def test_beats_the_bar_at_every_scan_size_given_its_pixel_size(bundled: LoadedModel, size: int) -> None:
    """A synthetic scan spans a 3 mm field at any size: 840 px is 3.6 µm per pixel, as a 10-degree field at 768 px."""
    image, label = synthetic_octa(size, seed=size)
    scores = _scores(bundled, image, label, pixel_size_um=3000 / size)
    assert scores["dice"] > DICE_BAR and scores["auc"] > AUC_BAR, scores


@pytest.mark.parametrize("size", [304, 320, 400])
def test_beats_the_bar_near_its_training_pixel_sizes_without_one(bundled: LoadedModel, size: int) -> None:
    image, label = synthetic_octa(size, seed=size)
    scores = _scores(bundled, image, label)
    assert scores["dice"] > DICE_BAR and scores["auc"] > AUC_BAR, scores


def test_8_and_16_bit_give_the_same_map(bundled: LoadedModel) -> None:
    image, _ = synthetic_octa(304, seed=1)
    eight = segment(bundled, image, device="cpu").fine
    sixteen = segment(bundled, image.astype(np.uint16) * 257, device="cpu").fine
    np.testing.assert_allclose(eight, sixteen, atol=1e-4)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_other_contrast_still_segments(bundled: LoadedModel, gamma: float) -> None:
    image, label = synthetic_octa(304, seed=2)
    changed = ((image / 255.0) ** gamma * 255).astype(np.uint8)
    scores = _scores(bundled, changed, label)
    assert scores["dice"] > DICE_BAR - 0.1 and scores["auc"] > AUC_BAR - 0.05, scores


def test_an_empty_scan_gives_almost_no_vessels(bundled: LoadedModel) -> None:
    noise = np.random.default_rng(0).normal(20, 3, (304, 304)).clip(0, 255).astype(np.uint8)
    mask = binarise(segment(bundled, noise, device="cpu").fine, 0.5)
    assert mask.mean() < 0.02


def test_a_stack_matches_its_slices(bundled: LoadedModel) -> None:
    pairs = [synthetic_octa(304, seed=s) for s in (3, 4)]
    stack = np.stack([image for image, _ in pairs])
    maps = segment(bundled, stack, device="cpu", batch_size=2).fine
    for index, (_, label) in enumerate(pairs):
        mask = binarise(maps[index])
        assert binary_metrics(mask, label)["dice"] > DICE_BAR
