"""Turning probability maps into vessel masks: Otsu on the 8-bit map (the paper) or a fixed value."""

from __future__ import annotations

import numpy as np
from skimage.filters import threshold_otsu

Threshold = str | float


def parse_threshold(value: str | float) -> Threshold:
    """Accept 'otsu' or a number in (0, 1); anything else is a ValueError naming the value."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "otsu":
            return "otsu"
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"threshold {value!r} is neither 'otsu' nor a number between 0 and 1") from None
    number = float(value)
    if not 0.0 < number < 1.0:
        raise ValueError(f"threshold {number} is outside (0, 1); use 'otsu' or a value such as 0.5")
    return number


def otsu_level(probability: np.ndarray) -> float:
    """Otsu's threshold of one 2D map quantised to 8 bits, returned on the [0, 1] scale.

    A flat map has no two classes to separate: its level is 1.0, so none of it is vessel (a blank
    scan must not come back as a mask of vessels, whatever value its flat map has).
    """
    quantised = np.round(np.clip(probability, 0.0, 1.0) * 255.0).astype(np.uint8)
    if quantised.min() == quantised.max():
        return 1.0
    return float(threshold_otsu(quantised)) / 255.0


def binarise(probability: np.ndarray, threshold: Threshold = "otsu") -> np.ndarray:
    """Vessel mask of a 2D map or an (N, H, W) stack; Otsu is computed per 2D image.

    A pixel is vessel when its 8-bit value is above the level (Otsu's convention).
    """
    threshold = parse_threshold(threshold)
    probability = np.asarray(probability, dtype=np.float32)
    if probability.ndim == 2:
        return _binarise_2d(probability, threshold)
    return np.stack([_binarise_2d(p, threshold) for p in probability])


def _binarise_2d(probability: np.ndarray, threshold: Threshold) -> np.ndarray:
    level = otsu_level(probability) if threshold == "otsu" else float(threshold)
    if threshold == "otsu":
        quantised = np.round(np.clip(probability, 0.0, 1.0) * 255.0)
        return quantised > level * 255.0
    return probability > level
