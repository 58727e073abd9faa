"""Evaluating a model on a labelled dataset with the paper's protocol."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .checkpoint import LoadedModel
from .inference import MAP_CHOICES, segment
from .layouts import DatasetIndex, load_sample
from .metrics import evaluate_image, summarise
from .progress import Progress
from .thresholds import Threshold


@dataclass
class EvaluationResult:
    per_image: list[dict[str, Any]]
    summary: dict[str, Any]


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
) -> Generator[Progress, None, EvaluationResult]:
    """Segment every labelled image of ``index`` and score it.

    ``threshold`` and ``speck_size`` make the mask (see ``binarise``); ``tta`` and
    ``mixed_precision`` are ``iter_segment``'s.
    """
    rows = []
    total = len(index.samples)
    for done, sample in enumerate(index.samples):
        loaded = load_sample(sample)
        label = loaded.label if loaded.label is not None else loaded.pixel_label
        maps = segment(model, loaded.image, device=device, tta=tta, mixed_precision=mixed_precision)
        scores = evaluate_image(
            select_map(maps, which), label, threshold=threshold, speck_size=speck_size, tolerance=tolerance
        )
        rows.append({"image": str(sample.image), "group": sample.group, **scores})
        yield Progress(done + 1, total, f"{sample.stem}: Dice {scores['dice']:.4f}")
    summary = summarise([{k: v for k, v in row.items() if k not in ("image", "group")} for row in rows])
    return EvaluationResult(rows, summary)
