"""The Segment dock's last result and its layers: kept maps, re-thresholding, coarse maps, corrections.

A result is kept as a :class:`SegmentResult` (the probability maps and how the mask is made of
them), so that a new threshold re-binarises the kept map at once, without running the network
again. Its layers are tied to the source layer and share its scale and offset (:mod:`._layers`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.utils import notifications

from napari_octanet.core.thresholds import Threshold, binarise, otsu_level

from ._layers import OutputKind, Placement, add_corrections, find_corrections, write_output

if TYPE_CHECKING:
    import napari

    from napari_octanet.core.inference import Segmentation

    from ._workers import WrappingLabel

OTSU = "otsu"

#: The result shows over the scan: the probability map is added hidden, the mask translucent on top.
FINE = OutputKind(
    "fine", "vessel probability", "image", {"colormap": "magma", "contrast_limits": (0.0, 1.0), "visible": False}
)
VESSELS = OutputKind(
    "vessels",
    "vessels",
    "labels",
    {"colormap": {None: "transparent", 1: "yellow"}, "opacity": 0.5},
    editable=True,
)
_HIDDEN_MAP = {"contrast_limits": (0.0, 1.0), "visible": False}
COARSE = (
    OutputKind("pixel", "coarse vessel probability", "image", _HIDDEN_MAP),
    OutputKind("centerline", "coarse centerline probability", "image", _HIDDEN_MAP),
)


@dataclass(frozen=True)
class MadeWith:
    """What made a result, for its saved record: the checkpoint, TTA, and the file its image was read from."""

    checkpoint: Path
    tta: bool
    source: Path | None


@dataclass(frozen=True)
class SegmentResult:
    """The last run's probability maps, where its layers go, how its vessel layer's mask is made, and what
    made it."""

    placement: Placement
    segmentation: Segmentation
    threshold: Threshold
    speck_size: int
    made_with: MadeWith

    def vessel_mask(self) -> np.ndarray:
        return binarise(self.segmentation.fine, self.threshold, self.speck_size).astype(np.uint8)

    def otsu_levels(self) -> list[float]:
        """The Otsu level of each 2D map (one for an image, one per slice for a stack)."""
        fine = self.segmentation.fine
        return [otsu_level(plane) for plane in fine.reshape(-1, *fine.shape[-2:])]

    def coarse_maps(self) -> tuple[np.ndarray, np.ndarray]:
        return self.segmentation.pixel, self.segmentation.centerline


class ResultLayers:
    """Keeps the last result and writes its layers; ``otsu_info`` shows the Otsu level(s) its mask used."""

    def __init__(self, viewer: napari.viewer.Viewer, otsu_info: WrappingLabel) -> None:
        self._viewer = viewer
        self._otsu_info = otsu_info
        self.last: SegmentResult | None = None

    def show(self, result: SegmentResult, *, coarse: bool) -> None:
        """Keep ``result`` and write its probability and vessel layers (and the coarse maps, if asked)."""
        self.last = result
        write_output(self._viewer, result.placement, FINE, result.segmentation.fine)
        self._write_vessels(result)
        if coarse:
            self.show_coarse()

    def in_viewer(self, placement: Placement) -> bool:
        """Whether the image layer a result was made from is still in the viewer."""
        return any(str(layer.unique_id) == placement.source_id for layer in self._viewer.layers)

    def forget_if_its_image_was_removed(self) -> None:
        """Threshold changes rewrite the kept result's layers: once its image is removed, they must not."""
        if self.last is not None and not self.in_viewer(self.last.placement):
            self.last = None
            self._otsu_info.visible = False

    def apply_mask_rule(self, threshold: Threshold, speck_size: int) -> None:
        """Re-binarise the kept map, only for a new threshold or speck size: napari re-sets the choices on
        layer events."""
        if self.last is None or (threshold, speck_size) == (self.last.threshold, self.last.speck_size):
            return
        self.last = replace(self.last, threshold=threshold, speck_size=speck_size)
        self._write_vessels(self.last)

    def show_coarse(self) -> None:
        if self.last is not None:
            for kind, data in zip(COARSE, self.last.coarse_maps(), strict=True):
                write_output(self._viewer, self.last.placement, kind, data)

    def _write_vessels(self, result: SegmentResult) -> None:
        write_output(self._viewer, result.placement, VESSELS, result.vessel_mask())
        self._otsu_info.visible = result.threshold == OTSU
        levels = result.otsu_levels()
        if len(levels) == 1:
            self._otsu_info.value = f"Otsu level used: {levels[0]:.3f}"
        else:
            self._otsu_info.value = f"Otsu levels used: {min(levels):.3f} to {max(levels):.3f} (one per slice)"

    def make_corrections_layer(self) -> None:
        """An editable copy of the current mask to paint on; an existing corrections layer is never replaced."""
        if self.last is None:
            notifications.show_error("Segment an image first: the corrections layer starts from its vessel mask.")
            return
        placement = self.last.placement
        layer = find_corrections(self._viewer, placement.source_id)
        if layer is None:
            layer = add_corrections(self._viewer, placement, self.last.vessel_mask())
        else:
            notifications.show_info(f"{layer.name!r} already holds your corrections; it is selected, not replaced.")
        self._viewer.layers.selection.active = layer
        layer.mode = "paint"
