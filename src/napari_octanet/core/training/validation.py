"""Validation scoring: how a run judges its network on the held-out images, epoch by epoch.

Dice at the Otsu threshold (the paper's protocol) and AUC, averaged within each group of images
and then over the groups. The model a fine-tuning run starts from is scored the same way, once,
so that a run which only makes it worse keeps it (:class:`StartingPoint`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..inference import Segmentation, segment
from ..metrics import evaluate_image
from ..network import OctaNet
from .data import TrainingImage


@dataclass(frozen=True)
class Scores:
    """Validation scores: mean Dice and AUC over the groups (None without validation), Dice per group."""

    dice: float | None
    auc: float | None
    dice_by_group: dict[str, float]


def validation_scores(
    network: OctaNet,
    images: Sequence[TrainingImage],
    stage: int,
    device: torch.device,
    mixed_precision: bool,
) -> Scores:
    """Mean Dice (Otsu) and AUC on the held-out images: the coarse max in stage 1, SRS in stage 2."""
    if not images:
        return Scores(None, None, {})
    by_group: dict[str, list[dict[str, float]]] = {}
    for image, maps in zip(images, validation_maps(network, images, device, mixed_precision), strict=True):
        probability = np.maximum(maps.pixel, maps.centerline) if stage == 1 else maps.fine
        by_group.setdefault(image.group, []).append(evaluate_image(probability, image.label))
    dice_by_group = {group: float(np.mean([s["dice"] for s in scores])) for group, scores in by_group.items()}
    return Scores(mean_over_groups(by_group, "dice"), mean_over_groups(by_group, "auc"), dice_by_group)


def validation_maps(
    network: OctaNet, images: Sequence[TrainingImage], device: torch.device, mixed_precision: bool
) -> Iterator[Segmentation]:
    """The network's maps of each held-out image in turn, as validation computes them."""
    for image in images:
        yield segment(
            network, image.image, device=device, batch_size=1, prescaled=True, mixed_precision=mixed_precision
        )


def mean_over_groups(by_group: dict[str, list[dict[str, float]]], key: str) -> float:
    """Mean of the per-group means, so that a large validation set does not outvote a small one.

    Undefined scores (NaN: Dice of an image whose label and mask are both empty, AUC of a one-class
    label) are left out, as ``core.metrics`` leaves them out of its means; all-NaN gives NaN.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's "mean of empty slice" for all-NaN
        means = [np.nanmean([scores[key] for scores in group]) for group in by_group.values()]
        return float(np.nanmean(means))


@dataclass
class StartingPoint:
    """A fine-tuning run's starting model: its weights and its validation Dice on the final output."""

    weights: dict[str, torch.Tensor]
    val_dice: float

    def beats(self, best: float | None) -> bool:
        return best is None or self.val_dice > best
