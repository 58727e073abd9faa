"""Training data from napari layers: each layer's pixels copied on the GUI thread, checked, and cut into 2D slices.

The slices then pass :func:`.data.check_training_images`, the rules every training run follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..network.config import SIZE_MULTIPLE
from ..preprocess import InputError, numeric_pixels, rgb_to_grey
from .data import TrainingDataError, check_training_images
from .settings import DEFAULT_CROP_SIZE

#: Largest training crop taken from layers; smaller images get a crop that fits inside them.
MAX_CROP = DEFAULT_CROP_SIZE


@dataclass(frozen=True)
class NamedArray:
    """A copy of one layer's pixels (made on the GUI thread) and the layer's name."""

    name: str
    data: np.ndarray
    rgb: bool = False


@dataclass(frozen=True)
class ImagePair:
    """An image, its vessel labels (0 = background) and, optionally, its centerline labels."""

    image: NamedArray
    label: NamedArray
    centerline: NamedArray | None = None
    #: µm per pixel of the image (its layer's scale), None where unknown.
    pixel_size_um: float | None = None


@dataclass(frozen=True)
class LabelledSlice:
    """One 2D training image; the image is grey (RGB already converted), the labels as painted."""

    name: str
    group: str
    image: np.ndarray
    label: np.ndarray
    centerline: np.ndarray | None
    pixel_size_um: float | None = None


@dataclass(frozen=True)
class TrainingData:
    slices: list[LabelledSlice]
    #: What the user should know about how the layers were read (skipped slices, conversions).
    notes: list[str]

    @property
    def crop_size(self) -> int:
        """The largest multiple of 32 (at most MAX_CROP) that fits inside every slice."""
        smallest = min(min(s.image.shape) for s in self.slices)
        return min(MAX_CROP, smallest // SIZE_MULTIPLE * SIZE_MULTIPLE)


def labelled_slices(pairs: Sequence[ImagePair]) -> TrainingData:
    """Check every pair and return the 2D slices that have any vessel painted.

    Stacks (and higher-dimensional layers) are read as 2D slices along their leading axes; slices
    whose label is all background are skipped, and the notes say how many were used. The slices
    then pass :func:`check_training_images`, the rules every training run follows.
    """
    if not pairs:
        raise TrainingDataError("No training data: add a row with an image layer and its vessel labels.")
    _refuse_repeats(pairs)
    slices: list[LabelledSlice] = []
    notes: list[str] = []
    for pair in pairs:
        pair_slices, pair_notes = _pair_slices(pair)
        slices += pair_slices
        notes += pair_notes
    if not slices:
        names = ", ".join(repr(pair.label.name) for pair in pairs)
        raise TrainingDataError(
            f"The vessel labels ({names}) are empty: paint some vessels (any label value above 0) before training."
        )
    check_training_images(slices)
    return TrainingData(slices, notes)


def _refuse_repeats(pairs: Sequence[ImagePair]) -> None:
    seen: set[str] = set()
    for pair in pairs:
        if pair.image.name in seen:
            raise TrainingDataError(f"Image layer {pair.image.name!r} is listed twice; remove one of its rows.")
        seen.add(pair.image.name)


def _grey(layer: NamedArray) -> tuple[np.ndarray, str | None]:
    """The layer's pixels as grey (..., H, W), and a note when it was converted."""
    try:
        data = numeric_pixels(layer.data, f"Image layer {layer.name!r}")
    except InputError as error:
        raise TrainingDataError(str(error)) from None
    if not layer.rgb:
        return data, None
    if data.shape[-1] not in (3, 4):
        raise TrainingDataError(
            f"Image layer {layer.name!r} is marked RGB but its shape {data.shape} has no colour axis of 3 or 4 last."
        )
    return rgb_to_grey(data), f"{layer.name!r} is an RGB image: it was converted to grey (luminance) for training"


def _pair_slices(pair: ImagePair) -> tuple[list[LabelledSlice], list[str]]:
    image, rgb_note = _grey(pair.image)
    notes = [rgb_note] if rgb_note else []
    if image.ndim < 2:
        raise TrainingDataError(f"Image layer {pair.image.name!r} has shape {image.shape}; it needs at least 2D.")
    label = _matching(pair.label, image, pair.image, "vessel labels")
    centerline = _matching(pair.centerline, image, pair.image, "centerline labels") if pair.centerline else None
    height, width = image.shape[-2:]
    images = image.reshape(-1, height, width)
    labels = label.reshape(-1, height, width)
    centerlines = centerline.reshape(-1, height, width) if centerline is not None else None
    if image.ndim > 3:
        notes.append(
            f"{pair.image.name!r} has {image.ndim} dimensions {image.shape}: each of its "
            f"{len(images)} 2D planes (last two axes) is a separate training image"
        )
    stacked = len(images) > 1
    slices: list[LabelledSlice] = []
    for index, (plane, plane_label) in enumerate(zip(images, labels, strict=True)):
        if not (plane_label > 0).any():
            continue
        where = f" slice {_index_name(index, image.shape[:-2])}" if stacked else ""
        plane_centerline = centerlines[index] if centerlines is not None else None
        if plane_centerline is not None and not (plane_centerline > 0).any():
            plane_centerline = None  # not painted on this slice: derive it from the vessel label
        slices.append(
            LabelledSlice(
                f"{pair.image.name}{where}", pair.image.name, plane, plane_label, plane_centerline, pair.pixel_size_um
            )
        )
    if stacked and slices and len(slices) < len(images):
        notes.append(
            f"{pair.image.name!r}: {len(slices)} of {len(images)} slices have vessels painted in "
            f"{pair.label.name!r} and were used; the {len(images) - len(slices)} unlabelled slice(s) were skipped"
        )
    return slices, notes


def _matching(label: NamedArray | None, image: np.ndarray, image_layer: NamedArray, what: str) -> np.ndarray:
    """The labels as an array of the image's (grey) shape, or an error that names both shapes and layers."""
    if label is None:
        raise TrainingDataError(f"Choose the {what} layer for image {image_layer.name!r}.")
    data = np.asarray(label.data)
    if data.shape != image.shape:
        colour = f" (its RGB colour axis aside: {image.shape})" if image_layer.rgb else ""
        raise TrainingDataError(
            f"Image layer {image_layer.name!r} has shape {np.shape(image_layer.data)}{colour} but {what} "
            f"layer {label.name!r} has shape {data.shape}; they must cover the same pixels. Pick the labels "
            "painted on this image."
        )
    return data


def _index_name(flat_index: int, leading_shape: tuple[int, ...]) -> str:
    """A stack slice's index as the user sees it in napari's sliders (a tuple for 4D layers)."""
    index = np.unravel_index(flat_index, leading_shape)
    return str(int(index[0])) if len(index) == 1 else str(tuple(int(i) for i in index))
