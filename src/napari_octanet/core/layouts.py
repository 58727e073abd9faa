"""Dataset layouts on disk (ROSE-1, ROSE-2, image/label pairs), found and paired by file stem.

Three layouts are understood; each is a set of *split folders* holding one image folder and
one or more label folders:

- ``rose1``: ``ROSE-1/{SVC,DVC,SVC_DVC}/{train,test}/`` with ``img/`` and ``gt/`` (full label),
  and for SVC also ``thick_gt/`` (pixel-level) and ``thin_gt/`` (centerline-level).
- ``rose2``: ``ROSE-2/{train,test}/`` with ``original/`` and ``gt/`` (centerline-level).
- ``pairs``: ``<set>/<split>/`` with ``image/`` and ``label/`` (e.g. OCTA-500, ROSSA).

The root given may be any level: a folder above several datasets, a dataset, a ROSE-1 layer,
a split folder, or a folder inside a split (such as ``img/``), which stands for its split
(:func:`split_folder_of`). A split asked for that the root does not hold is an error that lists
the split folders it does hold.
Images and labels are paired by file stem, never by sorted order; files without a partner and
files that are not images are listed in the index, not dropped silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .centerline import centerline_from_label
from .imageio import looks_like_image, read_image, read_label

LAYOUTS = ("rose1", "rose2", "pairs")
#: How deep below the root split folders are searched for (octa-dev root -> set -> split is 2;
#: a folder holding ROSE-1 -> layer -> split is 3; one more level of slack).
MAX_SEARCH_DEPTH = 4

LAYOUT_DESCRIPTION = (
    "expected one of these layouts (at any level of the tree):\n"
    "  rose1: ROSE-1/{SVC,DVC,SVC_DVC}/{train,test}/{img,gt[,thick_gt,thin_gt]}/\n"
    "  rose2: ROSE-2/{train,test}/{original,gt}/\n"
    "  pairs: <set>/<split>/{image,label}/ (e.g. OCTA500_3M/train/image and .../label)"
)


class LayoutError(ValueError):
    """A folder that is not a dataset in a known layout, or one with no usable samples."""


@dataclass(frozen=True)
class _LayoutSpec:
    """Folder names of one layout; label roles list candidate folders in order of preference."""

    image_dir: str
    label_dir: str
    pixel_dirs: tuple[str, ...]
    centerline_dirs: tuple[str, ...]
    group_depth: int  # how many trailing path parts of a split folder name its group

    def folder_names(self) -> set[str]:
        return {self.image_dir, self.label_dir, *self.pixel_dirs, *self.centerline_dirs}


_SPECS = {
    "rose1": _LayoutSpec("img", "gt", pixel_dirs=("thick_gt", "gt"), centerline_dirs=("thin_gt",), group_depth=3),
    "rose2": _LayoutSpec("original", "gt", pixel_dirs=(), centerline_dirs=("gt",), group_depth=2),
    "pairs": _LayoutSpec("image", "label", pixel_dirs=("label",), centerline_dirs=(), group_depth=2),
}


@dataclass(frozen=True)
class Sample:
    """One image and its label files.

    ``label`` is the full label (``gt``/``label``); ``pixel_label`` the pixel-level one (ROSE-1
    SVC ``thick_gt``, otherwise the full label; None for ROSE-2); ``centerline_label`` the
    centerline-level one (ROSE-1 SVC ``thin_gt``, ROSE-2 ``gt``; None where there is none).
    """

    stem: str
    image: Path
    label: Path | None
    pixel_label: Path | None
    centerline_label: Path | None
    group: str


@dataclass
class DatasetIndex:
    root: Path
    layout: str
    split: str | None
    samples: list[Sample]
    unpaired: list[Path]
    unreadable: list[Path]

    def groups(self) -> dict[str, list[Sample]]:
        """Samples by group (e.g. ``ROSE-1/SVC/train``), groups and samples in index order."""
        grouped: dict[str, list[Sample]] = {}
        for sample in self.samples:
            grouped.setdefault(sample.group, []).append(sample)
        return grouped

    def report(self) -> str:
        """A summary for people: samples per group, and every unpaired or unreadable file."""
        lines = [f"{self.layout} dataset at {self.root} (split: {self.split or 'all'})"]
        grouped = self.groups()
        lines += [f"  {group}: {len(samples)} sample(s)" for group, samples in grouped.items()]
        lines.append(f"  total: {len(self.samples)} sample(s) in {len(grouped)} group(s)")
        for title, paths in (("without a partner", self.unpaired), ("not readable as images", self.unreadable)):
            if paths:
                lines.append(f"{len(paths)} file(s) {title}:")
                lines += [f"  {path}" for path in paths]
        return "\n".join(lines)


@dataclass
class LoadedSample:
    """A sample's pixels; labels the layout lacks are derived (see :func:`load_sample`)."""

    sample: Sample
    image: np.ndarray
    label: np.ndarray | None
    pixel_label: np.ndarray
    centerline_label: np.ndarray


def layouts_present(root: str | Path) -> tuple[str, ...]:
    """The layouts of the split folders found at or below ``root`` (empty when none)."""
    found = _split_folders(Path(root))
    return tuple(layout for layout in LAYOUTS if found.get(layout))


def detect_layout(root: str | Path) -> str:
    """'rose1', 'rose2' or 'pairs' for a dataset folder at any level; LayoutError otherwise."""
    root = _existing_folder(root)
    present = layouts_present(root)
    if len(present) == 1:
        return present[0]
    if not present:
        raise LayoutError(f"{root} is not a dataset folder: no image and label folders found; {LAYOUT_DESCRIPTION}")
    found = _split_folders(root)
    listing = "; ".join(f"{layout}: {', '.join(str(p) for p in found[layout])}" for layout in present)
    raise LayoutError(
        f"{root} holds datasets in several layouts ({listing}); open one of them, or pass the layout explicitly"
    )


def index_dataset(root: str | Path, layout: str = "auto", split: str | None = None) -> DatasetIndex:
    """Pair the images and labels of every split folder at or below ``root``.

    ``split`` keeps split folders named exactly ``split`` or starting with ``split + "_"`` (so
    ``train`` takes ``train_manual`` and ``train_sam``); None keeps all.
    """
    root = _existing_folder(root)
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in _SPECS:
        raise LayoutError(f"unknown layout {layout!r}; choose 'auto' or one of {', '.join(LAYOUTS)}")
    spec = _SPECS[layout]
    present = _split_folders(root).get(layout, [])
    folders = [f for f in present if split is None or _split_matches(f.name, split)]
    index = DatasetIndex(root, layout, split, samples=[], unpaired=[], unreadable=[])
    for folder in folders:
        _index_split_folder(folder, spec, index)
    if not index.samples:
        raise LayoutError(_no_samples_message(index, folders, present))
    return index


def load_sample(sample: Sample) -> LoadedSample:
    """Read a sample's image and labels, deriving what the layout lacks.

    Without a centerline-level label file, the centerline label is the skeleton of the
    pixel-level (or full) label; without a pixel-level one (ROSE-2), the pixel-level label is
    the centerline label. Labels whose shape differs from the image's are a LayoutError.
    """
    image, labels = read_sample_files(sample)
    label, pixel, centerline = (
        labels.get(path) for path in (sample.label, sample.pixel_label, sample.centerline_label)
    )
    pixel = next((mask for mask in (pixel, label, centerline) if mask is not None), None)
    if pixel is None:
        raise LayoutError(f"sample {sample.stem!r} ({sample.image}) has no label file")
    if centerline is None:
        centerline = centerline_from_label(pixel)
    return LoadedSample(sample, image, label, pixel, centerline)


def read_sample_files(sample: Sample) -> tuple[np.ndarray, dict[Path, np.ndarray]]:
    """The sample's image and each of its distinct label files as it is on disk (nothing derived).

    A label whose shape differs from the image's is a LayoutError naming both shapes and files.
    """
    image = read_image(sample.image)
    label_paths = dict.fromkeys(p for p in (sample.label, sample.pixel_label, sample.centerline_label) if p)
    labels = {path: read_label(path) for path in label_paths}
    for path, label in labels.items():
        if label.shape != image.shape:
            raise LayoutError(
                f"label {path} has shape {label.shape} but its image {sample.image} has shape {image.shape}; "
                "labels must have the image's height and width"
            )
    return image, labels


def split_folder_of(root: str | Path) -> Path | None:
    """The split folder ``root`` is, or is an image or label folder of; None for any other folder."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return None
    enclosing = _enclosing_split_folder(root.resolve())
    return enclosing[0] if enclosing is not None else None


def _enclosing_split_folder(folder: Path) -> tuple[Path, str] | None:
    """(split folder, layout) when ``folder`` is a split folder or one of its image and label folders."""
    layout = _layout_of_split_folder(folder)
    if layout is not None:
        return folder, layout
    layout = _layout_of_split_folder(folder.parent)
    if layout is not None and folder.name.lower() in _SPECS[layout].folder_names():
        return folder.parent, layout
    return None


def _existing_folder(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise LayoutError(f"{root} does not exist")
    if not root.is_dir():
        raise LayoutError(f"{root} is a file, not a dataset folder; {LAYOUT_DESCRIPTION}")
    return root.resolve()


def _split_matches(name: str, split: str) -> bool:
    return name == split or name.startswith(split + "_")


def _split_folders(root: Path) -> dict[str, list[Path]]:
    """Split folders by layout, searched below ``root``; an image or label folder stands for its split."""
    found: dict[str, list[Path]] = {}
    for folder, layout in _search_split_folders(root, MAX_SEARCH_DEPTH):
        found.setdefault(layout, []).append(folder)
    if not found and (enclosing := _enclosing_split_folder(root)) is not None:
        folder, layout = enclosing
        found[layout] = [folder]
    return found


def _search_split_folders(folder: Path, depth: int) -> Iterator[tuple[Path, str]]:
    """Breadth-first over sub-folders, not entering split folders (they do not nest)."""
    layout = _layout_of_split_folder(folder)
    if layout is not None:
        yield folder, layout
        return
    if depth == 0:
        return
    for child in _subfolders(folder).values():
        yield from _search_split_folders(child, depth - 1)


def _subfolders(folder: Path) -> dict[str, Path]:
    """Visible sub-folders keyed by lower-case name, in natural order of their names."""
    try:
        entries = [entry for entry in os.scandir(folder) if not entry.name.startswith(".") and entry.is_dir()]
    except OSError:
        return {}
    entries.sort(key=lambda entry: _natural_key(entry.name))
    return {entry.name.lower(): Path(entry.path) for entry in entries}


def _layout_of_split_folder(folder: Path) -> str | None:
    names = _subfolders(folder)
    for layout, spec in _SPECS.items():
        if spec.image_dir in names and spec.label_dir in names:
            return layout
    return None


def _natural_key(name: str) -> list[int | str]:
    """Sort key that puts '2' before '10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _index_split_folder(folder: Path, spec: _LayoutSpec, index: DatasetIndex) -> None:
    """Add the split folder's samples, unpaired and unreadable files to ``index``."""
    subfolders = _subfolders(folder)
    pixel_dir = next((subfolders[name] for name in spec.pixel_dirs if name in subfolders), None)
    centerline_dir = next((subfolders[name] for name in spec.centerline_dirs if name in subfolders), None)
    image_dir, label_dir = subfolders[spec.image_dir], subfolders[spec.label_dir]
    role_dirs = [d for d in dict.fromkeys((image_dir, label_dir, pixel_dir, centerline_dir)) if d is not None]
    files = {d: _images_by_stem(d, index.unreadable) for d in role_dirs}
    complete = set.intersection(*(set(by_stem) for by_stem in files.values()))
    for by_stem in files.values():
        index.unpaired += [path for stem, path in by_stem.items() if stem not in complete]
    group = "/".join(folder.parts[-spec.group_depth :])
    for stem in sorted(complete, key=_natural_key):
        index.samples.append(
            Sample(
                stem=stem,
                image=files[image_dir][stem],
                label=files[label_dir][stem],
                pixel_label=files[pixel_dir][stem] if pixel_dir else None,
                centerline_label=files[centerline_dir][stem] if centerline_dir else None,
                group=group,
            )
        )


def _images_by_stem(folder: Path, unreadable: list[Path]) -> dict[str, Path]:
    """Image files of a folder keyed by stem; other visible files are appended to ``unreadable``.

    Two images sharing a stem (``01.png`` and ``01.tif``) cannot be paired unambiguously.
    """
    by_stem: dict[str, Path] = {}
    visible = (p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    paths = sorted(visible, key=lambda p: _natural_key(p.name))
    for path in paths:
        if not looks_like_image(path):
            unreadable.append(path)
        elif path.stem in by_stem:
            raise LayoutError(
                f"{by_stem[path.stem]} and {path} share the stem {path.stem!r}, so neither can be paired "
                "with certainty; remove or rename one of them"
            )
        else:
            by_stem[path.stem] = path
    return by_stem


def _no_samples_message(index: DatasetIndex, folders: list[Path], present: list[Path]) -> str:
    """Why ``index`` has no sample; ``folders`` are the split folders asked for, ``present`` all of them."""
    where = f"{index.root} (layout {index.layout}, split {index.split or 'all'})"
    if not present:
        return f"no split folder in {where}; {LAYOUT_DESCRIPTION}"
    if not folders:
        names = ", ".join(dict.fromkeys(folder.name for folder in present))
        return (
            f"no split folder named {index.split!r} in {where}; the split folders there are: {names}; "
            "name one of them as the split (--split), or give its folder"
        )
    problems = []
    if index.unpaired:
        examples = ", ".join(p.name for p in index.unpaired[:4])
        problems.append(f"{len(index.unpaired)} file(s) without a partner of the same stem (e.g. {examples})")
    if index.unreadable:
        problems.append(f"{len(index.unreadable)} file(s) that are not images")
    detail = "; ".join(problems) or "the image and label folders are empty"
    return f"no image with its label(s) in {where}: {detail}"
