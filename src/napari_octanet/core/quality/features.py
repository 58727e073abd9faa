"""Per-scan features that a calibrated confidence is computed from: the maps' certainty and agreement, and the scan's.

All come from one slice's three probability maps (``inference.Segmentation``) and the scan itself,
at a cost of a few per cent of inference: no skeletons, no extra forward pass. The SRS (``fine``)
map is thresholded as everywhere else (Otsu, ``thresholds.binarise``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import binary_erosion, median_filter

from ..preprocess import normalise
from ..thresholds import binarise
from .artefacts import Inspection, inspect_scan, scan_plane

if TYPE_CHECKING:  # inference imports torch; the quality checks need none
    from ..inference import Segmentation

#: Probabilities between these count as undecided (a colleague's first signal, see docs/confidence.md).
UNDECIDED = (0.25, 0.75)
#: Lines each side that the streak roughness compares a line's mean with (its running median).
ROUGHNESS_WINDOW = 9

#: Every feature scan_features returns, with what it measures.
FEATURES: dict[str, str] = {
    "undecided_share": "share of vessel-ish pixels (SRS map above 0.25) whose probability is below 0.75",
    "map_agreement": "soft Dice between the SRS map and the coarse pixel map",
    "mask_agreement": "Dice between the Otsu masks of the SRS map and the coarse maps' maximum",
    "vessel_margin": "mean distance of the vessel pixels' probability from 0.5, times 2",
    "expected_dice": "the Dice the mask would have if the SRS probabilities were exact",
    "vessel_share": "share of the scan that the mask calls vessel",
    "mean_calibre_px": "twice the mask's area over its boundary: the vessels' mean width in pixels",
    "vessel_contrast": "mean scaled scan inside the mask minus outside it",
    "line_roughness": "how much the rows' mean brightness jumps from row to row, over the scan's spread",
    "fine_detail_correlation": "neighbour correlation of the scan's finest detail (low: noise)",
    "stripe_offset": "the largest departure of a row's or column's median from its neighbours'",
    "shift_gain": "how much better the worst pair of neighbouring lines matches when shifted",
    "blink_share": "share of rows or columns in the longest run without signal",
}


def slice_of(segmentation: Segmentation, index: int) -> Segmentation:
    """One slice of a stack's segmentation as a 2D one (its ``featureless`` says whether that slice was)."""
    return dataclasses.replace(
        segmentation,
        pixel=segmentation.pixel[index],
        centerline=segmentation.centerline[index],
        fine=segmentation.fine[index],
        featureless=[0] if index in segmentation.featureless else [],
    )


def scan_features(
    segmentation: Segmentation, image: np.ndarray, inspection: Inspection | None = None
) -> dict[str, float]:
    """The FEATURES of one 2D scan and its maps; empty for a featureless scan (nothing to measure).

    ``inspection`` is the scan's ``inspect_scan`` when the caller has it already (it is not run twice).
    """
    fine = np.asarray(segmentation.fine, dtype=np.float32)
    if fine.ndim != 2:
        raise ValueError(f"features are per 2D scan; these maps have shape {fine.shape}: use slice_of(maps, i)")
    plane = scan_plane(image)
    if plane.shape != fine.shape:
        (height, width), (map_height, map_width) = plane.shape, fine.shape
        raise ValueError(f"the scan is {height} x {width} px but its maps are {map_height} x {map_width}: not its maps")
    inspection = inspect_scan(plane) if inspection is None else inspection
    if segmentation.featureless or not inspection.measures:
        return {}
    scan = normalise(plane[np.newaxis])[0]
    mask = binarise(fine)
    return {
        **_map_features(segmentation, fine, mask),
        **_mask_features(fine, mask),
        "vessel_contrast": _contrast(scan, mask),
        "line_roughness": line_roughness(scan),
        **_scan_measures(inspection.measures),
    }


def _map_features(segmentation: Segmentation, fine: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """How sure and how consistent the network's maps are."""
    pixel = np.asarray(segmentation.pixel, dtype=np.float32)
    coarse = binarise(np.maximum(pixel, segmentation.centerline))
    vesselish = fine > UNDECIDED[0]
    undecided = vesselish & (fine < UNDECIDED[1])
    return {
        "undecided_share": _ratio(undecided.sum(), vesselish.sum()),
        "map_agreement": _ratio(2.0 * float((fine * pixel).sum()), float(fine.sum() + pixel.sum())),
        "mask_agreement": _ratio(2 * (coarse & mask).sum(), coarse.sum() + mask.sum()),
    }


def _mask_features(fine: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """What the mask looks like and how sure its pixels are."""
    area = int(mask.sum())
    boundary = int((mask & ~binary_erosion(mask)).sum())
    inside = fine[mask]
    return {
        "vessel_margin": float(np.abs(2.0 * inside - 1.0).mean()) if area else 0.0,
        "expected_dice": _ratio(2.0 * float(inside.sum()), area + float(fine.sum())),
        "vessel_share": area / mask.size,
        "mean_calibre_px": _ratio(2 * area, boundary),
    }


def _contrast(scan: np.ndarray, mask: np.ndarray) -> float:
    if mask.all() or not mask.any():
        return 0.0
    return float(scan[mask].mean() - scan[~mask].mean())


def line_roughness(scan: np.ndarray) -> float:
    """Mean jump of the rows' mean brightness from the running median of their neighbours, over the scan's spread.

    Streaks and bands along the fast axis raise it; vessels hardly do, as each covers a small part of a row.
    """
    spread = float(scan.std())
    if spread == 0.0:
        return 0.0
    means = scan.mean(axis=1)
    return float(np.abs(means - median_filter(means, ROUGHNESS_WINDOW, mode="nearest")).mean()) / spread


def _scan_measures(measures: dict[str, float]) -> dict[str, float]:
    """The artefact checks' measures, the worse of rows and columns where both are measured."""
    worse = {
        name: max(measures[f"{name}_rows"], measures[f"{name}_columns"])
        for name in ("stripe_offset", "shift_gain", "blink_share")
    }
    return {"fine_detail_correlation": measures["fine_detail_correlation"], **worse}


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0 where the denominator is 0 (no vessel: nothing sure, nothing agreeing)."""
    return float(numerator) / float(denominator) if denominator else 0.0
