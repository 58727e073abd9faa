"""Artefacts drawn onto clean scans, to check that the flags catch them (benchmark and tests).

Each :class:`Recipe` damages one scan in one way at one of three strengths: ``mild`` (visible,
a careful reviewer might still keep the scan), ``moderate`` and ``severe`` (what OCTA quality
guidelines exclude). Damage is drawn on the scan scaled to [0, 1] by its own percentiles (as
inference scales it) and scaled back, so the result keeps the input's dtype and value range.
Sizes are fractions of the image, so a recipe means the same at 304 and at 1024 pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from ..preprocess import NORMALISATION_PERCENTILES, numeric_pixels

STRENGTHS = ("mild", "moderate", "severe")
#: The strengths at which a reviewer would exclude a scan: the flags' hit-rate target applies to these.
EXCLUDED_STRENGTHS = ("moderate", "severe")

Damage = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Recipe:
    """One way to draw one kind of artefact; ``damage(scan01, strength_index, rng)`` returns a new array."""

    kind: str
    name: str
    damage: Damage


def _band(length: int, fraction: float, rng: np.random.Generator, margin: float = 0.1) -> slice:
    """A random band of ``fraction`` of ``length`` lines, away from the first and last ``margin``."""
    height = max(2, round(length * fraction))
    first = round(length * margin)
    start = int(rng.integers(first, max(first + 1, length - first - height)))
    return slice(start, start + height)


def _shifted_rows(scan: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """A saccade: a band of rows (10 % of the height) displaced sideways by 1 %, 3 % or 6 % of the width."""
    out = scan.copy()
    rows = _band(scan.shape[0], 0.10, rng)
    shift = max(2, round(scan.shape[1] * (0.01, 0.03, 0.06)[strength])) * int(rng.choice((-1, 1)))
    out[rows] = np.roll(scan[rows], shift, axis=1)
    return out


def _shifted_columns(scan: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """The same displacement along the other scan axis: a band of columns moved up or down."""
    return _shifted_rows(scan.T, strength, rng).T.copy()


def _duplicated_strip(scan: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """Motion correction gone wrong: 2 %, 5 % or 10 % of the rows repeat the strip just above them."""
    out = scan.copy()
    rows = _band(scan.shape[0], (0.02, 0.05, 0.10)[strength], rng, margin=0.15)
    height = rows.stop - rows.start
    out[rows] = scan[rows.start - height : rows.start]
    return out


def _bright_lines(scan: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """Straight decorrelation lines: 1, 2 or 3 rows (2 px each) blended 30 %, 55 % or 80 % toward white."""
    out = scan.copy()
    blend = (0.30, 0.55, 0.80)[strength]
    for _ in range(strength + 1):
        rows = _band(scan.shape[0], 2 / scan.shape[0], rng)
        out[rows] = (1 - blend) * scan[rows] + blend
    return out


def _gain_and_noise(scan: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """A weak signal: contrast down to 60 %, 40 % or 25 %, with Gaussian noise of 5 %, 8 % or 12 %."""
    gain, noise = ((0.60, 0.05), (0.40, 0.08), (0.25, 0.12))[strength]
    return gain * scan + rng.normal(0.0, noise, scan.shape)


def _shot_noise(scan: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """Few photons: Poisson counts of 40, 15 or 6 at the scan's full brightness, over a dim floor."""
    photons = (40.0, 15.0, 6.0)[strength]
    return rng.poisson((np.clip(scan, 0.0, None) + 0.05) * photons) / photons


def _blur_and_noise(scan: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """Defocus or media opacity: blurred (sigma 0.7, 1 or 1.5 px), half the contrast, and noise."""
    sigma, noise = ((0.7, 0.04), (1.0, 0.07), (1.5, 0.10))[strength]
    return 0.5 * gaussian_filter(scan, sigma) + rng.normal(0.0, noise, scan.shape)


def _black_band(scan: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """A blink: 3 %, 8 % or 20 % of the rows hold no signal at all."""
    out = scan.copy()
    out[_band(scan.shape[0], (0.03, 0.08, 0.20)[strength], rng)] = 0.0
    return out


def _dark_noisy_band(scan: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """A blink as a detector records it: the band holds the dark floor plus a little noise."""
    out = scan.copy()
    rows = _band(scan.shape[0], (0.03, 0.08, 0.20)[strength], rng)
    out[rows] = np.abs(rng.normal(0.0, 0.03, out[rows].shape))
    return out


def _band_at_edge(scan: np.ndarray, strength: int, rng: np.random.Generator) -> np.ndarray:
    """A blink at the start or the end of the acquisition: the black band touches the top or bottom edge."""
    out = scan.copy()
    height = max(2, round(scan.shape[0] * (0.03, 0.08, 0.20)[strength]))
    out[slice(0, height) if rng.random() < 0.5 else slice(scan.shape[0] - height, None)] = 0.0
    return out


RECIPES: tuple[Recipe, ...] = (
    Recipe("motion", "shifted rows", _shifted_rows),
    Recipe("motion", "shifted columns", _shifted_columns),
    Recipe("motion", "duplicated strip", _duplicated_strip),
    Recipe("motion", "bright lines", _bright_lines),
    Recipe("low_signal", "gain and noise", _gain_and_noise),
    Recipe("low_signal", "shot noise", _shot_noise),
    Recipe("low_signal", "blur and noise", _blur_and_noise),
    Recipe("blink", "black band", _black_band),
    Recipe("blink", "dark noisy band", _dark_noisy_band),
    Recipe("blink", "band at an edge", _band_at_edge),
)


def recipe(name: str) -> Recipe:
    """The recipe of this name; a ValueError lists the names."""
    for candidate in RECIPES:
        if candidate.name == name:
            return candidate
    raise ValueError(f"no artefact recipe {name!r}; choose one of {', '.join(r.name for r in RECIPES)}")


def simulate(image: np.ndarray, name: str, strength: str, seed: int = 0) -> np.ndarray:
    """``image`` (2D, any numeric dtype) with the artefact ``name`` drawn at ``strength``; the same for one seed."""
    if strength not in STRENGTHS:
        raise ValueError(f"unknown strength {strength!r}; choose one of {', '.join(STRENGTHS)}")
    pixels = numeric_pixels(image)
    if pixels.ndim != 2:
        raise ValueError(f"an artefact is drawn on one 2D scan; got shape {pixels.shape}")
    values = pixels.astype(np.float64)
    low, high = np.percentile(values, NORMALISATION_PERCENTILES)
    span = float(high - low) or 1.0
    damaged = recipe(name).damage((values - low) / span, STRENGTHS.index(strength), np.random.default_rng(seed))
    return _like(pixels, damaged * span + low)


def _like(original: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` in ``original``'s dtype: rounded and clipped to an integer type's range."""
    if np.issubdtype(original.dtype, np.integer):
        info = np.iinfo(original.dtype)
        return np.clip(np.round(values), info.min, info.max).astype(original.dtype)
    return values.astype(original.dtype)
