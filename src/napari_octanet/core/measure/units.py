"""Pixel size: from a stated field of view or a layer's scale, checked, and the units the measures are reported in.

With a pixel size, lengths are reported in mm, areas in mm² and diameters in µm; without one,
everything is in pixels and the column names say so (``_px``, ``_px2``) instead of ``_mm``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Widest field of view accepted (mm): montaged wide-field OCTA reaches about 24 mm.
MAX_FOV_MM = 30.0
#: Coarsest pixel accepted (µm): no OCTA device samples more coarsely than this.
MAX_PIXEL_UM = 200.0
#: Finest pixel accepted (µm). OCTA scans sample the retina at roughly 3-24 µm per pixel (3 mm over
#: 1024 px to 12 mm over 500 px) and no retinal imaging resolves much below 1 µm, so a smaller value
#: is a size in mm (3 mm over 304 px is 0.0099 mm per pixel) or a field of view far too small.
MIN_PIXEL_UM = 0.5
#: A napari layer's scale when none was set. Read as µm per pixel it would pass the bounds above,
#: turning a 3 mm scan into 0.3 mm and dropping its ETDRS rings without a word, so it is refused.
UNSET_LAYER_SCALE = 1.0
#: What the user sees of the accepted range (the bounds above are the rule).
TYPICAL_OCTA_PIXELS = "OCTA scans have about 3-24 µm per pixel"


def check_fov(fov_mm: float) -> float:
    """Return a plausible field of view (mm) as a float; else a ValueError naming it."""
    if not _is_number_in(fov_mm, 0.0, MAX_FOV_MM):
        raise ValueError(
            f"field of view {fov_mm!r} mm makes no sense: give the scan's width in mm, "
            f"a number above 0 and at most {MAX_FOV_MM:g} (e.g. 3 for a 3 x 3 mm scan)"
        )
    return float(fov_mm)


def pixel_size_from_fov(fov_mm: float, width_px: int) -> float:
    """Micrometres per pixel of an image ``width_px`` pixels wide spanning ``fov_mm`` (square pixels)."""
    fov = check_fov(fov_mm)
    if width_px < 1:
        raise ValueError(f"image width {width_px} px: an image must be at least one pixel wide")
    pixel_size_um = 1000.0 * fov / width_px
    if not _is_plausible_pixel_size(pixel_size_um):
        raise ValueError(
            f"a field of view of {fov:g} mm over {width_px} px makes pixels of {pixel_size_um:.3g} µm, "
            f"but {TYPICAL_OCTA_PIXELS}: check the field of view (the scan's width in mm)"
        )
    return pixel_size_um


def pixel_size_from_layer_scale(scale: float) -> float:
    """Micrometres per pixel stated by a napari layer's scale (µm per pixel); else a ValueError saying how to fix it.

    napari's default scale (1, no scale set) and scales in mm (as napari users often set them) both
    look like numbers of µm, so both are refused rather than read as µm (see the constants above).
    """
    if scale == UNSET_LAYER_SCALE:
        raise ValueError(
            "the layer's scale is 1, napari's default when no scale was set, so it gives no pixel size: "
            "set the layer's scale in µm per pixel (e.g. 9.87 for a 3 mm scan of 304 px), "
            "or type the pixel size into the dock's µm per pixel field instead"
        )
    if _is_number_in(scale, 0.0, MIN_PIXEL_UM):
        raise ValueError(
            f"the layer's scale {scale:.3g} looks like mm per pixel, since {TYPICAL_OCTA_PIXELS}: set the "
            f"layer's scale in µm per pixel ({1000 * scale:.3g} if {scale:.3g} is mm), "
            "or type the pixel size into the dock's µm per pixel field instead"
        )
    return check_pixel_size(scale)  # type: ignore[return-value]


def check_pixel_size(pixel_size_um: float | None) -> float | None:
    """Return the pixel size unchanged if it is plausible (or None: pixel units); else a ValueError naming it."""
    if pixel_size_um is None:
        return None
    if not _is_plausible_pixel_size(pixel_size_um):
        raise ValueError(
            f"pixel size {pixel_size_um!r} µm makes no sense: it must be above {MIN_PIXEL_UM:g} and at most "
            f"{MAX_PIXEL_UM:g} µm ({TYPICAL_OCTA_PIXELS}; check the field of view, in mm, "
            "or the layer's scale, in µm per pixel)"
        )
    return float(pixel_size_um)  # type: ignore[arg-type]


def _is_plausible_pixel_size(pixel_size_um: object) -> bool:
    """The one rule for pixel sizes (µm): a finite number above MIN_PIXEL_UM and at most MAX_PIXEL_UM."""
    return _is_number_in(pixel_size_um, MIN_PIXEL_UM, MAX_PIXEL_UM)


def _is_number_in(value: object, low: float, high: float) -> bool:
    """True for a finite number in (low, high]; False for NaN, infinities and non-numbers."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and low < number <= high


@dataclass(frozen=True)
class Units:
    """Converts pixel counts into the reported units; ``pixel_size_um`` None means pixel units."""

    pixel_size_um: float | None

    @property
    def physical(self) -> bool:
        return self.pixel_size_um is not None

    @property
    def name(self) -> str:
        """The value of the ``units`` column: 'mm' (lengths mm, areas mm², diameters µm) or 'px'."""
        return "mm" if self.physical else "px"

    def mm(self, pixels: float) -> float:
        """A length in pixels as mm (or pixels)."""
        return pixels * self.pixel_size_um / 1000.0 if self.physical else pixels

    def um(self, pixels: float) -> float:
        """A length in pixels as µm (or pixels)."""
        return pixels * self.pixel_size_um if self.physical else pixels

    def mm2(self, pixel_count: float) -> float:
        """An area in pixels as mm² (or pixels)."""
        return pixel_count * (self.pixel_size_um / 1000.0) ** 2 if self.physical else pixel_count

    def column(self, name: str) -> str:
        """A column name with its unit suffix: ``_mm``/``_mm2``/``_um`` become ``_px``/``_px2`` in pixel units."""
        if self.physical:
            return name
        for physical, pixel in (("_mm2", "_px2"), ("_mm", "_px"), ("_um", "_px")):
            if name.endswith(physical):
                return name[: -len(physical)] + pixel
        return name
