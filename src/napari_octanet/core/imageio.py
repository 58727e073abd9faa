"""Reading single OCTA images and vessel labels from disk as 2D arrays.

TIFF files are read with tifffile, PNG / BMP / JPEG with scikit-image. A leading or trailing
axis of length one is dropped; colour images become grey (images) or are binarised on any
colour channel (labels). Every failure is an :class:`ImageReadError` that names the file.

Whether a TIFF of shape (3|4, H, W) is one colour image or a stack of slices is read from its
tags, not its shape: interleaved RGB(A) samples are colour; several pages, or ImageJ / OME
channels, slices or frames, are a stack. Planar RGB(A) with tifffile's own shape record is how
tifffile stores *any* (3|4, H, W) array by default, so it is read as a stack of slices (OCTA
projections are grey); planar RGB without that record (another program chose it) is colour,
with a warning saying so.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import tifffile

from .preprocess import rgb_to_grey

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".bmp", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")
#: First bytes of the supported formats, used to spot files that only carry an image suffix.
_SIGNATURES = (
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    b"II+\x00",  # BigTIFF, little-endian
    b"MM\x00+",  # BigTIFF, big-endian
    b"\x89PNG\r\n\x1a\n",
    b"BM",
    b"\xff\xd8\xff",  # JPEG
)
#: Bytes read to recognise a format by its first bytes (the longest signature).
_HEAD_BYTES = max(len(signature) for signature in _SIGNATURES)
#: 8-bit labels are binarised at 128, as in the reference protocol.
EIGHT_BIT_LABEL_LEVEL = 128


class ImageReadError(ValueError):
    """A file that cannot be read as one 2D image; the message names the file and the problem."""


def looks_like_image(path: str | Path) -> bool:
    """True when the file has a supported suffix and starts like a TIFF, PNG, BMP or JPEG file.

    Cheap (reads a few bytes), so a dataset of hundreds of files can be screened before reading.
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return False
    try:
        return _read_head(path).startswith(_SIGNATURES)
    except ImageReadError:
        return False


def read_image(path: str | Path) -> np.ndarray:
    """One 2D grey image with its dtype kept; colour images are turned to grey in the same dtype."""
    path = Path(path)
    array = _read_2d_or_colour(path)
    if array.ndim == 2:
        return array
    return _colour_to_grey(array)


def read_label(path: str | Path) -> np.ndarray:
    """A 2D boolean vessel mask.

    8-bit labels are vessel at >= 128 (the reference protocol), except 0/1 labels (maximum 1),
    which are vessel at > 0; labels of any other dtype are vessel at > 0. For colour labels a
    pixel is vessel when any colour channel (not alpha) is.
    """
    path = Path(path)
    array = _read_2d_or_colour(path)
    if array.ndim == 3:
        array = array[..., :3]
    if array.dtype == bool:
        mask = array
    elif array.dtype == np.uint8 and array.max() > 1:
        mask = array >= EIGHT_BIT_LABEL_LEVEL
    else:
        mask = array > 0
    return mask.any(axis=-1) if mask.ndim == 3 else mask


def _read_2d_or_colour(path: Path) -> np.ndarray:
    """The file's pixels as (H, W) or (H, W, channels); anything else is an ImageReadError."""
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageReadError(f"{path}: unsupported file type {suffix!r}; supported: {', '.join(IMAGE_SUFFIXES)}")
    head = _read_head(path)
    array = _read_tiff(path) if suffix in TIFF_SUFFIXES else _read_with_skimage(path, head)
    return _as_2d_or_colour(array, path)


def _read_head(path: Path) -> bytes:
    """The file's first bytes; a file that cannot be opened is an ImageReadError with the system's reason."""
    try:
        with path.open("rb") as file:
            return file.read(_HEAD_BYTES)
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied; make the file readable (chmod u+r) and retry") from None
    except OSError as error:
        raise ImageReadError(f"{path}: cannot be read: {error.strerror or error}") from None


def _read_tiff(path: Path) -> np.ndarray:
    """A TIFF's first series as (H, W) or (H, W, samples); a stack of slices is an ImageReadError.

    Axes of length one are dropped first. Which axes are slices and which are a pixel's colour
    samples is tifffile's reading of the tags (see the module docstring for planar RGB).
    """
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            array = series.asarray()
            axes = series.axes
            written_by_tifffile = tif.is_shaped
    except Exception as error:  # tifffile raises many types for damaged files
        raise ImageReadError(f"{path}: not a readable TIFF file ({error})") from error
    kept = [i for i, (axis, size) in enumerate(zip(axes, array.shape, strict=True)) if size > 1 or axis in "YX"]
    array, axes = array.reshape([array.shape[i] for i in kept]), "".join(axes[i] for i in kept)
    if any(axis not in "SYX" for axis in axes):
        raise ImageReadError(_stack_message(path, array.shape, f"its tags give the axes {axes}"))
    if "S" not in axes or axes.endswith("S"):
        return array
    if written_by_tifffile:
        raise ImageReadError(
            _stack_message(
                path,
                array.shape,
                f"its tags say planar RGB, which is how tifffile stores any ({array.shape[0]}, H, W) array by "
                "default, and OCTA scans are grey",
            )
        )
    warnings.warn(
        f"{path}: read as one colour image (its tags say planar RGB, from a program other than tifffile); "
        "if it holds slices, save each slice as its own file",
        stacklevel=4,
    )
    return np.moveaxis(array, 0, -1)


def _stack_message(path: Path, shape: tuple[int, ...], why: str) -> str:
    return (
        f"{path}: read as a stack of slices, shape {shape} ({why}); expected one 2D grey or colour image; "
        "save each slice as its own file (and a colour image as (H, W, 3))"
    )


def _read_with_skimage(path: Path, head: bytes) -> np.ndarray:
    """PNG, BMP or JPEG; a file whose ``head`` does not start like one is refused before any decoder sees it.

    (imageio's own message for such a file suggests installing video plugins, which never helps.)
    """
    from skimage import io

    kind = path.suffix.lower()
    if not head.startswith(_SIGNATURES):
        what = "the file is empty" if not head else f"its contents are not a {kind} image"
        raise ImageReadError(f"{path}: not a readable image: {what}")
    try:
        return np.asarray(io.imread(path))
    except Exception as error:  # imageio and Pillow raise many types for damaged files
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImageReadError(f"{path}: not a readable {kind} image (damaged or truncated?): {reason}") from error


def _as_2d_or_colour(array: np.ndarray, path: Path) -> np.ndarray:
    """Drop axes of length one around the image; keep (H, W) or (H, W, 2|3|4)."""
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (2, 3, 4)):
        if min(array.shape[:2]) == 0:
            raise ImageReadError(f"{path}: the image is empty (shape {array.shape})")
        return array
    raise ImageReadError(
        f"{path}: has shape {array.shape}; expected one 2D grey or colour image (H, W) or (H, W, 3|4), "
        "not a stack or volume; save each slice as its own file"
    )


def _colour_to_grey(array: np.ndarray) -> np.ndarray:
    """Grey of a colour image in the input's dtype; (H, W, 2) is grey plus alpha."""
    if array.shape[-1] == 2:
        return array[..., 0]
    grey = rgb_to_grey(array)
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        return np.clip(np.round(grey), info.min, info.max).astype(array.dtype)
    return grey.astype(array.dtype)
