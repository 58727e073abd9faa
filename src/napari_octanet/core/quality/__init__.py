"""Which scans to check first: a confidence (predicted Dice) per scan and artefact flags.

:func:`assess` is what segmentation front ends call: one :class:`ScanQuality` per slice, with the
confidence from the slice's maps and scan (:mod:`.features`, :mod:`.calibration`) and the flags
from the scan alone (:mod:`.artefacts`). A featureless slice gets confidence 0 and a flag, never a
made-up value. :mod:`.simulate` draws artefacts onto clean scans for the benchmark and the tests.
Qt-free and torch-free; docs/confidence.md gives the features, the calibration and the figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..preprocess import as_image_stack
from .artefacts import FEATURELESS, FEATURELESS_REASON, Flag, Inspection, artefact_flags, inspect_scan
from .calibration import DEFAULT_CALIBRATION, Calibration, fit_calibration, predict_confidence
from .features import FEATURES, scan_features, slice_of

if TYPE_CHECKING:  # inference imports torch; the quality checks need none
    from ..inference import Segmentation

#: Where a checkpoint's provenance keeps the calibration fitted for that model (``Calibration.to_dict``).
PROVENANCE_KEY = "confidence_calibration"


@dataclass(frozen=True)
class ScanQuality:
    """One scan's confidence (predicted Dice in [0, 1]) and flags; ``features`` are what it was computed from."""

    confidence: float
    flags: tuple[Flag, ...] = ()
    features: dict[str, float] = field(default_factory=dict)

    def flag_names(self) -> str:
        """The flags' names joined by '; ' (a CSV cell); empty when there are none."""
        return "; ".join(flag.name for flag in self.flags)

    def to_dict(self) -> dict[str, Any]:
        """What a record (JSON) keeps: the confidence rounded to 4 places and the flags with their reasons."""
        return {"confidence": round(self.confidence, 4), "flags": [flag.to_dict() for flag in self.flags]}


def review_key(quality: ScanQuality) -> tuple[bool, float]:
    """The order scans are best reviewed in: flagged first (a flag makes a scan unfit for measuring,
    whatever its confidence), then by confidence, lowest first. The CLI and the review queue sort by it."""
    return (not quality.flags, quality.confidence)


def model_calibration(provenance: Mapping[str, Any]) -> Calibration:
    """The calibration a model's provenance carries under PROVENANCE_KEY, else DEFAULT_CALIBRATION.

    A malformed one is a ValueError (``Calibration.from_dict``), not silently replaced.
    """
    stored = provenance.get(PROVENANCE_KEY)
    return DEFAULT_CALIBRATION if stored is None else Calibration.from_dict(stored)


def assess(
    segmentation: Segmentation, image: np.ndarray, calibration: Calibration = DEFAULT_CALIBRATION
) -> list[ScanQuality]:
    """One ScanQuality per slice of ``image`` (a 2D or RGB scan: a list of one) and its segmentation."""
    stack, was_2d = as_image_stack(image)
    qualities = []
    for index, plane in enumerate(stack):
        maps = segmentation if was_2d else slice_of(segmentation, index)
        qualities.append(assess_scan(maps, plane, calibration))
    return qualities


def assess_scan(
    segmentation: Segmentation, plane: np.ndarray, calibration: Calibration = DEFAULT_CALIBRATION
) -> ScanQuality:
    """The ScanQuality of one 2D scan and its 2D maps."""
    inspection = inspect_scan(plane)
    if segmentation.featureless or not inspection.measures:
        return ScanQuality(0.0, (Flag(FEATURELESS, FEATURELESS_REASON),))
    features = scan_features(segmentation, plane, inspection)
    return ScanQuality(predict_confidence(features, calibration), tuple(inspection.flags), features)


__all__ = [
    "DEFAULT_CALIBRATION",
    "FEATURELESS",
    "FEATURES",
    "PROVENANCE_KEY",
    "Calibration",
    "Flag",
    "Inspection",
    "ScanQuality",
    "artefact_flags",
    "assess",
    "assess_scan",
    "fit_calibration",
    "inspect_scan",
    "model_calibration",
    "predict_confidence",
    "review_key",
    "scan_features",
    "slice_of",
]
