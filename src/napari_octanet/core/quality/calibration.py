"""A scan's confidence: its predicted Dice, a linear function of its features fitted to scans with labels.

:func:`fit_calibration` fits the function (least squares with a little ridge, on standardised
features) to features and true Dice scores; fine-tuning can refit it on its own validation images.
A :class:`Calibration` is plain numbers, JSON-ready, so that a checkpoint's provenance can carry it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Ridge penalty on the standardised coefficients, relative to the total sample weight: a little
#: shrinkage so that two features that say nearly the same thing do not get large opposite weights.
RIDGE = 0.05


@dataclass(frozen=True)
class Calibration:
    """Predicted Dice = intercept + sum of coefficient x feature, clipped to [0, 1]."""

    features: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float
    #: What it was fitted on (model, data, scans), for the record.
    fitted_on: str = ""
    #: Each feature's range in the scans it was fitted on: no feature may add more to a prediction than it
    #: did at the edge of that range (a scan unlike the fitted ones may lower the confidence, never raise it).
    ranges: tuple[tuple[float, float], ...] = field(default=())

    def __post_init__(self) -> None:
        count = len(self.features)
        if len(self.coefficients) != count:
            raise ValueError(f"a calibration needs one coefficient per feature ({count}), got {len(self.coefficients)}")
        if self.ranges and len(self.ranges) != count:
            raise ValueError(f"a calibration needs one range per feature ({count}) or none, got {len(self.ranges)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "coefficients": list(self.coefficients),
            "intercept": self.intercept,
            "fitted_on": self.fitted_on,
            "ranges": [list(pair) for pair in self.ranges],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Read :meth:`to_dict`'s output back; a missing or malformed entry is a ValueError naming it."""
        try:
            return cls(
                features=tuple(str(name) for name in data["features"]),
                coefficients=tuple(float(value) for value in data["coefficients"]),
                intercept=float(data["intercept"]),
                fitted_on=str(data.get("fitted_on", "")),
                ranges=tuple((float(low), float(high)) for low, high in data.get("ranges", ())),
            )
        except (KeyError, TypeError, ValueError) as error:
            problem = f"{type(error).__name__}: {error}"
            raise ValueError(f"not a confidence calibration ({problem}); refit it or leave it out") from None


def predict_confidence(features: Mapping[str, float], calibration: Calibration) -> float:
    """The predicted Dice in [0, 1]; 0.0 for a featureless scan (no features: nothing to predict from).

    A feature the calibration needs but ``features`` lacks is a ValueError naming it.
    """
    if not features:
        return 0.0
    missing = [name for name in calibration.features if name not in features]
    if missing:
        raise ValueError(f"the calibration needs feature(s) {', '.join(missing)}, which were not measured")
    coefficients = np.array(calibration.coefficients, dtype=np.float64)
    contributions = coefficients * np.array([features[name] for name in calibration.features], dtype=np.float64)
    if calibration.ranges:
        lows, highs = np.array(calibration.ranges, dtype=np.float64).T
        contributions = np.minimum(contributions, np.maximum(coefficients * lows, coefficients * highs))
    predicted = calibration.intercept + float(contributions.sum())
    return float(min(max(predicted, 0.0), 1.0)) if math.isfinite(predicted) else 0.0


def fit_calibration(
    features_list: Sequence[Mapping[str, float]],
    dices: Sequence[float],
    names: Sequence[str],
    *,
    weights: Sequence[float] | None = None,
    ridge: float = RIDGE,
    fitted_on: str = "",
) -> Calibration:
    """Fit predicted Dice to true Dice over scans (features of each, its Dice), on the features ``names``.

    Weighted least squares on standardised features with a ``ridge`` penalty (relative to the total
    weight), turned back into coefficients of the raw features. ``weights`` (default: equal) let
    each data set count alike however many scans it has. Featureless scans (empty features) are left out.
    """
    kept = [i for i, features in enumerate(features_list) if features]
    if len(kept) < 2:
        raise ValueError(f"a calibration needs at least 2 scans with features; got {len(kept)}")
    values = np.array([[features_list[i][name] for name in names] for i in kept], dtype=np.float64)
    target = np.asarray(dices, dtype=np.float64)[kept]
    weight = np.ones(len(kept)) if weights is None else np.asarray(weights, dtype=np.float64)[kept]
    mean = np.average(values, axis=0, weights=weight)
    scale = np.sqrt(np.average((values - mean) ** 2, axis=0, weights=weight))
    scale[scale == 0] = 1.0
    design = np.column_stack([(values - mean) / scale, np.ones(len(kept))])
    penalty = ridge * weight.sum() * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0  # the intercept is not shrunk
    weighted = design * weight[:, np.newaxis]
    solution = np.linalg.solve(design.T @ weighted + penalty, weighted.T @ target)
    coefficients = solution[:-1] / scale
    intercept = float(solution[-1] - np.dot(coefficients, mean))
    ranges = tuple((float(low), float(high)) for low, high in zip(values.min(axis=0), values.max(axis=0), strict=True))
    return Calibration(tuple(names), tuple(float(c) for c in coefficients), intercept, fitted_on, ranges)


#: Fitted by ``benchmarks/confidence.py`` for the bundled default model on the val scans of OCTA-500 3M
#: and 6M and ROSSA; cross-validated, it ranks each split's scans by true Dice with Spearman 0.77-0.84
#: (docs/confidence.md).
DEFAULT_CALIBRATION = Calibration(
    features=("map_agreement", "vessel_contrast", "line_roughness", "fine_detail_correlation"),
    coefficients=(2.62492, -0.193184, -0.87486, 0.137234),
    intercept=-1.3948,
    fitted_on="octanet-lite-default: 130 val scans of OCTA500_3M, OCTA500_6M, ROSSA, splits weighing alike",
    ranges=((0.859889, 0.926626), (0.300962, 0.602163), (0.0142749, 0.0549288), (0.127566, 0.235295)),
)
