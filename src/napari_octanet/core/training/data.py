"""Training data and its rules: images in memory, from a dataset folder or from arrays, the checks
that say what to fix, and batching.

Everything a training run refuses is refused here, once, whether the images come from a dataset
on disk (``octanet train``) or from layers (the Fine-tune dock, through :mod:`.layers`). torch is
imported only when batches are made.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from ..centerline import centerline_from_label
from ..network.config import MIN_SIZE, SIZE_MULTIPLE
from ..preprocess import InputError, as_image_stack, normalise
from .settings import DEFAULT_CROP_SIZE

if TYPE_CHECKING:
    import torch

    from ..layouts import DatasetIndex
    from .augment import AugmentConfig


class TrainingDataError(InputError):
    """Images and labels that cannot be trained on; the message says why and what to change."""


@dataclass
class TrainingImage:
    """One image in [0, 1] with its three binary targets, all (H, W)."""

    image: np.ndarray
    pixel: np.ndarray
    centerline: np.ndarray
    label: np.ndarray
    name: str = ""
    group: str = ""
    #: µm per pixel, None where unknown.
    pixel_size_um: float | None = None

    def stacked(self) -> torch.Tensor:
        """(4, H, W) float tensor: image, pixel-level, centerline-level, full label."""
        import torch

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
    pixel_size_um: float | None = None,
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
    return TrainingImage(grey, pixel, centerline, label, name, group, pixel_size_um)


def training_images_from_dataset(root: str, layout: str = "auto", split: str | None = "train") -> list[TrainingImage]:
    """Load every paired sample of a dataset split (see :mod:`..layouts`)."""
    from ..layouts import index_dataset

    return training_images_from_index(index_dataset(root, layout, split))


def training_images_from_index(index: DatasetIndex) -> list[TrainingImage]:
    """Load every paired sample of an index; its ``report()`` names the files left out.

    Each image's pixel size is what its folders state (``scale.pixel_size_of_path``), else unknown.
    """
    from ..layouts import load_sample
    from ..scale import pixel_size_of_path

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
                pixel_size_um=pixel_size_of_path(sample.image, np.shape(loaded.image)[-1]),
            )
        )
    return images


def with_pixel_size(
    images: Sequence[TrainingImage], pixel_size_um: float | None, fov_mm: float | None
) -> list[TrainingImage]:
    """The images with the pixel size a run states for all of them (unchanged when it states none)."""
    from dataclasses import replace

    from ..scale import resolve_pixel_size

    if pixel_size_um is None and fov_mm is None:
        return list(images)
    return [
        replace(image, pixel_size_um=resolve_pixel_size(pixel_size_um, fov_mm, image.image.shape[-1]))
        for image in images
    ]


def scales_by_group(images: Sequence[TrainingImage]) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Each data set's pixel size (µm) and field of view (mm): medians of its images', None where any is unknown."""
    groups: dict[str, list[TrainingImage]] = {}
    for image in images:
        groups.setdefault(image.group, []).append(image)
    sizes: dict[str, float | None] = {}
    fields: dict[str, float | None] = {}
    for group, members in groups.items():
        known = [m for m in members if m.pixel_size_um is not None]
        whole = len(known) == len(members)
        sizes[group] = float(np.median([m.pixel_size_um for m in known])) if whole else None
        fields[group] = float(np.median([m.pixel_size_um * m.image.shape[-1] / 1000 for m in known])) if whole else None
    return sizes, fields


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


def same_size_batches(images: Sequence[TrainingImage], order: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """The draws of ``order`` regrouped into batches whose images all have one shape, in draw order.

    Whole-image training needs this: a batch is one tensor. Each batch is emitted as soon as its
    shape has ``batch_size`` draws; the draws left over at the end are dropped, as a short last
    batch is elsewhere.
    """
    waiting: dict[tuple[int, ...], list[int]] = {}
    batches = []
    for index in order:
        same = waiting.setdefault(images[index].image.shape, [])
        same.append(int(index))
        if len(same) == batch_size:
            batches.append(np.array(same))
            same.clear()
    return batches


def draws_for_one_size_batch(images: Sequence[TrainingImage], batch_size: int) -> int:
    """The fewest draws that are sure to hold ``batch_size`` images of one shape (pigeonhole).

    Fewer may fill no batch at all for :func:`same_size_batches`, and an epoch would then never end.
    """
    shapes = len({image.image.shape for image in images})
    return shapes * (batch_size - 1) + 1


def whole_image_note(images: Sequence[TrainingImage]) -> str:
    """A warning for whole-image training on images of several shapes (empty when there is none).

    Such batches each hold one shape, so where shapes follow data sets, batch norm sees one set per
    batch while training: at equal steps that cost 0.012 Dice on the three val sets (docs/training.md).
    """
    shapes = {image.image.shape for image in images}
    if len(shapes) < 2:
        return ""
    return (
        f"whole images of {len(shapes)} sizes: each batch holds images of one size, which costs Dice when the "
        f"sizes are different data sets; crops of {DEFAULT_CROP_SIZE} px mix them"
    )


def whole_image_crop(images: Sequence[TrainingImage], indices: Sequence[int]) -> int:
    """The largest square crop side, a multiple of 32, that fits inside every image of a batch."""
    smallest = min(min(images[i].image.shape[-2:]) for i in indices)
    return smallest // SIZE_MULTIPLE * SIZE_MULTIPLE


def make_batch(
    images: Sequence[TrainingImage],
    indices: Sequence[int],
    crop_size: int | None,
    config: AugmentConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """(B, 4, crop, crop) batch of augmented random crops; crop_size None: as whole as fits them all."""
    import torch

    from .augment import augment

    side = whole_image_crop(images, indices) if crop_size is None else crop_size
    return torch.stack(
        [augment(_crop(images[i], side, crop_size is None, config, generator), config, generator) for i in indices]
    )


def _crop(
    image: TrainingImage, side: int, whole: bool, config: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """One image's random crop, rescaled where the run rescales crops (never whole images)."""
    from .augment import random_crop, rescaled_crop

    if whole or config.rescale_range_um is None:
        return random_crop(image.stacked(), side, generator)
    return rescaled_crop(image.stacked(), side, _rescaling_size(image), config.rescale_range_um, generator)


def _rescaling_size(image: TrainingImage) -> float:
    from ..scale import UNKNOWN_PIXEL_UM

    return UNKNOWN_PIXEL_UM if image.pixel_size_um is None else image.pixel_size_um


class _Labelled(Protocol):
    name: str
    image: np.ndarray
    label: np.ndarray


def check_training_images(train: Sequence[_Labelled], crop_size: int | None = None) -> None:
    """Refuse data that cannot train anything, with a message that says what to fix."""
    if not train:
        raise TrainingDataError("no training images: give at least one image with a vessel label")
    if not any(np.any(np.asarray(image.label) > 0) for image in train):
        raise TrainingDataError("every label is empty: paint some vessels (any value > 0) before training")
    full = [image.name or str(i) for i, image in enumerate(train) if np.all(np.asarray(image.label) > 0)]
    if full:
        raise TrainingDataError(
            f"the labels of {', '.join(repr(name) for name in full)} mark every pixel as vessel; "
            "paint the background as 0"
        )
    small = next((image for image in train if min(image.image.shape[-2:]) < MIN_SIZE), None)
    if small is not None:
        height, width = small.image.shape[-2:]
        name = repr(small.name) if small.name else "an image"
        raise TrainingDataError(
            f"{name} is only {height} x {width} pixels; training needs at least {MIN_SIZE} x {MIN_SIZE}: "
            "use a larger image or leave this one out"
        )
    if crop_size is not None and (crop_size % SIZE_MULTIPLE or crop_size < MIN_SIZE):
        raise TrainingDataError(f"crop size {crop_size} must be a positive multiple of {SIZE_MULTIPLE}")


T = TypeVar("T")


def prefetched(items: Iterator[T], depth: int = 4) -> Iterator[T]:
    """``items`` made ahead in a background thread, in order, at most ``depth`` waiting.

    On a GPU the next batches are cropped and augmented on the CPU while the current step runs
    (torch's tensor operations release the GIL). Closing the returned generator ends the thread.
    """
    ready: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    closed = threading.Event()

    def offer(entry: tuple[bool, object]) -> bool:
        """Queue ``entry`` unless the consumer has gone (then never block); False once it has."""
        while not closed.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def fill() -> None:
        try:
            for item in items:
                if not offer((True, item)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            offer((False, error))
            return
        offer((False, StopIteration()))

    threading.Thread(target=fill, name="octanet-batches", daemon=True).start()
    try:
        while True:
            ok, item = ready.get()
            if not ok:
                if isinstance(item, StopIteration):
                    return
                raise item  # type: ignore[misc]
            yield item  # type: ignore[misc]
    finally:
        closed.set()
