"""A scan's pixel size in napari: the layer's scale where it states µm per pixel, else one field the docks share.

napari layers carry a scale, and the reader sets it to µm per pixel where a folder's layout states
the pixel size (OCTA-500's 3M and 6M sets). A scale of 1 (napari's default: none set) or one that
looks like mm states nothing (the core's rule, :func:`pixel_size_from_layer_scale`); for such layers
the pixel size is the one the user gave in the pixel-size field. Every dock of a viewer shows that
field and all show one value (:class:`SharedPixelSize`), so a pixel size given in the Segment dock
is the one the Measure dock uses.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from magicgui.widgets import FloatSpinBox
from psygnal import Signal

from napari_octanet.core.measure.units import MAX_PIXEL_UM, MIN_PIXEL_UM, UNSET_LAYER_SCALE, pixel_size_from_layer_scale
from napari_octanet.core.scale import describe_pixel_size

from ._workers import wrapping_label

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

#: What the field shows at its lowest value, which the core's rule refuses (a pixel must be larger).
UNKNOWN = "unknown"
FROM_LAYER_SCALE = "from the layer's scale"
FROM_FIELD = "from the pixel-size field"
FIELD_TIP = (
    "The scans' pixel size in µm, for layers whose scale does not state one (napari's default scale 1 "
    "states none): 3 mm over 304 px is 9.87, 6 mm over 400 px is 15. With it the scan is segmented at "
    "the model's working pixel size and measures are in mm; 'unknown' (the lowest value): the scan is "
    "segmented as it is and measures are in pixels. One value, shared by the Segment and Measure docks"
)


@dataclass(frozen=True)
class PixelSize:
    """A pixel size (µm, or None where none is known), where it came from, and why a layer's scale was not used."""

    um: float | None
    source: str = ""
    #: The core's words for a layer scale that states no pixel size although someone set it (e.g. one in mm).
    remark: str = ""

    def describe(self) -> str:
        """For a status line: '9.87 µm per pixel (from the layer's scale)', or 'pixel size unknown'."""
        text = describe_pixel_size(self.um)
        return f"{text} ({self.source})" if self.um is not None and self.source else text


class SharedPixelSize:
    """The pixel size given in the field, one per viewer; ``changed`` carries the new value (µm or None)."""

    changed = Signal(object)

    def __init__(self) -> None:
        self._um: float | None = None

    @property
    def um(self) -> float | None:
        return self._um

    @um.setter
    def um(self, value: float | None) -> None:
        if value != self._um:
            self._um = value
            self.changed.emit(value)


_shared_by_viewer: dict[int, SharedPixelSize] = {}


def shared_pixel_size(viewer: napari.viewer.Viewer) -> SharedPixelSize:
    """The pixel size the docks of ``viewer`` share (forgotten with the viewer)."""
    key = id(viewer)
    if key not in _shared_by_viewer:
        _shared_by_viewer[key] = SharedPixelSize()
        weakref.finalize(viewer, _shared_by_viewer.pop, key, None)
    return _shared_by_viewer[key]


def stated_by_scale(layer: Layer) -> PixelSize:
    """The pixel size a layer's scale states (its column axis, µm per pixel), or an unknown one with the reason."""
    scale = float(layer.scale[-1])
    try:
        return PixelSize(pixel_size_from_layer_scale(scale), FROM_LAYER_SCALE)
    except ValueError as error:
        return PixelSize(None, remark="" if scale == UNSET_LAYER_SCALE else str(error))


class PixelSizeField:
    """One dock's view of the shared pixel size: a spin box in µm per pixel ('unknown' at its lowest value)
    and a line that says where the chosen layer's pixel size comes from. Add both to the dock's form."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._shared = shared_pixel_size(viewer)
        self.spin_box = FloatSpinBox(
            name="pixel_size", label="µm per pixel", min=MIN_PIXEL_UM, max=MAX_PIXEL_UM, step=0.1, tooltip=FIELD_TIP
        )
        self.spin_box.native.setDecimals(2)
        self.spin_box.native.setSpecialValueText(UNKNOWN)
        self.note = wrapping_label("", name="pixel_size_note")
        self.note.visible = False
        self._show(self._shared.um)
        self.spin_box.changed.connect(self._on_edited)
        self._shared.changed.connect(self._show)
        self.spin_box.native.destroyed.connect(lambda: self._shared.changed.disconnect(self._show))

    @property
    def um(self) -> float | None:
        """The value in the field (µm per pixel), or None for 'unknown'."""
        value = float(self.spin_box.value)
        return None if value <= MIN_PIXEL_UM else value

    @um.setter
    def um(self, value: float | None) -> None:
        self.spin_box.value = MIN_PIXEL_UM if value is None else value

    def _on_edited(self) -> None:
        self._shared.um = self.um

    def _show(self, um: float | None) -> None:
        self.um = um

    def for_layers(self, *layers: Layer | None) -> PixelSize:
        """The first of ``layers`` whose scale states a pixel size, else the field's value (with the first
        layer's remark, if its scale was set but states none)."""
        stated = [stated_by_scale(layer) for layer in layers if layer is not None]
        known = next((size for size in stated if size.um is not None), None)
        if known is not None:
            return known
        remark = next((size.remark for size in stated if size.remark), "")
        return PixelSize(self.um, FROM_FIELD if self.um is not None else "", remark)

    def show_source(self, *layers: Layer | None) -> None:
        """Say under the field when the layers' scale, not the field, gives their pixel size (or why it does not)."""
        size = self.for_layers(*layers)
        if size.source == FROM_LAYER_SCALE:
            self.note.value = (
                f"This layer's scale gives {describe_pixel_size(size.um)}: the field is for layers without one."
            )
        else:
            self.note.value = f"The field's pixel size is used, as {size.remark}." if size.remark else ""
        self.note.visible = bool(self.note.value)
