"""Evaluating a model on a labelled dataset with the paper's protocol.

A sample whose files cannot be used (an unreadable image or label, a label of another size than
its image) is skipped and named in the result, as files left out of the index are; the others
are scored. Only when no sample can be scored is that an error.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .checkpoint import LoadedModel
from .imageio import ImageReadError
from .inference import MAP_CHOICES, segment
from .layouts import DatasetIndex, LayoutError, load_sample, split_folder_of
from .metrics import evaluate_image, summarise
from .progress import Progress
from .thresholds import Threshold

if TYPE_CHECKING:
    from .scale import PixelSizeRule

#: The split scored when none is named and the folder given is not itself a split folder.
DEFAULT_SPLIT = "test"


@dataclass
class EvaluationResult:
    per_image: list[dict[str, Any]]
    summary: dict[str, Any]
    #: One line per sample left out: the file and the problem (see the module docstring).
    skipped: list[str]


def split_to_score(root: str | Path, split: str | None) -> str:
    """The split named; unnamed, the split folder ``root`` is (or is inside), else :data:`DEFAULT_SPLIT`."""
    if split is not None:
        return split
    folder = split_folder_of(root)
    return folder.name if folder is not None else DEFAULT_SPLIT


def select_map(maps: Any, which: str) -> np.ndarray:
    """The probability map a score is computed on: SRS output, either coarse map, or their max."""
    if which == "coarse":
        return np.maximum(maps.pixel, maps.centerline)
    if which not in MAP_CHOICES:
        raise ValueError(f"unknown map {which!r}; choose one of {', '.join(MAP_CHOICES)}")
    return getattr(maps, which)


def iter_evaluate(
    model: LoadedModel,
    index: DatasetIndex,
    *,
    threshold: Threshold = "otsu",
    speck_size: int = 0,
    tolerance: bool = False,
    device: str = "auto",
    which: str = "fine",
    tta: bool = False,
    mixed_precision: bool | None = None,
    pixel_sizes: PixelSizeRule | None = None,
) -> Generator[Progress, None, EvaluationResult]:
    """Segment every labelled image of ``index`` and score it.

    ``threshold`` and ``speck_size`` make the mask (see ``binarise``); ``tta`` and
    ``mixed_precision`` are ``iter_segment``'s; ``pixel_sizes`` gives each image's pixel size
    (``iter_segment``'s ``pixel_size_um``; None: every image taken as it is).
    """
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    total = len(index.samples)
    for done, sample in enumerate(index.samples):
        try:
            loaded = load_sample(sample)
        except (ImageReadError, LayoutError) as error:
            skipped.append(str(error))
            yield Progress(done + 1, total, f"{sample.stem}: skipped")
            continue
        label = loaded.label if loaded.label is not None else loaded.pixel_label
        pixel_size_um = None if pixel_sizes is None else pixel_sizes.of(sample.image, loaded.image.shape[1])
        maps = segment(
            model, loaded.image, device=device, tta=tta, mixed_precision=mixed_precision, pixel_size_um=pixel_size_um
        )
        scores = evaluate_image(
            select_map(maps, which), label, threshold=threshold, speck_size=speck_size, tolerance=tolerance
        )
        rows.append({"image": str(sample.image), "group": sample.group, **scores})
        yield Progress(done + 1, total, f"{sample.stem}: Dice {scores['dice']:.4f}")
    if not rows:
        more = f"; and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        raise LayoutError(f"none of the {total} sample(s) in {index.root} could be scored: {skipped[0]}{more}")
    summary = summarise([{k: v for k, v in row.items() if k not in ("image", "group")} for row in rows])
    return EvaluationResult(rows, summary, skipped)
