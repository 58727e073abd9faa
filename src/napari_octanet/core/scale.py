"""A scan's pixel size: where it comes from, the one rule for it, and the size a model works at.

Every entry point (the command line, the docks, the Python API, training) resolves a scan's pixel
size here: given in µm per pixel, from a field of view in mm, or from a folder whose layout states
it (OCTA-500's 3M and 6M sets). The plausibility bounds are those of :mod:`.measure.units`.
No torch here: the docks and the command line read it at start-up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .measure.units import check_fov, check_pixel_size, pixel_size_from_fov

#: Two statements of one scan's pixel size (µm and a field of view) may differ by this share (rounding).
AGREEMENT = 0.02

#: Fields of view (mm) that a data set's folder name states: OCTA-500's 3 x 3 and 6 x 6 mm projections.
#: ROSSA's authors state none, so its scans have no known pixel size.
FOLDER_FOV_MM: dict[str, float] = {"OCTA500_3M": 3.0, "OCTA500_6M": 6.0}
_FOLDER_PATTERNS = {
    re.compile(rf"^OCTA[-_ ]?500[-_ ]?{name[-2:]}$", re.IGNORECASE): fov for name, fov in FOLDER_FOV_MM.items()
}


def resolve_pixel_size(
    pixel_size_um: float | None = None, fov_mm: float | None = None, width_px: int | None = None
) -> float | None:
    """The scan's pixel size in µm from what the user stated, or None when nothing was.

    Both given: they must agree within AGREEMENT, else a ValueError naming both. Implausible values
    get the message of :mod:`.measure.units` (value, rule, fix).
    """
    pixel = check_pixel_size(pixel_size_um)
    if fov_mm is None:
        return pixel
    check_fov(fov_mm)
    if width_px is None:
        raise ValueError("a field of view needs the image's width to give a pixel size")
    from_fov = pixel_size_from_fov(fov_mm, width_px)
    if pixel is not None and abs(pixel - from_fov) > AGREEMENT * from_fov:
        raise ValueError(
            f"pixel size {pixel:g} µm and field of view {fov_mm:g} mm disagree: {fov_mm:g} mm over {width_px} px "
            f"is {from_fov:.3g} µm per pixel; give only one of them"
        )
    return from_fov if pixel is None else pixel


def folder_fov_mm(path: str | Path) -> float | None:
    """The field of view (mm) a path's folders state (an OCTA-500 3M or 6M set), else None."""
    for part in reversed(Path(path).parts):
        for pattern, fov in _FOLDER_PATTERNS.items():
            if pattern.match(part):
                return fov
    return None


def pixel_size_of_path(path: str | Path, width_px: int) -> float | None:
    """The pixel size (µm) that a scan's folder layout states for an image ``width_px`` wide, else None."""
    fov = folder_fov_mm(path)
    return None if fov is None else pixel_size_from_fov(fov, width_px)


@dataclass(frozen=True)
class PixelSizeRule:
    """Each scan's pixel size from what was given: a pixel size (µm) or a field of view (mm) for
    every scan, else what the scan's folders state (OCTA-500 3M and 6M), else unknown."""

    pixel_size_um: float | None = None
    fov_mm: float | None = None

    def check(self) -> None:
        """Refuse a pixel size or field of view that makes no sense now, before any work."""
        check_pixel_size(self.pixel_size_um)
        if self.fov_mm is not None:
            check_fov(self.fov_mm)

    def needs_width(self, path: Path) -> bool:
        """Whether a scan's pixel size depends on its width (a field of view, given or stated by its folders)."""
        return self.fov_mm is not None or (self.pixel_size_um is None and folder_fov_mm(path) is not None)

    def of(self, path: Path, width_px: int | None = None) -> float | None:
        """The pixel size (µm) of the scan at ``path``, ``width_px`` wide: given (a ValueError when the
        pixel size and the field of view given disagree for it), else stated by its folders, else None."""
        stated = resolve_pixel_size(self.pixel_size_um, self.fov_mm, width_px)
        if stated is not None or width_px is None:
            return stated
        return pixel_size_of_path(path, width_px)


def describe_pixel_size(pixel_size_um: float | None) -> str:
    """How a status line or a note names a pixel size."""
    return "pixel size unknown" if pixel_size_um is None else f"{pixel_size_um:.3g} µm per pixel"


#: Provenance keys: the pixel sizes (µm) and fields of view (mm) of the data sets a model was trained
#: on, by data set (None where unknown).
PROVENANCE_KEY = "pixel_sizes_um"
FIELDS_KEY = "fields_of_view_mm"


def trained_scales(provenance: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """(pixel size µm, field of view mm) of each data set a model was trained on where both are known.

    A fine-tuned model still knows what it started from, so its lineage's data sets count too (a
    data set trained again counts as it was last). Older checkpoints record none.
    """
    lineage = provenance.get("started_from")
    scales = trained_scales(lineage) if isinstance(lineage, Mapping) else {}
    sizes, fields = provenance.get(PROVENANCE_KEY), provenance.get(FIELDS_KEY)
    if isinstance(sizes, Mapping) and isinstance(fields, Mapping):
        for name, size in sizes.items():
            field = fields.get(name)
            if isinstance(size, int | float) and isinstance(field, int | float):
                scales[str(name)] = (float(size), float(field))
            else:
                scales.pop(str(name), None)
    return scales


#: What training takes a data set's pixel size to be when nobody knows it, to rescale its crops:
#: the typical 3 mm scan of about 300 px (ROSSA's authors state none; 3 mm would make it 9.4 µm).
UNKNOWN_PIXEL_UM = 10.0


def target_pixel_size(pixel_size_um: float, width_px: int, provenance: Mapping[str, Any]) -> float | None:
    """The pixel size to resample a scan to before the network, or None to leave it as it is.

    The scan is brought to the pixel size of the training data whose field of view is nearest its
    own (pixel size x width): a 6 mm scan at 11.5 µm looks to the model like the 6 mm scans it
    learnt at 15 µm, not like the 3 mm ones at 9.9 (on OCTA-500 6M val resampled x1.3, Dice 0.857
    against 0.835 for 9.9 µm and 0.838 as it is; docs/benchmarks.md). Within AGREEMENT of that
    size, or for a model whose data's sizes are unknown, the scan stays as it is.
    """
    scales = trained_scales(provenance)
    if not scales:
        return None
    field = pixel_size_um * width_px / 1000.0
    pixel, _ = min(scales.values(), key=lambda scale: (abs(math.log(scale[1] / field)), scale[0]))
    return None if abs(pixel - pixel_size_um) <= AGREEMENT * pixel else pixel


def resampled_shape(shape: tuple[int, int], from_um: float, to_um: float) -> tuple[int, int]:
    """An image's (H, W) when its pixels of ``from_um`` become pixels of ``to_um`` (at least 1 px)."""
    factor = from_um / to_um
    return tuple(max(1, int(math.floor(side * factor + 0.5))) for side in shape)  # type: ignore[return-value]
