"""npe2 reader: single OCTA images, and ROSE-1 / ROSE-2 / image-label-pair folders at any level.

A thin adapter over :mod:`napari_octanet.core.imageio` and :mod:`napari_octanet.core.layouts`.
A single file is claimed only when it can be opened: a multi-page TIFF becomes an (N, H, W)
stack, a file in a label folder (``gt``, ``labels``...) a Labels layer named "<stem> labels" (so
it sits beside its image "<stem>" without a clash), and a damaged file is left to other readers.
A dataset folder becomes, per group (e.g. ``ROSE-1/SVC/test``), one Image layer holding its
images as a stack, and one Labels layer per label folder present (``gt``, ``thick_gt``, ...),
aligned slice for slice; ``metadata["files"]`` lists each layer's files in stack order. Images
of different sizes are never resized: each size gets its own layers. Where a path's folders state
the field of view (OCTA-500's 3M and 6M sets), each layer's scale is its pixel size in µm, which the
docks then use (see :mod:`._pixel_size`); elsewhere napari's default scale states none.

Core modules are imported inside the functions, so napari starts without loading them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from napari_octanet.core.layouts import DatasetIndex, Sample

LayerData = tuple[np.ndarray, dict[str, Any], str]
ReaderFunction = Callable[[str], list[LayerData]]
#: Which label role each of a sample's label fields plays, for the layers' metadata.
LABEL_ROLES = {"label": "full", "pixel_label": "pixel-level", "centerline_label": "centerline-level"}
#: How many left-out files a warning names before it only counts them.
NAMED_IN_WARNING = 5
#: Folders whose images are vessel labels (those of the dataset layouts, and the usual others).
LABEL_FOLDERS = frozenset({"gt", "thick_gt", "thin_gt", "label", "labels", "mask", "masks", "manual"})


def get_reader(path: str | list[str]) -> ReaderFunction | None:
    """A reader for one image file or one dataset folder; None for anything else (never raises).

    Lists of paths (napari's stacking of several files) are left to other readers.
    """
    if not isinstance(path, str | Path):
        return None
    from napari_octanet.core.imageio import looks_like_image
    from napari_octanet.core.layouts import layouts_present

    target = Path(path)
    try:
        if target.is_file():
            return _file_reader(target) if looks_like_image(target) else None
        if target.is_dir() and layouts_present(target):
            return read_dataset_folder
    except OSError:
        return None
    return None


def _file_reader(path: Path) -> ReaderFunction | None:
    """The reader for a file that opens as a 2D image, a colour image or an (N, H, W) TIFF stack; else None."""
    from napari_octanet.core.imageio import TIFF_SUFFIXES

    if path.suffix.lower() in TIFF_SUFFIXES:
        shape = _tiff_shape(path)
        if shape is None:
            return None
        if len(shape) == 3 and shape[-1] not in (3, 4):
            return read_tiff_stack
        return read_image_file if len(shape) == 2 or len(shape) == 3 else None
    return read_image_file if _opens_with_pillow(path) else None


def _tiff_shape(path: Path) -> tuple[int, ...] | None:
    """The first series' shape without length-one axes, or None for a TIFF tifffile cannot parse."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return tuple(n for n in tif.series[0].shape if n != 1)
    except Exception:  # noqa: BLE001 - tifffile raises many types for damaged files: not ours to open
        return None


def _opens_with_pillow(path: Path) -> bool:
    """True for a PNG, BMP or JPEG whose structure Pillow can verify (truncated or fake files fail)."""
    from PIL import Image as PillowImage

    try:
        with PillowImage.open(path) as image:
            image.verify()
    except Exception:  # noqa: BLE001 - Pillow raises many types for damaged files: not ours to open
        return False
    return True


def read_image_file(path: str) -> list[LayerData]:
    """One grey Image layer (colour turned to grey) named after the file; in a label folder, a Labels layer."""
    from napari_octanet.core.imageio import read_image, read_label

    file = Path(path)
    if file.parent.name.lower() in LABEL_FOLDERS:
        label = read_label(file).astype(np.uint8)
        return [(label, _file_meta(file, f"{file.stem} labels", label.shape), "labels")]
    image = read_image(file)
    return [(image, _file_meta(file, file.stem, image.shape), "image")]


def read_tiff_stack(path: str) -> list[LayerData]:
    """A multi-page TIFF as one (N, H, W) Image layer."""
    import tifffile

    stack = np.squeeze(tifffile.imread(path))
    return [(stack, _file_meta(Path(path), Path(path).stem, stack.shape), "image")]


def _file_meta(file: Path, name: str, shape: tuple[int, ...]) -> dict[str, Any]:
    return {"name": name, "metadata": {"files": [str(file)]}, **_scale(file, shape)}


def _scale(path: str | Path, shape: tuple[int, ...]) -> dict[str, tuple[float, ...]]:
    """``{"scale": ...}`` in µm per pixel (1 along a stack's slices) where the path's folders state the pixel
    size of an image of this shape, else nothing (napari's default scale: no pixel size known)."""
    from napari_octanet.core.scale import pixel_size_of_path

    try:
        pixel_size_um = pixel_size_of_path(path, shape[-1])
    except ValueError:  # an image far too narrow for the stated field of view: no plausible pixel size
        return {}
    return {} if pixel_size_um is None else {"scale": (1.0,) * (len(shape) - 2) + (pixel_size_um, pixel_size_um)}


def read_dataset_folder(path: str) -> list[LayerData]:
    """Image and Labels layers for every group of every layout found in the folder."""
    from napari_octanet.core.layouts import index_dataset, layouts_present

    layers: list[LayerData] = []
    for layout in layouts_present(path):
        index = index_dataset(path, layout)
        _warn_about_left_out_files(index)
        for group, samples in index.groups().items():
            layers += _group_layers(group, layout, samples)
    return layers


def _group_layers(group: str, layout: str, samples: list[Sample]) -> list[LayerData]:
    """The layers of one group: an Image layer and its Labels layers per image size."""
    from napari_octanet.core.layouts import read_sample_files

    by_size: dict[tuple[int, ...], list[tuple[Sample, np.ndarray, dict[Path, np.ndarray]]]] = {}
    for sample in samples:
        image, labels = read_sample_files(sample)
        by_size.setdefault(image.shape, []).append((sample, image, labels))
    layers: list[LayerData] = []
    for shape, members in by_size.items():
        name = group.replace("/", " ")
        if len(by_size) > 1:
            name += f" {shape[0]}x{shape[1]}"
        images = _stack([image for _, image, _ in members])
        files = [str(sample.image) for sample, _, _ in members]
        scale = _scale(files[0], images.shape)
        layers.append((images, {"name": name, "metadata": {"files": files, "layout": layout}, **scale}, "image"))
        layers += _label_layers(name, members, scale)
    return layers


def _label_layers(
    name: str, members: list[tuple[Sample, np.ndarray, dict[Path, np.ndarray]]], scale: dict[str, tuple[float, ...]]
) -> list[LayerData]:
    """One Labels layer (0/1, uint8) per label folder, named after the folder, e.g. ``thick_gt``, at its images'
    ``scale``."""
    folders_per_sample = [_label_folders(sample) for sample, _, _ in members]
    layers = []
    for folder, (_, roles) in folders_per_sample[0].items():
        paths = [folders[folder][0] for folders in folders_per_sample]
        masks = [labels[path] for (_, _, labels), path in zip(members, paths, strict=True)]
        metadata = {"files": [str(p) for p in paths], "label_folder": folder, "roles": roles}
        meta = {"name": f"{name} {folder}", "metadata": metadata, **scale}
        layers.append((_stack(masks).astype(np.uint8), meta, "labels"))
    return layers


def _label_folders(sample: Sample) -> dict[str, tuple[Path, list[str]]]:
    """The sample's label files by folder name, each with the roles it plays (ROSE-2 gt: full and centerline)."""
    folders: dict[str, tuple[Path, list[str]]] = {}
    for field, role in LABEL_ROLES.items():
        path = getattr(sample, field)
        if path is not None:
            folders.setdefault(path.parent.name, (path, []))[1].append(role)
    return folders


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    """A single 2D array as it is; several as an (N, H, W) stack."""
    return arrays[0] if len(arrays) == 1 else np.stack(arrays)


def _warn_about_left_out_files(index: DatasetIndex) -> None:
    left_out = index.unpaired + index.unreadable
    if not left_out:
        return
    named = ", ".join(str(p) for p in left_out[:NAMED_IN_WARNING])
    more = f" and {len(left_out) - NAMED_IN_WARNING} more" if len(left_out) > NAMED_IN_WARNING else ""
    warnings.warn(
        f"{len(index.unpaired)} file(s) without a partner of the same stem and {len(index.unreadable)} "
        f"unreadable file(s) in {index.root} were not opened: {named}{more}",
        stacklevel=2,
    )
