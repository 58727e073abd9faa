"""Checking and scaling user images, and padding them to what the network accepts."""

from __future__ import annotations

import numpy as np

from .network.config import MIN_SIZE, SIZE_MULTIPLE


class InputError(ValueError):
    """An image the network cannot take, with a message naming the problem and the fix."""


def as_image_stack(image: np.ndarray, *, rgb: bool | None = None) -> tuple[np.ndarray, bool]:
    """Return (stack of shape (N, H, W), was_2d) for a grey 2D image or a stack of them.

    A trailing axis of 3 or 4 is read as RGB(A) colour and turned to grey (luminance) when
    ``rgb`` is True, or when it is None and the array is (H, W, 3|4). Anything else that is not
    2D or 3D is refused with a message that names the shape.
    """
    array = numeric_pixels(image)
    looks_rgb = array.ndim == 3 and array.shape[-1] in (3, 4) and min(array.shape[:2]) >= MIN_SIZE
    if rgb or (rgb is None and looks_rgb):
        if array.shape[-1] not in (3, 4):
            raise InputError(f"image of shape {array.shape} was marked RGB but its last axis is not 3 or 4 channels")
        array = rgb_to_grey(array)
    elif rgb is False and array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] >= MIN_SIZE:
        raise InputError(
            f"image of shape {array.shape} looks like a colour image (H, W, {array.shape[-1]}) where a grey "
            "image was expected; convert it to grey or mark it as RGB"
        )
    was_2d = array.ndim == 2
    if was_2d:
        array = array[np.newaxis]
    elif array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3:
        raise InputError(
            f"image has shape {np.shape(image)}; expected a 2D grey image (H, W), an RGB image "
            "(H, W, 3) or a stack of grey images (N, H, W)"
        )
    height, width = array.shape[-2:]
    if min(height, width) < MIN_SIZE:
        raise InputError(
            f"image of shape {np.shape(image)} is too small: each side needs at least {MIN_SIZE} pixels "
            "(a stack's last two axes are its height and width)"
        )
    if array.shape[0] == 0:
        raise InputError("the image stack is empty")
    return array, was_2d


def numeric_pixels(image: np.ndarray, what: str = "image") -> np.ndarray:
    """The pixels as an integer or floating-point array (booleans as 0/1); anything else is refused."""
    array = np.asarray(image)
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputError(f"{what} has dtype {array.dtype}; expected integer or floating-point pixels")
    return array


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luminance of an (..., 3|4) array, keeping the input's value range."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float64)
    grey = rgb[..., :3].astype(np.float64) @ weights
    return grey.astype(np.float32)


#: Each slice's 0.1st and 99.9th intensity percentiles map to 0 and 1 (values beyond are clipped), as
#: csbdeep and stardist do: a scan's bit depth, the dtype it is stored in and a few hot pixels no
#: longer change what the network sees. On the real val scans (8-bit, full range) this costs the
#: bundled model at most 0.0002 Dice against scaling by the dtype's range (docs/benchmarks.md: Robustness).
NORMALISATION_PERCENTILES = (0.1, 99.9)


def normalise(stack: np.ndarray) -> np.ndarray:
    """Scale each (H, W) slice of an (N, H, W) stack to float32 in [0, 1] by its own percentiles.

    A slice whose percentiles coincide (mostly one value) falls back to its min and max; a
    featureless (constant) slice becomes all zeros (see :func:`featureless_slices`). NaN or
    infinite pixels are refused: they would silently poison every output pixel.
    """
    values = stack.astype(np.float32, copy=False)
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(values.size - finite.sum())
        raise InputError(
            f"image contains {bad} NaN or infinite pixel(s); replace them (e.g. numpy.nan_to_num) before segmenting"
        )
    return np.stack([_normalise_slice(plane) for plane in values])


def _normalise_slice(plane: np.ndarray) -> np.ndarray:
    low, high = (float(v) for v in np.percentile(plane, NORMALISATION_PERCENTILES))
    if high <= low:
        low, high = float(plane.min()), float(plane.max())
    if high <= low:
        return np.zeros_like(plane, dtype=np.float32)
    return np.clip((plane - low) / (high - low), 0.0, 1.0).astype(np.float32)


def featureless_slices(stack: np.ndarray) -> list[int]:
    """Indices of the (H, W) slices of an (N, H, W) stack that hold one value only (blank scans).

    The network has nothing to find in them, and Otsu on their maps would invent vessels from
    noise, so inference gives them empty maps and says so.
    """
    flat = stack.reshape(stack.shape[0], -1)
    return [int(i) for i in np.flatnonzero(flat.min(axis=1) == flat.max(axis=1))]


def padded_size(size: int) -> int:
    return -(-size // SIZE_MULTIPLE) * SIZE_MULTIPLE


def pad_to_multiple(batch: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad (N, H, W) at the bottom and right to multiples of 32; return it and (H, W)."""
    height, width = batch.shape[-2:]
    pad_h, pad_w = padded_size(height) - height, padded_size(width) - width
    if pad_h == 0 and pad_w == 0:
        return batch, (height, width)
    mode = "reflect" if pad_h < height and pad_w < width else "symmetric"
    return np.pad(batch, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode), (height, width)
