"""Training images in memory, from a dataset folder or from arrays (napari layers), and batching."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..centerline import centerline_from_label
from ..preprocess import InputError, as_image_stack, normalise
from .augment import AugmentConfig, augment, random_crop

if TYPE_CHECKING:
    from ..layouts import DatasetIndex


@dataclass
class TrainingImage:
    """One image in [0, 1] with its three binary targets, all (H, W)."""

    image: np.ndarray
    pixel: np.ndarray
    centerline: np.ndarray
    label: np.ndarray
    name: str = ""
    group: str = ""

    def stacked(self) -> torch.Tensor:
        """(4, H, W) float tensor: image, pixel-level, centerline-level, full label."""
        planes = [self.image, self.pixel, self.centerline, self.label]
        return torch.from_numpy(np.stack([np.asarray(p, dtype=np.float32) for p in planes]))


def training_image(
    image: np.ndarray,
    label: np.ndarray,
    centerline: np.ndarray | None = None,
    pixel: np.ndarray | None = None,
    *,
    name: str = "",
    group: str = "",
) -> TrainingImage:
    """Build a training image from a 2D image and its vessel label (any value > 0 is vessel).

    The centerline-level target is the label's skeleton where none is given; the pixel-level
    target is the label itself where none is given.
    """
    grey = normalise(as_image_stack(image)[0])[0]
    label = np.asarray(label) > 0
    if label.shape != grey.shape:
        raise InputError(f"{name or 'image'}: image shape {grey.shape} and label shape {label.shape} differ")
    pixel = label if pixel is None else np.asarray(pixel) > 0
    centerline = centerline_from_label(pixel) if centerline is None else np.asarray(centerline) > 0
    for kind, target in (("pixel-level label", pixel), ("centerline label", centerline)):
        if target.shape != grey.shape:
            raise InputError(f"{name or 'image'}: image shape {grey.shape} and {kind} shape {target.shape} differ")
    return TrainingImage(grey, pixel, centerline, label, name, group)


def training_images_from_dataset(root: str, layout: str = "auto", split: str | None = "train") -> list[TrainingImage]:
    """Load every paired sample of a dataset split (see :mod:`..layouts`)."""
    from ..layouts import index_dataset

    return training_images_from_index(index_dataset(root, layout, split))


def training_images_from_index(index: DatasetIndex) -> list[TrainingImage]:
    """Load every paired sample of an index; its ``report()`` names the files left out."""
    from ..layouts import load_sample

    images = []
    for sample in index.samples:
        loaded = load_sample(sample)
        label = loaded.label if loaded.label is not None else loaded.pixel_label
        images.append(
            training_image(
                loaded.image,
                label,
                centerline=loaded.centerline_label,
                pixel=loaded.pixel_label,
                name=sample.stem,
                group=sample.group,
            )
        )
    return images


def split_train_val(
    images: Sequence[TrainingImage], val_fraction: float, seed: int
) -> tuple[list[TrainingImage], list[TrainingImage]]:
    """Hold out a random fraction for validation (at least one image, never all of them)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"validation fraction {val_fraction} must be in [0, 1)")
    if val_fraction == 0 or len(images) < 2:
        return list(images), []
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = min(len(images) - 1, max(1, round(val_fraction * len(images))))
    val = [images[i] for i in sorted(order[:n_val])]
    train = [images[i] for i in sorted(order[n_val:])]
    return train, val


def epoch_order(images: Sequence[TrainingImage], samples: int, balance_groups: bool, seed: int) -> np.ndarray:
    """Indices of the images drawn in one epoch; with balancing, each group is drawn equally often."""
    rng = np.random.default_rng(seed)
    if not balance_groups:
        repeats = -(-samples // len(images))
        return np.concatenate([rng.permutation(len(images)) for _ in range(repeats)])[:samples]
    groups: dict[str, list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(image.group, []).append(index)
    weights = np.array([1.0 / (len(groups) * len(groups[image.group])) for image in images])
    return rng.choice(len(images), size=samples, replace=True, p=weights / weights.sum())


def make_batch(
    images: Sequence[TrainingImage],
    indices: Sequence[int],
    crop_size: int,
    config: AugmentConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """(B, 4, crop, crop) batch of augmented random crops."""
    crops = [augment(random_crop(images[i].stacked(), crop_size, generator), config, generator) for i in indices]
    return torch.stack(crops)
