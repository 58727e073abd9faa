"""The foveal avascular zone (FAZ): found by a classical method, and measured.

Finding it follows the idea of Díaz et al. (PLoS One 2019, doi:10.1371/journal.pone.0212364):
the FAZ is the dark, vessel-free region nearest the centre of a macular scan.

1. Flow: the vessel mask, plus (with a scan) the pixels of the lightly smoothed scan above its
   Otsu level, which adds capillaries a mask may have missed.
2. Closing the capillary mesh: flow is dilated by BRIDGE_UM, so that only avascular regions wider
   than about twice that remain open.
3. Seed: the open region that holds the image centre, or else the one nearest it, within
   SEARCH_FRACTION of the image size.
4. Region growing back: the seed is dilated by the same radius but not into flow pixels, which
   returns it to the vessel walls; holes are filled and a small opening trims spurs that leaked
   between capillaries.

The result is a mask the user may correct; every measure takes a given mask instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .lengths import in_pixels, rule_pixel_size
from .units import Units

#: Gaps in the flow narrower than twice this are closed before the FAZ is sought (µm). Used as it
#: is, not rounded to whole pixels (a rounded 40 µm was 45 µm at 15 µm per pixel and 37.5 µm at
#: 7.5): 50 µm found the same FAZ area, within 2 % on average, on the OCTA-500 6M val scans at 7.5-20
#: µm per pixel, where 40 µm lost two FAZs at 15 µm and halved a third (docs/measurements.md).
BRIDGE_UM = 50.0
#: The FAZ seed must lie within this fraction of the image's shorter side from its centre.
SEARCH_FRACTION = 0.25
#: Flow in the scan: a local mean this fraction of the way from the darkest central spot to the median.
FLOW_RISE = 0.2
#: A region smaller than this is no FAZ (mm²); the smallest healthy FAZ is about 0.1 mm².
MIN_FAZ_MM2 = 0.02
#: A vessel-free region covering more than this fraction of the image is no FAZ (no vessels around it).
MAX_FAZ_FRACTION = 0.5


@dataclass(frozen=True)
class FazResult:
    """A found FAZ (a boolean mask), or None with the reason in ``message``."""

    mask: np.ndarray | None
    message: str


@dataclass(frozen=True)
class FazMeasures:
    """Area, perimeter and shape of a FAZ, in the units of :class:`Units`."""

    area: float
    perimeter: float
    circularity: float
    acircularity: float
    touches_border: bool
    centroid: tuple[float, float]


def find_faz(vessels: np.ndarray, scan: np.ndarray | None = None, pixel_size_um: float | None = None) -> FazResult:
    """Find the FAZ in a 2D vessel mask (nonzero = vessel), helped by the scan where given (see module)."""
    flow = np.asarray(vessels) != 0
    radius = max(1.0, in_pixels(BRIDGE_UM, pixel_size_um))
    if scan is not None:
        flow |= _scan_flow(checked_scan(np.asarray(scan, dtype=np.float64), flow.shape), radius)
    seed = _central_open_region(ndimage.binary_dilation(flow, _disk(radius)))
    if seed is None:
        return FazResult(None, _not_found("no vessel-free region lies near the image centre"))
    grown = ndimage.binary_dilation(seed, _disk(radius)) & ~flow
    grown = ndimage.binary_opening(ndimage.binary_fill_holes(grown), _disk(max(1.0, radius / 2)))
    faz = _component_overlapping(grown, seed)
    min_px = MIN_FAZ_MM2 / (rule_pixel_size(pixel_size_um) / 1000.0) ** 2
    area_px = 0 if faz is None else np.count_nonzero(faz)
    if area_px < min_px:
        return FazResult(None, _not_found(f"the vessel-free region near the centre is smaller than {MIN_FAZ_MM2} mm²"))
    if area_px > MAX_FAZ_FRACTION * flow.size:
        return FazResult(None, _not_found("the vessel-free region near the centre covers most of the image"))
    return FazResult(faz, "FAZ found: the vessel-free region nearest the image centre")


def _not_found(reason: str) -> str:
    """The note for a FAZ not found; what the user can do instead depends on the front end, which says it."""
    return f"No FAZ found: {reason}; the FAZ columns are left empty."


def checked_scan(scan: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The scan, refused unless it has the vessel mask's shape (a scan of another image would give a wrong FAZ)."""
    if scan.shape != shape:
        raise ValueError(
            f"the scan is {scan.shape} but the vessel mask is {shape}: give the scan the mask was made from"
        )
    return scan


def _scan_flow(scan: np.ndarray, radius: float) -> np.ndarray:
    """Where the scan's local mean signal rises FLOW_RISE of the way from its darkest central spot to its median.

    The local mean (a Gaussian of ``radius / 2``) averages speckle and single capillaries into a
    flow density; the darkest spot near the centre is the FAZ floor, whatever the scan's offset.
    """
    local = ndimage.gaussian_filter(scan, radius / 2.0)
    floor = float(ndimage.gaussian_filter(scan, float(radius))[_central_disc(scan.shape)].min())
    return local > floor + FLOW_RISE * (float(np.median(local)) - floor)


def _central_disc(shape: tuple[int, ...]) -> np.ndarray:
    """Pixels within SEARCH_FRACTION of the shorter side from the image centre."""
    rows, cols = np.indices(shape)
    centre = (np.array(shape) - 1) / 2.0
    return np.hypot(rows - centre[0], cols - centre[1]) <= SEARCH_FRACTION * min(shape)


def _central_open_region(closed: np.ndarray) -> np.ndarray | None:
    """The open (not closed) region holding the centre, else the nearest one within reach of it."""
    labels, count = ndimage.label(~closed)
    if count == 0:
        return None
    centre = (np.array(closed.shape) - 1) / 2.0
    rows, cols = np.nonzero(labels)
    distance = np.hypot(rows - centre[0], cols - centre[1])
    nearest = int(np.argmin(distance))
    if distance[nearest] > SEARCH_FRACTION * min(closed.shape):
        return None
    return labels == labels[rows[nearest], cols[nearest]]


def _component_overlapping(mask: np.ndarray, seed: np.ndarray) -> np.ndarray | None:
    """The connected part of ``mask`` that overlaps ``seed`` most."""
    labels, _ = ndimage.label(mask)
    overlapping = labels[seed & mask]
    if overlapping.size == 0:
        return None
    return labels == np.bincount(overlapping).argmax()


def _disk(radius: float) -> np.ndarray:
    extent = int(radius)
    rows, cols = np.mgrid[-extent : extent + 1, -extent : extent + 1]
    return rows**2 + cols**2 <= radius**2


def faz_measures(faz: np.ndarray, units: Units) -> FazMeasures:
    """Measure a FAZ mask (nonzero = FAZ; a correction drawn by the user is welcome).

    The perimeter is Crofton's estimate (scikit-image), which is unbiased for smooth outlines. A
    FAZ cut by the image border is measured as it is, and ``touches_border`` says so.
    """
    from skimage.measure import perimeter_crofton

    mask = np.asarray(faz) != 0
    area_px = int(np.count_nonzero(mask))
    perimeter_px = float(perimeter_crofton(np.pad(mask, 1), directions=4))
    circle_perimeter_px = 2.0 * np.sqrt(np.pi * area_px)
    rows, cols = np.nonzero(mask)
    edge = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    return FazMeasures(
        area=units.mm2(area_px),
        perimeter=units.mm(perimeter_px),
        circularity=4.0 * np.pi * area_px / perimeter_px**2 if perimeter_px else 0.0,
        acircularity=perimeter_px / circle_perimeter_px if area_px else 0.0,
        touches_border=bool(edge.any()),
        centroid=(float(rows.mean()), float(cols.mean())) if area_px else (np.nan, np.nan),
    )
