"""The Segment dock's results and their layers: kept maps, re-thresholding, coarse maps, corrections.

Each image layer's latest result is kept as a :class:`SegmentResult` (the probability maps, how the
mask is made of them, each slice's confidence and flags), so that a new threshold re-binarises the
current result's map at once, without running the network again, and the review queue can go back
to any of them. The current result is the latest run's, or the one chosen in the review queue. Its
layers are tied to the source layer and share its scale and offset (:mod:`._layers`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Labels
from napari.utils import notifications

from napari_octanet.core.thresholds import Threshold, binarise, otsu_level

from ._layers import OutputKind, Placement, add_corrections, find_corrections, write_output

if TYPE_CHECKING:
    import napari

    from napari_octanet.core.inference import Segmentation
    from napari_octanet.core.quality import ScanQuality

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
    """A run's probability maps, where its layers go, how its vessel layer's mask is made, what made it, and
    each slice's confidence and artefact flags."""

    placement: Placement
    segmentation: Segmentation
    threshold: Threshold
    speck_size: int
    made_with: MadeWith
    qualities: tuple[ScanQuality, ...] = ()

    @property
    def is_stack(self) -> bool:
        return self.segmentation.fine.ndim > 2

    def vessel_mask(self) -> np.ndarray:
        return binarise(self.segmentation.fine, self.threshold, self.speck_size).astype(np.uint8)

    def otsu_levels(self) -> list[float]:
        """The Otsu level of each 2D map (one for an image, one per slice for a stack)."""
        fine = self.segmentation.fine
        return [otsu_level(plane) for plane in fine.reshape(-1, *fine.shape[-2:])]

    def coarse_maps(self) -> tuple[np.ndarray, np.ndarray]:
        return self.segmentation.pixel, self.segmentation.centerline


class ResultLayers:
    """Keeps each image layer's latest result and writes their layers; ``otsu_info`` shows the Otsu level(s) the
    current result's mask used."""

    def __init__(self, viewer: napari.viewer.Viewer, otsu_info: WrappingLabel) -> None:
        self._viewer = viewer
        self._otsu_info = otsu_info
        self._kept: dict[str, SegmentResult] = {}
        #: The result that thresholds, *Correct this result* and *Save results* act on.
        self.current: SegmentResult | None = None

    @property
    def kept(self) -> list[SegmentResult]:
        """Each image layer's latest result, in the order they were first segmented."""
        return list(self._kept.values())

    def show(self, result: SegmentResult, *, coarse: bool) -> None:
        """Keep ``result`` as its image's and the current one, and write its probability and vessel layers (and
        the coarse maps, if asked)."""
        self._keep(result)
        write_output(self._viewer, result.placement, FINE, result.segmentation.fine)
        self._write_vessels(result)
        if coarse:
            self.show_coarse()

    def choose(self, source_id: str) -> None:
        """Make the kept result of the image layer with this id the current one."""
        result = self._kept.get(source_id)
        if result is not None:
            self.current = result
            self._show_otsu_levels(result)

    def _keep(self, result: SegmentResult) -> None:
        self._kept[result.placement.source_id] = result
        self.current = result

    def in_viewer(self, placement: Placement) -> bool:
        """Whether the image layer a result was made from is still in the viewer."""
        return any(str(layer.unique_id) == placement.source_id for layer in self._viewer.layers)

    def forget_if_its_image_was_removed(self) -> None:
        """Threshold changes rewrite the current result's layers: once its image is removed, they must not; nor
        does the review queue list its slices."""
        self._kept = {key: result for key, result in self._kept.items() if self.in_viewer(result.placement)}
        if self.current is not None and self.current.placement.source_id not in self._kept:
            self.current = None
            self._otsu_info.visible = False

    def apply_mask_rule(self, threshold: Threshold, speck_size: int) -> None:
        """Re-binarise the current result's map, only for a new threshold or speck size: napari re-sets the
        choices on layer events."""
        current = self.current
        if current is None or (threshold, speck_size) == (current.threshold, current.speck_size):
            return
        self._keep(replace(current, threshold=threshold, speck_size=speck_size))
        self._write_vessels(self.current)

    def show_coarse(self) -> None:
        if self.current is not None:
            for kind, data in zip(COARSE, self.current.coarse_maps(), strict=True):
                write_output(self._viewer, self.current.placement, kind, data)

    def _write_vessels(self, result: SegmentResult) -> None:
        write_output(self._viewer, result.placement, VESSELS, result.vessel_mask())
        self._show_otsu_levels(result)

    def _show_otsu_levels(self, result: SegmentResult) -> None:
        self._otsu_info.visible = result.threshold == OTSU
        levels = result.otsu_levels()
        if len(levels) == 1:
            self._otsu_info.value = f"Otsu level used: {levels[0]:.3f}"
        else:
            self._otsu_info.value = f"Otsu levels used: {min(levels):.3f} to {max(levels):.3f} (one per slice)"

    def make_corrections_layer(self, slice_index: int | None = None) -> None:
        """An editable copy of the current mask to paint on; an existing corrections layer is never replaced.

        For a stack, only slice ``slice_index`` (the one shown) is copied, into a layer empty elsewhere, and
        pressing again on another slice adds that slice where it is still empty: the Fine-tune dock trains on
        the slices that hold something, so it takes the slices the user chose to correct, not the model's own
        output for the rest.
        """
        if self.current is None:
            notifications.show_error("Segment an image first: the corrections layer starts from its vessel mask.")
            return
        placement, mask = self.current.placement, self.current.vessel_mask()
        layer = find_corrections(self._viewer, placement.source_id)
        if layer is None:
            layer = add_corrections(self._viewer, placement, _only_slice(mask, slice_index))
            if slice_index is not None:
                notifications.show_info(_slice_added(layer, slice_index))
        elif slice_index is not None and layer.data.shape == mask.shape and not layer.data[slice_index].any():
            layer.data[slice_index] = mask[slice_index]
            layer.refresh()
            notifications.show_info(_slice_added(layer, slice_index))
        else:
            notifications.show_info(f"{layer.name!r} already holds your corrections; it is selected, not replaced.")
        self._viewer.layers.selection.active = layer
        layer.mode = "paint"


def _only_slice(mask: np.ndarray, slice_index: int | None) -> np.ndarray:
    """The whole mask of a 2D scan; of a stack, only slice ``slice_index`` (the rest empty)."""
    if slice_index is None:
        return mask
    only = np.zeros_like(mask)
    only[slice_index] = mask[slice_index]
    return only


def _slice_added(layer: Labels, slice_index: int) -> str:
    held = int(sum(plane.any() for plane in layer.data))
    return (
        f"Slice {slice_index}'s mask is in {layer.name!r}: correct it there. Fine-tune trains on the slices that "
        f"hold corrections ({held} so far); press 'Correct this result' on another slice to add it."
    )
