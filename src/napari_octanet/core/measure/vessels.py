"""Vessel measures of a binary mask inside a region: density, length, calibre, branching, shape.

The skeleton (scikit-image's ``skeletonize``) and its branches (``skan``) are found once for the
whole image and then counted per region, so a ring's edge never cuts a branch short. Lengths are
8-neighbour step lengths (1 or √2 px), as skan measures them.

Every length rule is physical (µm, see :mod:`.lengths`), so that the same eye scanned at another
pixel size gives the same numbers: a finer grid draws a vessel's wall with more steps, and each
step can sprout a skeleton spur that a pixel rule would count as a branch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .lengths import in_pixels
from .units import Units

#: Skeleton branches shorter than this (µm) are no vessel branches: a terminal one is a spur that
#: skeletonisation grows from a bump in a vessel's wall, and is pruned; one between two junctions
#: joins them into one branch point; an isolated one is no segment. The OCTA-500 labels resampled x2
#: grow 10-40 µm spurs that the native scans lack (3M: 13 against 2 a scan; 6M: 56 against 3). 50 µm,
#: about twice a labelled vessel's calibre, kept branch points within 3 % at 3M x2, 6M x1.3 and 6M x2;
#: 40 µm left 6M x2 at +6 % (docs/measurements.md). Without a pixel size: 5 px (see :mod:`.lengths`).
MIN_BRANCH_UM = 50.0
#: Branches shorter than this (µm) are too short for a tortuosity (10 px of a 3 mm scan of 300 px).
MIN_TORTUOSITY_UM = 100.0
#: A branch's arc for its tortuosity runs through a point every this many µm: pixel steps alone
#: (1 or √2) overstate the length of a smooth curve by up to 8 % (5.5 % on average over directions).
ARC_STEP_UM = 50.0
#: Box sizes (µm) of the fractal dimension: from about a capillary's calibre to a tenth of a 3 mm
#: scan, the same physical range at any pixel size (see :func:`box_counting_dimension`).
FRACTAL_BOX_UM = (20.0, 40.0, 80.0, 160.0, 320.0)
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
    #: The pixel size (µm) the mask was analysed with, None in pixel units (the rules then assume one).
    pixel_size_um: float | None
    #: Each skeleton pixel's share of the skeleton length (half of each 8-neighbour step), 0 elsewhere.
    pixel_length: np.ndarray
    #: One label per branch point: a cluster of skeleton pixels with three or more neighbours, with
    #: the branches shorter than MIN_BRANCH_UM that join junctions.
    junctions: np.ndarray
    #: Vessel width at each skeleton pixel (px), 0 elsewhere: 2 d - 1, d the distance to the background.
    width: np.ndarray
    #: The branches, less those shorter than MIN_BRANCH_UM that join junctions or stand alone.
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class VesselMeasures:
    """The vessel measures of one region, in the units of :class:`Units` (see docs/measurements.md)."""

    area: float
    vad: float
    vld: float
    vdi: float
    mean_diameter: float
    branch_points_density: float
    segments: int
    tortuosity: float
    fractal_dimension: float


@dataclass(frozen=True)
class _Graph:
    """The skan branches of a skeleton: each one's pixels, length (px) and whether it ends at a junction."""

    paths: list[np.ndarray]
    lengths: np.ndarray
    #: Per branch, how many of its two ends are junctions (0, 1 or 2).
    junction_ends: np.ndarray


def analyse_skeleton(vessels: np.ndarray, pixel_size_um: float | None = None) -> SkeletonAnalysis:
    """Skeletonise a 2D vessel mask (nonzero = vessel), prune its spurs and analyse its branches.

    After pruning, every branch shorter than MIN_BRANCH_UM joins two junctions (it becomes part of
    their branch point) or stands alone (a speck); neither is a segment.
    """
    mask = np.asarray(vessels) != 0
    min_branch_px = in_pixels(MIN_BRANCH_UM, pixel_size_um)
    skeleton = pruned_skeleton(mask, min_branch_px)
    graph = _graph(skeleton)
    short = graph.lengths < min_branch_px
    links = [path for path, is_link in zip(graph.paths, short & (graph.junction_ends == 2), strict=True) if is_link]
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    width = np.where(skeleton, 2.0 * distance - 1.0, 0.0)
    arc_step = max(1, round(in_pixels(ARC_STEP_UM, pixel_size_um)))
    segments = tuple(
        _segment(path, arc_step) for path, is_short in zip(graph.paths, short, strict=True) if not is_short
    )
    return SkeletonAnalysis(
        mask, pixel_size_um, _pixel_lengths(skeleton), _branch_points(skeleton, links), width, segments
    )


def _branch_points(skeleton: np.ndarray, links: list[np.ndarray]) -> np.ndarray:
    """One label per branch point: 8-connected clusters of junction pixels and the short links between them."""
    junction_pixels = skeleton & (_neighbour_counts(skeleton) >= 3)
    for path in links:
        junction_pixels[path[:, 0], path[:, 1]] = True
    return ndimage.label(junction_pixels, structure=_EIGHT_CONNECTED)[0]


def pruned_skeleton(mask: np.ndarray, min_branch_px: float) -> np.ndarray:
    """The mask's skeleton without terminal branches shorter than ``min_branch_px``, pruned until none is left.

    Pruning a spur can leave a shorter terminal branch behind (a vessel's end forks into two spurs
    that hang off a short stub), so it repeats; each round removes pixels, so it ends.
    """
    from skimage.morphology import skeletonize

    skeleton = skeletonize(mask)
    while True:
        spurs = _spur_pixels(skeleton, min_branch_px)
        if not spurs.any():
            return skeleton
        skeleton = skeletonize(skeleton & ~spurs)


def _spur_pixels(skeleton: np.ndarray, min_branch_px: float) -> np.ndarray:
    """The pixels of the terminal branches shorter than ``min_branch_px``, less the junction each hangs from."""
    graph = _graph(skeleton)
    spurs = np.zeros_like(skeleton)
    for path, length, junction_ends in zip(graph.paths, graph.lengths, graph.junction_ends, strict=True):
        if junction_ends == 1 and length < min_branch_px:
            free = path if _is_junction(skeleton, path[-1]) else path[::-1]
            spurs[free[:-1, 0], free[:-1, 1]] = True
    return spurs


def _is_junction(skeleton: np.ndarray, pixel: np.ndarray) -> bool:
    row, col = int(pixel[0]), int(pixel[1])
    return int(skeleton[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2].sum()) - 1 >= 3


def _graph(skeleton: np.ndarray) -> _Graph:
    """The skeleton's branches (skan); none without two neighbouring skeleton pixels (skan fails on those)."""
    if not (skeleton & (_neighbour_counts(skeleton) > 0)).any():
        return _Graph([], np.zeros(0), np.zeros(0, dtype=int))
    from skan import Skeleton

    graph = Skeleton(skeleton)
    paths = [graph.path_coordinates(index).astype(int) for index in range(graph.n_paths)]
    ends = [sum(_is_junction(skeleton, path[end]) for end in (0, -1)) for path in paths]
    return _Graph(paths, np.asarray(graph.path_lengths(), dtype=float), np.asarray(ends, dtype=int))


def _neighbour_counts(skeleton: np.ndarray) -> np.ndarray:
    counts = ndimage.convolve(skeleton.astype(np.uint8), _EIGHT_CONNECTED.astype(np.uint8), mode="constant")
    return counts.astype(int) - 1


def _pixel_lengths(skeleton: np.ndarray) -> np.ndarray:
    """Half of each step to an 8-neighbour (1 px straight, √2 px diagonal) per skeleton pixel."""
    image = skeleton.astype(float)
    straight = ndimage.convolve(image, np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], float), mode="constant")
    diagonal = ndimage.convolve(image, np.array([[1, 0, 1], [0, 0, 0], [1, 0, 1]], float), mode="constant")
    return np.where(skeleton, 0.5 * (straight + np.sqrt(2.0) * diagonal), 0.0)


def _segment(coordinates: np.ndarray, arc_step: int) -> Segment:
    """A branch's middle pixel, its arc (a polyline through every ``arc_step``-th pixel and the last) and chord."""
    middle = coordinates[len(coordinates) // 2]
    vertices = np.vstack([coordinates[::arc_step], coordinates[-1:]])
    arc = float(np.hypot(*np.diff(vertices, axis=0).T).sum())
    chord = float(np.hypot(*(coordinates[-1] - coordinates[0])))
    return Segment((int(middle[0]), int(middle[1])), arc, chord)


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
        tortuosity=mean_tortuosity(inside, in_pixels(MIN_TORTUOSITY_UM, analysis.pixel_size_um)),
        fractal_dimension=box_counting_dimension(analysis.vessels & region, analysis.pixel_size_um),
    )


def mean_tortuosity(segments: list[Segment], min_arc_px: float) -> float:
    """Mean arc / chord of the open branches at least ``min_arc_px`` long (1 = straight); 0 if none."""
    ratios = [s.arc / s.chord for s in segments if s.arc >= min_arc_px and s.chord > 0]
    return float(np.mean(ratios)) if ratios else 0.0


def box_counting_dimension(mask: np.ndarray, pixel_size_um: float | None = None) -> float:
    """Minkowski-Bouligand dimension: slope of log(boxes holding foreground) against log(1 / box size).

    Boxes of FRACTAL_BOX_UM (rounded to whole pixels, at least 1; the assumed pixel size without
    one), up to an eighth of the shorter side (larger boxes mostly count the shape's edges). A fixed
    physical range matters: below a vessel's calibre the mask fills its boxes like an area
    (dimension 2), so a range of pixel sizes that starts at 1 px reaches further into that regime on a
    finer grid and gives a larger dimension. 0 for an empty mask or fewer than two box sizes.
    """
    if not mask.any():
        return 0.0
    largest = max(min(mask.shape) // 8, 1)
    sizes = sorted({max(1, round(in_pixels(um, pixel_size_um))) for um in FRACTAL_BOX_UM})
    sizes = [size for size in sizes if size <= largest]
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
