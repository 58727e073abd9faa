"""Analysed regions: the whole scan, and ETDRS-style rings around the FAZ centre where they fit.

The ETDRS grid (Early Treatment Diabetic Retinopathy Study, 1991) centres a 1 mm disc (fovea),
a 1-3 mm ring (parafovea) and a 3-6 mm ring (perifovea) on the fovea. A ring is analysed only
with a known pixel size and when at least MIN_RING_COVERAGE of it lies inside the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: (name, inner diameter, outer diameter) in mm.
ETDRS_RINGS = (("fovea", 0.0, 1.0), ("parafovea", 1.0, 3.0), ("perifovea", 3.0, 6.0))
#: A ring less covered than this by the image is left out (a 3 mm scan holds no perifovea).
MIN_RING_COVERAGE = 0.9
WHOLE = "whole"


@dataclass(frozen=True)
class Region:
    name: str
    mask: np.ndarray


@dataclass(frozen=True)
class Ring:
    """An annulus in pixels around a centre (row, col): what a Shapes layer needs to draw it."""

    name: str
    centre: tuple[float, float]
    inner_px: float
    outer_px: float


def etdrs_rings(shape: tuple[int, int], centre: tuple[float, float], pixel_size_um: float) -> list[Ring]:
    """The ETDRS rings around ``centre`` that the image covers enough (see MIN_RING_COVERAGE)."""
    px_per_mm = 1000.0 / pixel_size_um
    rings = [Ring(name, centre, inner / 2 * px_per_mm, outer / 2 * px_per_mm) for name, inner, outer in ETDRS_RINGS]
    return [ring for ring in rings if _coverage(ring, shape) >= MIN_RING_COVERAGE]


def ring_mask(ring: Ring, shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.indices(shape)
    distance = np.hypot(rows - ring.centre[0], cols - ring.centre[1])
    return (distance >= ring.inner_px) & (distance < ring.outer_px)


def _coverage(ring: Ring, shape: tuple[int, int]) -> float:
    """The fraction of the ring's area that lies inside the image."""
    inside = np.count_nonzero(ring_mask(ring, shape))
    return inside / (np.pi * (ring.outer_px**2 - ring.inner_px**2))


def analysed_regions(shape: tuple[int, int], rings: list[Ring]) -> list[Region]:
    """The whole image first, then each ring."""
    return [Region(WHOLE, np.ones(shape, dtype=bool))] + [Region(r.name, ring_mask(r, shape)) for r in rings]
