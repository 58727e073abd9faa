"""Physical lengths as pixels: every length rule of the measures is in µm, so it means the same at any pixel size.

A rule in pixels changes meaning with the scan's resolution: 10 px is 100 µm on a 3 mm scan of
304 px and 50 µm on the same scan saved at 608 px, so counts and dimensions made with it drift.
Without a known pixel size the rules assume :data:`ASSUMED_PIXEL_UM`.
"""

from __future__ import annotations

#: Pixel size assumed for the rules when none is known (µm): a 3 mm scan of about 300 px, as in the
#: data the bundled models were trained on, so that pixel-unit results match a scan of that kind.
ASSUMED_PIXEL_UM = 10.0


def rule_pixel_size(pixel_size_um: float | None) -> float:
    """The pixel size (µm) the length rules are applied at: the scan's, or ASSUMED_PIXEL_UM when unknown."""
    return ASSUMED_PIXEL_UM if pixel_size_um is None else float(pixel_size_um)


def in_pixels(length_um: float, pixel_size_um: float | None) -> float:
    """A length in µm as (fractional) pixels of the scan, or of the assumed pixel size when unknown."""
    return length_um / rule_pixel_size(pixel_size_um)
