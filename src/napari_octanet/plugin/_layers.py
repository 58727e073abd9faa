"""Output layers that stay tied to their source layer: same place in the world, updated on re-runs.

Each output layer carries a metadata tag naming its source layer's ``unique_id`` and its role, so
a second run (or a new threshold) updates the layer it wrote before, even if the user renamed
it, instead of piling up new layers.

A layer the user paints is theirs: painting on an editable output (the vessel mask) turns it
into that source's *corrections* layer, which no run or threshold change writes to again; the
next result goes to a fresh layer. A source can so collect several corrections layers; the
newest is the one in use (see :func:`find_corrections`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from napari.layers import Image, Labels, Layer

if TYPE_CHECKING:
    import napari

TAG = "napari_octanet"
#: The role of a Labels layer the user corrects (made by *Correct this result*, or by painting a result).
CORRECTIONS_ROLE = "corrections"
CORRECTIONS_SUFFIX = "corrections"
#: Numbers corrections layers in the order they are made (the tag's "made"), so that the newest wins.
_corrections_made = itertools.count(1)


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
    #: Painting on it makes it the user's corrections layer (see the module docstring).
    editable: bool = False


def is_output(layer: Layer) -> bool:
    """True for layers this plugin wrote (they are results, not inputs to offer)."""
    return TAG in layer.metadata


def role_of(layer: Layer) -> tuple[str, str] | None:
    """(source id, role) of a layer this plugin made, or None."""
    tag = layer.metadata.get(TAG)
    if isinstance(tag, Mapping) and "source" in tag and "role" in tag:
        return str(tag["source"]), str(tag["role"])
    return None


def is_unedited_result(layer: Layer) -> bool:
    """True for a layer this plugin wrote that the user has not painted: the model's own output, not labels."""
    tag = role_of(layer)
    return is_output(layer) and (tag is None or tag[1] != CORRECTIONS_ROLE)


def _corrections_tag(source_id: str) -> dict[str, Any]:
    return {"source": source_id, "role": CORRECTIONS_ROLE, "made": next(_corrections_made)}


def _made_order(layer: Layer) -> int:
    return int(layer.metadata[TAG].get("made", 0))


def find_corrections(viewer: napari.viewer.Viewer, source_id: str) -> Labels | None:
    """The newest corrections layer made for the source layer with this id, if any.

    A source gets a second one when the user paints a later run's fresh result. The newest (made
    last, by *Correct this result* or by painting a result, wherever it sits in the layer list)
    holds the user's latest work, so it is the one *Correct this result* selects and the Fine-tune
    dock trains on; painting a result says which older layer it takes over from.
    """
    made = [
        layer
        for layer in viewer.layers
        if isinstance(layer, Labels) and role_of(layer) == (source_id, CORRECTIONS_ROLE)
    ]
    return max(made, key=_made_order, default=None)


def add_corrections(viewer: napari.viewer.Viewer, placement: Placement, mask: np.ndarray) -> Labels:
    """A new editable '<source> corrections' Labels layer holding a copy of ``mask``."""
    return viewer.add_labels(
        np.array(mask, dtype=np.uint8),
        name=f"{placement.source_name} {CORRECTIONS_SUFFIX}",
        scale=placement.scale,
        translate=placement.translate,
        metadata={TAG: _corrections_tag(placement.source_id)},
        opacity=0.7,
    )


def _become_corrections(viewer: napari.viewer.Viewer, event: Any) -> None:
    """The user painted on an output: it is theirs now, and later runs write a fresh layer instead."""
    layer = event.source
    source, role = role_of(layer) or ("", "")
    if role == CORRECTIONS_ROLE:
        return
    previous = find_corrections(viewer, source)
    layer.metadata = {**layer.metadata, TAG: _corrections_tag(source)}
    old_name = layer.name
    if old_name.endswith(" vessels"):
        layer.name = old_name.removesuffix("vessels") + CORRECTIONS_SUFFIX
    taking_over = (
        f" It takes over from {previous.name!r} as the corrections that 'Correct this result' and Fine-tune use."
        if previous is not None
        else ""
    )
    from napari.utils import notifications

    notifications.show_info(
        f"You painted on {old_name!r}: it is kept as your corrections layer {layer.name!r}; "
        f"new results and thresholds go to a fresh layer.{taking_over}"
    )


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
        layer = add(
            data,
            name=f"{placement.source_name} {kind.name_suffix}",
            scale=placement.scale,
            translate=placement.translate,
            metadata={TAG: {"source": placement.source_id, "role": kind.role}},
            **kind.style,
        )
        if kind.editable:
            layer.events.paint.connect(functools.partial(_become_corrections, viewer))
        return layer
    layer.data = data
    layer.scale = placement.scale
    layer.translate = placement.translate
    return layer
