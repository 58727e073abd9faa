"""One scan (or stack) segmented and thresholded: its maps and its vessel mask, as a batch makes them.

Imports torch (through the inference), so :mod:`napari_octanet.core.batch` leaves it to be imported
where it is used.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from ..inference import Segmentation, segment
from ..thresholds import DEFAULT_SPECK_SIZE, Threshold, binarise

if TYPE_CHECKING:
    from ..checkpoint import LoadedModel


@dataclass
class SegmentedScan(Segmentation):
    """The inference's maps, and the vessel mask drawn from the fine map (boolean, the maps' shape)."""

    mask: np.ndarray | None = None

    @property
    def probability(self) -> np.ndarray:
        """The vessel probability the mask is drawn from: the fine (SRS) map."""
        return self.fine


def segment_scan(
    model: LoadedModel,
    image: np.ndarray,
    *,
    threshold: Threshold = "otsu",
    speck_size: int = DEFAULT_SPECK_SIZE,
    pixel_size_um: float | None = None,
    **inference: Any,
) -> SegmentedScan:
    """Segment a 2D scan or an (N, H, W) stack (``inference``: ``core.inference.segment``'s options, such
    as ``device``, ``tta``, ``mixed_precision``), then threshold the fine map as ``octanet segment`` does."""
    maps = segment(model, image, pixel_size_um=pixel_size_um, **inference)
    mask = binarise(maps.fine, threshold, speck_size)
    return SegmentedScan(**{item.name: getattr(maps, item.name) for item in fields(maps) if item.init}, mask=mask)
