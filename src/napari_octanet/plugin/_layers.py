"""Output layers that stay tied to their source layer: same place in the world, updated on re-runs.

Each output layer carries a metadata tag naming its source layer's ``unique_id`` and its role, so
a second run (or a new threshold) updates the layer it wrote before, even if the user renamed
it, instead of piling up new layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from napari.layers import Image, Labels, Layer

if TYPE_CHECKING:
    import napari

TAG = "napari_octanet"


@dataclass(frozen=True)
class Placement:
    """What outputs need to know of their source: its name and id, and where it sits in the world.

    Captured when a job starts, so results land correctly even if the source changes meanwhile.
    """

    source_name: str
    source_id: str
    scale: tuple[float, ...]
    translate: tuple[float, ...]

    @classmethod
    def of(cls, layer: Layer) -> Placement:
        return cls(layer.name, str(layer.unique_id), tuple(layer.scale), tuple(layer.translate))


@dataclass(frozen=True)
class OutputKind:
    """One kind of output layer: its role tag, its name after the source's, and its look at creation."""

    role: str
    name_suffix: str
    layer_type: Literal["image", "labels"]
    style: Mapping[str, Any] = field(default_factory=dict)


def is_output(layer: Layer) -> bool:
    """True for layers this plugin wrote (they are results, not inputs to offer)."""
    return TAG in layer.metadata


def find_output(viewer: napari.viewer.Viewer, placement: Placement, kind: OutputKind) -> Layer | None:
    expected_type = Labels if kind.layer_type == "labels" else Image
    for layer in viewer.layers:
        tag = layer.metadata.get(TAG)
        if (
            isinstance(layer, expected_type)
            and isinstance(tag, Mapping)
            and tag.get("source") == placement.source_id
            and tag.get("role") == kind.role
        ):
            return layer
    return None


def write_output(viewer: napari.viewer.Viewer, placement: Placement, kind: OutputKind, data: np.ndarray) -> Layer:
    """Update this source's output layer of this kind, or add it; either way at the source's scale and offset."""
    layer = find_output(viewer, placement, kind)
    if layer is None:
        add = viewer.add_labels if kind.layer_type == "labels" else viewer.add_image
        return add(
            data,
            name=f"{placement.source_name} {kind.name_suffix}",
            scale=placement.scale,
            translate=placement.translate,
            metadata={TAG: {"source": placement.source_id, "role": kind.role}},
            **kind.style,
        )
    layer.data = data
    layer.scale = placement.scale
    layer.translate = placement.translate
    return layer
