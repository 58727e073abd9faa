"""Vessel measures of a binary mask inside a region: density, length, calibre, branching, shape.

The skeleton (scikit-image's ``skeletonize``) and its branches (``skan``) are found once for the
whole image and then counted per region, so a ring's edge never cuts a branch short. Lengths are
8-neighbour step lengths (1 or √2 px), as skan measures them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .units import Units

#: Skeleton branches shorter than this (px) are skeletonisation spurs, too short for a tortuosity.
MIN_SEGMENT_PX = 10
#: A branch's arc for its tortuosity runs through every this-many-th pixel: pixel steps alone
#: (1 or √2) overstate the length of a smooth curve by up to 8 % (5.5 % on average over directions).
ARC_STEP_PX = 5
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Segment:
    """One skeleton branch between end or junction points: where its middle lies, its arc and chord (px)."""

    middle: tuple[int, int]
    arc: float
    chord: float


@dataclass(frozen=True)
class SkeletonAnalysis:
    """What the per-region measures need from the whole image's vessel mask."""

    vessels: np.ndarray
    #: Each skeleton pixel's share of the skeleton length (half of each 8-neighbour step), 0 elsewhere.
    pixel_length: np.ndarray
    #: Connected clusters of skeleton pixels with three or more neighbours, one label per branch point.
    junctions: np.ndarray
    #: Vessel width at each skeleton pixel (px), 0 elsewhere: 2 d - 1, d the distance to the background.
    width: np.ndarray
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class VesselMeasures:
    """The vessel measures of one region, in the units of :class:`Units` (see README, Measurements)."""

    area: float
    vad: float
    vld: float
    vdi: float
    mean_diameter: float
    branch_points_density: float
    segments: int
    tortuosity: float
    fractal_dimension: float


def analyse_skeleton(vessels: np.ndarray) -> SkeletonAnalysis:
    """Skeletonise a 2D vessel mask (nonzero = vessel) and analyse its branches."""
    from skimage.morphology import skeletonize

    mask = np.asarray(vessels) != 0
    skeleton = skeletonize(mask)
    neighbours = ndimage.convolve(skeleton.astype(np.uint8), _EIGHT_CONNECTED.astype(np.uint8), mode="constant") - 1
    junctions, _ = ndimage.label(skeleton & (neighbours >= 3), structure=_EIGHT_CONNECTED)
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    width = np.where(skeleton, 2.0 * distance - 1.0, 0.0)
    return SkeletonAnalysis(mask, _pixel_lengths(skeleton), junctions, width, _segments(skeleton))


def _pixel_lengths(skeleton: np.ndarray) -> np.ndarray:
    """Half of each step to an 8-neighbour (1 px straight, √2 px diagonal) per skeleton pixel."""
    image = skeleton.astype(float)
    straight = ndimage.convolve(image, np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], float), mode="constant")
    diagonal = ndimage.convolve(image, np.array([[1, 0, 1], [0, 0, 0], [1, 0, 1]], float), mode="constant")
    return np.where(skeleton, 0.5 * (straight + np.sqrt(2.0) * diagonal), 0.0)


def _segments(skeleton: np.ndarray) -> tuple[Segment, ...]:
    """Every skan branch: its middle pixel, its arc length (see ARC_STEP_PX) and its end-to-end distance."""
    if np.count_nonzero(skeleton) < 2:
        return ()
    from skan import Skeleton

    graph = Skeleton(skeleton)
    segments = []
    for index in range(graph.n_paths):
        coordinates = graph.path_coordinates(index)
        middle = coordinates[len(coordinates) // 2]
        chord = float(np.hypot(*(coordinates[-1] - coordinates[0])))
        segments.append(Segment((int(middle[0]), int(middle[1])), _arc_length(coordinates), chord))
    return tuple(segments)


def _arc_length(coordinates: np.ndarray) -> float:
    """Length of the polyline through every ARC_STEP_PX-th pixel of a path and its last pixel."""
    vertices = np.vstack([coordinates[::ARC_STEP_PX], coordinates[-1:]])
    return float(np.hypot(*np.diff(vertices, axis=0).T).sum())


def vessel_measures(analysis: SkeletonAnalysis, region: np.ndarray, units: Units) -> VesselMeasures:
    """The measures of the vessels inside ``region`` (a boolean mask of the analysed area).

    Where a ratio has nothing to divide by (no vessel, no skeleton, no branch long enough) the
    measure is 0, never NaN, so that an empty mask gives a row of zeros.
    """
    region_px = int(np.count_nonzero(region))
    vessel_px = int(np.count_nonzero(analysis.vessels & region))
    length_px = float(analysis.pixel_length[region].sum())
    on_skeleton = region & (analysis.width > 0)
    inside = [segment for segment in analysis.segments if region[segment.middle]]
    branch_points = len(np.setdiff1d(np.unique(analysis.junctions[region]), [0]))
    return VesselMeasures(
        area=units.mm2(region_px),
        vad=_ratio(100.0 * vessel_px, region_px),
        vld=_ratio(units.mm(length_px), units.mm2(region_px)),
        vdi=_ratio(units.um(vessel_px), length_px),
        mean_diameter=units.um(float(analysis.width[on_skeleton].mean())) if on_skeleton.any() else 0.0,
        branch_points_density=_ratio(branch_points, units.mm2(region_px)),
        segments=len(inside),
        tortuosity=mean_tortuosity(inside),
        fractal_dimension=box_counting_dimension(analysis.vessels & region),
    )


def mean_tortuosity(segments: list[Segment]) -> float:
    """Mean arc / chord of the open branches at least MIN_SEGMENT_PX long (1 = straight); 0 if none."""
    ratios = [s.arc / s.chord for s in segments if s.arc >= MIN_SEGMENT_PX and s.chord > 0]
    return float(np.mean(ratios)) if ratios else 0.0


def box_counting_dimension(mask: np.ndarray) -> float:
    """Minkowski-Bouligand dimension: slope of log(boxes holding foreground) against log(1 / box size).

    Boxes of 1, 2, 4 ... px up to an eighth of the shorter side (larger boxes mostly count the
    shape's edges); 0 for an empty mask.
    """
    if not mask.any():
        return 0.0
    sizes = [2**k for k in range(int(np.log2(max(min(mask.shape) // 8, 1))) + 1)]
    if len(sizes) < 2:
        return 0.0
    counts = [_occupied_boxes(mask, size) for size in sizes]
    slope, _ = np.polyfit(np.log(1.0 / np.array(sizes)), np.log(counts), 1)
    return float(slope)


def _occupied_boxes(mask: np.ndarray, size: int) -> int:
    rows, cols = -(-mask.shape[0] // size) * size, -(-mask.shape[1] // size) * size
    padded = np.zeros((rows, cols), dtype=bool)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return int(padded.reshape(rows // size, size, cols // size, size).any(axis=(1, 3)).sum())


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0
