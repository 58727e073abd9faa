"""Segmentation losses: the reference's MSE, and Dice + BCE."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
EPSILON = 1.0


def mse_loss(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The reference code's loss: mean squared error between probability and binary target."""
    return F.mse_loss(probability.float(), target.float())


def dice_bce_loss(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice (over each image, averaged) plus binary cross-entropy, on probabilities."""
    probability = probability.float().clamp(1e-6, 1 - 1e-6)
    target = target.float()
    dims = tuple(range(1, probability.ndim))
    intersection = (probability * target).sum(dims)
    dice = (2 * intersection + EPSILON) / (probability.sum(dims) + target.sum(dims) + EPSILON)
    return (1 - dice).mean() + F.binary_cross_entropy(probability, target)


def skeleton_recall_loss(probability: torch.Tensor, skeleton: torch.Tensor) -> torch.Tensor:
    """The share of the skeleton (centerline) pixels that the map misses, per image, averaged.

    After Kirchhoff et al. (2024), "Skeleton recall loss": a map that drops a thin vessel loses
    little Dice but all of that vessel's skeleton, so this term speaks up for thin vessels.
    """
    probability = probability.float()
    skeleton = skeleton.float()
    dims = tuple(range(1, probability.ndim))
    recall = ((probability * skeleton).sum(dims) + EPSILON) / (skeleton.sum(dims) + EPSILON)
    return (1 - recall).mean()


LOSSES: dict[str, LossFunction] = {"mse": mse_loss, "dice_bce": dice_bce_loss}


def get_loss(name: str) -> LossFunction:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
