"""Synthetic OCTA-like en-face images with exact vessel labels, for demos, tests and smoke runs.

A vessel tree grows from the image border toward a dark foveal avascular zone (FAZ): each
branch is a random walk that bends gently toward the centre, tapers, and now and then sprouts a
thinner side branch. The tree is drawn bright over a capillary mesh (the zero crossings of
band-pass noise, absent from the FAZ), then blurred a little, modulated by a smooth contrast
field and given multiplicative speckle, as a real projection of the superficial plexus looks.
Lengths are given for a 304-pixel image (ROSE-1 and OCTA-500 3M) and scaled with ``size``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from skimage.draw import disk
from skimage.filters import gaussian

REFERENCE_SIZE = 304
MIN_SIZE = 32
#: Pixels: thinner vessels break up when drawn; small images get relatively wider trunks.
MIN_WIDTH = 2.0
MIN_TRUNK_WIDTH = 3.0


@dataclass
class _Branch:
    row: float
    col: float
    heading: float  # radians
    width: float  # pixels


@dataclass(frozen=True)
class _Fovea:
    row: float
    col: float
    radius: float


def synthetic_octa(size: int = REFERENCE_SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (size, size) uint8 OCTA-like image and its boolean vessel label; the same for the same seed."""
    if size < MIN_SIZE:
        raise ValueError(f"size {size} is too small for a vessel tree; use at least {MIN_SIZE} pixels")
    rng = np.random.default_rng(seed)
    scale = size / REFERENCE_SIZE
    fovea = _Fovea(
        row=size / 2 + rng.normal(0, 0.04 * size),
        col=size / 2 + rng.normal(0, 0.04 * size),
        radius=rng.uniform(0.065, 0.085) * size,
    )
    label, vessel_brightness = _draw_tree(size, scale, fovea, rng)
    capillaries = _capillary_mesh(size, scale, rng) * _outside_fovea(size, fovea)
    background = 40.0 + 140.0 * capillaries
    image = np.maximum(background, vessel_brightness)
    image = gaussian(image, sigma=0.6 * scale, preserve_range=True)
    image *= _contrast_field(size, rng) * rng.gamma(shape=8.0, scale=1 / 8.0, size=image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), label


def synthetic_set(n: int, size: int = REFERENCE_SIZE, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` different (image, label) pairs; image ``i`` is ``synthetic_octa(size, seed + i)``."""
    return [synthetic_octa(size, seed + i) for i in range(n)]


def _draw_tree(size: int, scale: float, fovea: _Fovea, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Grow the tree; return its mask and its brightness (wider vessels are brighter)."""
    label = np.zeros((size, size), dtype=bool)
    brightness = np.zeros((size, size), dtype=np.float32)
    pending = _root_branches(size, scale, fovea, rng)
    while pending:
        branch = pending.pop()
        for row, col, width in _walk(branch, label, scale, fovea, rng, pending):
            rr, cc = disk((row, col), width / 2, shape=label.shape)
            label[rr, cc] = True
            brightness[rr, cc] = np.maximum(brightness[rr, cc], min(170.0 + 18.0 * width / scale, 245.0))
    return label, brightness


def _root_branches(size: int, scale: float, fovea: _Fovea, rng: np.random.Generator) -> list[_Branch]:
    """Six to nine trunks entering from the border, spread around it and aimed roughly at the fovea."""
    count = int(rng.integers(6, 10))
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False) + rng.uniform(0, 2 * np.pi)
    angles += rng.normal(0, 0.25, count)
    roots = []
    for angle in angles:
        # Start where a ray from the fovea leaves the image, then head back inward.
        reach = size / max(abs(np.cos(angle)), abs(np.sin(angle)))
        row = float(np.clip(fovea.row + reach * np.sin(angle), 0, size - 1))
        col = float(np.clip(fovea.col + reach * np.cos(angle), 0, size - 1))
        heading = float(np.arctan2(fovea.row - row, fovea.col - col) + rng.normal(0, 0.35))
        roots.append(_Branch(row, col, heading, max(rng.uniform(3.5, 5.5) * scale, MIN_TRUNK_WIDTH)))
    return roots


def _walk(
    branch: _Branch, label: np.ndarray, scale: float, fovea: _Fovea, rng: np.random.Generator, pending: list[_Branch]
) -> Iterator[tuple[float, float, float]]:
    """Yield (row, col, width) along one branch, pushing its side branches onto ``pending``.

    The branch stops at the FAZ, at the border, when it is about to run into a vessel already
    drawn (vessels fill space rather than bundle), or when it has tapered below a capillary.
    """
    step, min_width, branch_every = 1.2 * scale, max(scale, MIN_WIDTH), 25.0 * scale
    row, col, heading, width = branch.row, branch.col, branch.heading, branch.width
    for steps in itertools.count():
        if width < min_width or np.hypot(row - fovea.row, col - fovea.col) < fovea.radius * 1.1:
            return
        if steps > 4 and _vessel_ahead(label, row, col, heading, width + 4 * scale):
            return
        yield row, col, width
        to_centre = np.arctan2(fovea.row - row, fovea.col - col)
        heading += rng.normal(0, 0.06) + 0.01 * np.sin(to_centre - heading)
        row, col = row + step * np.sin(heading), col + step * np.cos(heading)
        width *= 0.998
        if not (-2 <= row <= label.shape[0] + 1 and -2 <= col <= label.shape[1] + 1):
            return
        if rng.random() < step / branch_every:
            side = rng.choice((-1.0, 1.0))
            pending.append(_Branch(row, col, heading + side * rng.uniform(0.6, 1.2), width * rng.uniform(0.6, 0.85)))
            width *= 0.95


def _vessel_ahead(label: np.ndarray, row: float, col: float, heading: float, distance: float) -> bool:
    ahead_row = int(round(row + distance * np.sin(heading)))
    ahead_col = int(round(col + distance * np.cos(heading)))
    inside = 0 <= ahead_row < label.shape[0] and 0 <= ahead_col < label.shape[1]
    return inside and bool(label[ahead_row, ahead_col])


def _capillary_mesh(size: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """A [0, 1] network of thin curved lines: where band-pass filtered noise crosses zero."""
    noise = rng.standard_normal((size, size))
    band = gaussian(noise, sigma=1.5 * scale) - gaussian(noise, sigma=4.0 * scale)
    return np.exp(-((band / (0.5 * band.std())) ** 2))


def _outside_fovea(size: int, fovea: _Fovea) -> np.ndarray:
    """0 in the FAZ, rising smoothly to 1 at twice its radius."""
    rows, cols = np.mgrid[0:size, 0:size]
    distance = np.hypot(rows - fovea.row, cols - fovea.col) / fovea.radius
    ramp = np.clip(distance - 1.0, 0.0, 1.0)
    return ramp * ramp * (3 - 2 * ramp)


def _contrast_field(size: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field between about 0.7 and 1.15: uneven signal strength."""
    field = gaussian(rng.standard_normal((size, size)), sigma=size / 6)
    span = field.max() - field.min()
    return 0.7 + 0.45 * (field - field.min()) / (span if span else 1.0)
