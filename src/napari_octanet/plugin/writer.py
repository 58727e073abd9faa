"""npe2 writers, so that *File > Save Selected Layer(s)* works for the plugin's results.

A Labels layer goes to PNG (2D only) or TIFF: a vessel mask (values 0 and 1) as 0/255, so that
it opens as a mask everywhere, any other labels with their values. An Image layer (the
probability map, a scan) goes to TIFF with its dtype kept. Each file is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_octanet.core.files import write_atomically

PNG_SUFFIX = ".png"
MASK_VALUE = 255


def write_labels(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Write a Labels layer as PNG or TIFF; returns the path written."""
    labels = np.asarray(data)
    if labels.max(initial=0) <= 1:
        labels = (labels > 0).astype(np.uint8) * MASK_VALUE
    elif labels.max() <= np.iinfo(np.uint16).max and labels.min() >= 0:
        labels = labels.astype(np.uint8 if labels.max() <= np.iinfo(np.uint8).max else np.uint16)
    target = Path(path)
    if target.suffix.lower() == PNG_SUFFIX:
        if labels.ndim != 2 or labels.dtype.itemsize > 2:
            raise ValueError(
                f"{target.name}: PNG holds one 2D image of 8 or 16 bits, but the layer is {labels.shape} "
                f"{labels.dtype}; save it as .tif instead"
            )
        write_atomically(target, lambda tmp: _write_png(tmp, labels))
    else:
        write_atomically(target, lambda tmp: _write_tiff(tmp, labels))
    return [str(target)]


def write_image(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Write an Image layer as TIFF, its dtype kept; returns the path written."""
    target = Path(path)
    image = np.asarray(data)
    write_atomically(target, lambda tmp: _write_tiff(tmp, image))
    return [str(target)]


def _write_png(path: Path, array: np.ndarray) -> None:
    from skimage.io import imsave

    imsave(path, array, check_contrast=False)


def _write_tiff(path: Path, array: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(path, array, photometric="minisblack")  # a 3-slice stack is not an RGB image
