"""Pixel size: from a stated field of view, checked, and the units the measures are reported in.

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
    return check_pixel_size(1000.0 * fov / width_px)


def check_pixel_size(pixel_size_um: float | None) -> float | None:
    """Return the pixel size unchanged if it is plausible (or None: pixel units); else a ValueError naming it."""
    if pixel_size_um is None:
        return None
    if not _is_number_in(pixel_size_um, 0.0, MAX_PIXEL_UM):
        raise ValueError(
            f"pixel size {pixel_size_um!r} µm makes no sense: it must be above 0 and at most {MAX_PIXEL_UM:g} µm "
            "(check the field of view, or the layer's scale, which must be in mm or µm per pixel)"
        )
    return float(pixel_size_um)  # type: ignore[arg-type]


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
