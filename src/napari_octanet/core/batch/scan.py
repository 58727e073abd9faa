"""One scan (or stack) segmented and thresholded: its maps and its vessel mask, as a batch makes them,
and, where asked, each slice's confidence and flags (``core.quality``).

Imports torch (through the inference), so :mod:`napari_octanet.core.batch` leaves it to be imported
where it is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from ..inference import Segmentation, segment
from ..quality import Flag, ScanQuality, assess, model_calibration
from ..thresholds import DEFAULT_SPECK_SIZE, Threshold, binarise

if TYPE_CHECKING:
    from ..checkpoint import LoadedModel


@dataclass
class SegmentedScan(Segmentation):
    """The inference's maps, the vessel mask drawn from the fine map (boolean, the maps' shape) and, once
    assessed, one ScanQuality per slice (a 2D scan: one)."""

    mask: np.ndarray | None = None
    quality: list[ScanQuality] = field(default_factory=list)

    @property
    def probability(self) -> np.ndarray:
        """The vessel probability the mask is drawn from: the fine (SRS) map."""
        return self.fine

    @property
    def is_stack(self) -> bool:
        """Whether the maps are an (N, H, W) stack (the confidence and flags are then lists, one per slice)."""
        return np.ndim(self.fine) == 3

    @property
    def confidence(self) -> float | list[float] | None:
        """The predicted Dice in [0, 1] of the mask (a stack: one per slice); None where not assessed."""
        if not self.quality:
            return None
        values = [checked.confidence for checked in self.quality]
        return values if self.is_stack else values[0]

    @property
    def flags(self) -> tuple[Flag, ...] | list[tuple[Flag, ...]]:
        """What makes the scan unfit for measuring (a stack: per slice), each Flag with its name and reason."""
        flags = [checked.flags for checked in self.quality]
        return flags if self.is_stack else (flags[0] if flags else ())


def segment_scan(
    model: LoadedModel,
    image: np.ndarray,
    *,
    threshold: Threshold = "otsu",
    speck_size: int = DEFAULT_SPECK_SIZE,
    pixel_size_um: float | None = None,
    assess_quality: bool = False,
    **inference: Any,
) -> SegmentedScan:
    """Segment a 2D scan or an (N, H, W) stack (``inference``: ``core.inference.segment``'s options, such
    as ``device``, ``tta``, ``mixed_precision``), then threshold the fine map as ``octanet segment`` does.

    ``assess_quality``: also each slice's confidence and flags, with the model's own calibration.
    """
    maps = segment(model, image, pixel_size_um=pixel_size_um, **inference)
    mask = binarise(maps.fine, threshold, speck_size)
    result = SegmentedScan(**{item.name: getattr(maps, item.name) for item in fields(maps) if item.init}, mask=mask)
    if assess_quality:
        result.quality = assess(result, image, model_calibration(model.info.provenance))
    return result
