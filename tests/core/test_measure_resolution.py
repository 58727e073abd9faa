"""The same vessels drawn at two pixel sizes give the same measures (issue #33, item 5).

A vessel tree is built in µm (tapering branches of short capsules whose radius varies a little,
as a real wall does) and drawn at 3 mm over 304 px (9.9 µm per pixel) and over 608 px (4.9 µm),
so only the sampling differs. A finer grid shows more of each wall's bumps, and each bump can
sprout a skeleton spur: counted in pixels, those spurs were branches.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import resize

from napari_octanet.core.measure import box_counting_dimension, find_faz, measure_scan
from napari_octanet.core.measure.lengths import ASSUMED_PIXEL_UM
from napari_octanet.core.synthetic import synthetic_octa

FIELD_UM = 3000.0
NATIVE_PX, FINE_PX = 304, 608
SEEDS = (0, 1, 2, 3)
STEP_UM = 60.0


def vessel_tree(seed: int) -> np.ndarray:
    """Capsules (row0, col0, row1, col1, radius) in µm: three trunks from the border, branching thinner inward."""
    rng = np.random.default_rng(seed)
    centre = np.full(2, FIELD_UM / 2)
    branches = []
    for angle in rng.uniform(0, 2 * np.pi, 3):
        start = centre + 0.49 * FIELD_UM * np.array([np.sin(angle), np.cos(angle)])
        branches.append((start, angle + np.pi + rng.normal(0, 0.2), 22.0, 0))
    capsules = []
    while branches:
        point, heading, radius, generation = branches.pop()
        for _ in range(int(rng.uniform(12, 24))):
            heading += rng.normal(0, 0.12)
            end = point + STEP_UM * np.array([np.sin(heading), np.cos(heading)])
            if not ((end >= 0).all() and (end <= FIELD_UM).all()):
                break
            capsules.append((*point, *end, radius * rng.uniform(0.85, 1.15)))
            if generation < 3 and rng.random() < 0.12:
                side = rng.choice([-1, 1]) * rng.uniform(0.6, 1.2)
                branches.append((end, heading + side, max(10.0, 0.75 * radius), generation + 1))
            point = end
    return np.array(capsules)


def draw(capsules: np.ndarray, size_px: int) -> np.ndarray:
    """The capsules as a mask of ``size_px`` pixels over FIELD_UM: pixels whose centre lies within a capsule."""
    pixel_um = FIELD_UM / size_px
    mask = np.zeros((size_px, size_px), dtype=bool)
    for r0, c0, r1, c1, radius in capsules:
        low = np.floor((np.minimum([r0, c0], [r1, c1]) - radius) / pixel_um).astype(int).clip(0, size_px)
        high = np.ceil((np.maximum([r0, c0], [r1, c1]) + radius) / pixel_um).astype(int).clip(0, size_px)
        rows, cols = np.mgrid[low[0] : high[0], low[1] : high[1]]
        y, x = (rows + 0.5) * pixel_um - r0, (cols + 0.5) * pixel_um - c0
        along = np.clip((y * (r1 - r0) + x * (c1 - c0)) / ((r1 - r0) ** 2 + (c1 - c0) ** 2), 0.0, 1.0)
        inside = np.hypot(y - along * (r1 - r0), x - along * (c1 - c0)) <= radius
        mask[low[0] : high[0], low[1] : high[1]] |= inside
    return mask


def whole_row(mask: np.ndarray, pixel_size_um: float | None) -> dict[str, object]:
    return measure_scan(mask, pixel_size_um=pixel_size_um).rows()[0]


@pytest.fixture(scope="module")
def ratios() -> dict[str, float]:
    """Mean over the trees of (measure at 4.9 µm per pixel) / (measure at 9.9 µm per pixel)."""
    names = ("branch_points_per_mm2", "segments", "fractal_dimension", "vad")
    per_tree = []
    for seed in SEEDS:
        capsules = vessel_tree(seed)
        native, fine = (whole_row(draw(capsules, n), FIELD_UM / n) for n in (NATIVE_PX, FINE_PX))
        per_tree.append([float(fine[name]) / float(native[name]) for name in names])
    return dict(zip(names, np.mean(per_tree, axis=0), strict=True))


def test_the_trees_are_drawn_alike_at_both_pixel_sizes(ratios: dict[str, float]) -> None:
    assert ratios["vad"] == pytest.approx(1.0, abs=0.01)


def test_branch_points_per_mm2_do_not_change_with_the_pixel_size(ratios: dict[str, float]) -> None:
    """Counted on the raw skeleton, the finer grid gave 17 % more branch points."""
    assert ratios["branch_points_per_mm2"] == pytest.approx(1.0, abs=0.10)


def test_segment_counts_do_not_change_with_the_pixel_size(ratios: dict[str, float]) -> None:
    """Counted on the raw skeleton, the finer grid gave 12 % more segments."""
    assert ratios["segments"] == pytest.approx(1.0, abs=0.10)


def test_fractal_dimension_does_not_change_with_the_pixel_size(ratios: dict[str, float]) -> None:
    """With boxes from 1 px up, the finer grid reached further below the vessels' calibre: 7 % higher."""
    assert ratios["fractal_dimension"] == pytest.approx(1.0, abs=0.05)


def vessel_with_side_branch(side_px: int, shape: tuple[int, int] = (60, 120)) -> np.ndarray:
    """A 3-px vessel across the image with a 3-px side branch ``side_px`` long hanging from its middle."""
    mask = np.zeros(shape, dtype=bool)
    mask[29:32, 10:110] = True
    mask[31 : 31 + side_px, 59:62] = True
    return mask


@pytest.mark.parametrize("pixel_size_um", [None, ASSUMED_PIXEL_UM, 5.0])
def test_a_spur_shorter_than_the_branch_length_is_no_branch(pixel_size_um: float | None) -> None:
    """A 3 px stub (15-30 µm, or 3 px without a pixel size) is pruned; a 20 px branch (100-200 µm) is kept."""
    stub = whole_row(vessel_with_side_branch(3), pixel_size_um)
    branch = whole_row(vessel_with_side_branch(20), pixel_size_um)
    density = "branch_points_per_mm2" if pixel_size_um else "branch_points_per_px2"
    assert (stub["segments"], stub[density]) == (1, 0)
    assert branch["segments"] == 3 and branch[density] > 0


def test_without_a_pixel_size_the_rules_assume_the_documented_one() -> None:
    mask = draw(vessel_tree(0), NATIVE_PX)
    pixels, assumed = whole_row(mask, None), whole_row(mask, ASSUMED_PIXEL_UM)
    assert pixels["units"] == "px" and assumed["units"] == "mm"
    assert pixels["segments"] == assumed["segments"]
    assert pixels["branch_points_per_px2"] == pytest.approx(assumed["branch_points_per_mm2"] * 1e-4)
    assert pixels["fractal_dimension"] == pytest.approx(assumed["fractal_dimension"])
    assert box_counting_dimension(mask) == pytest.approx(pixels["fractal_dimension"])


def test_a_mask_of_lone_pixels_is_measured_as_no_branches() -> None:
    """skan fails on a skeleton with no two neighbouring pixels: such a mask once stopped the whole batch."""
    specks = np.zeros((50, 50), dtype=bool)
    specks[10, 10] = specks[30, 40] = True
    row = whole_row(specks, ASSUMED_PIXEL_UM)
    assert row["segments"] == 0 and row["branch_points_per_mm2"] == 0 and row["vad"] > 0


@pytest.mark.parametrize("seed", [0, 3])
def test_faz_area_does_not_change_with_the_pixel_size(seed: int) -> None:
    """A 6 mm scan of 400 px (15 µm) resampled x1.3: rounding the bridge to whole pixels made the FAZ 3-5 % smaller."""
    image, label = synthetic_octa(400, seed)
    areas = []
    for factor in (1.0, 1.3):
        shape = (round(400 * factor),) * 2
        scan = resize(image.astype(float), shape, order=1, preserve_range=True)
        vessels = resize(label.astype(float), shape, order=1) >= 0.5
        pixel_size_um = 15.0 / factor
        found = find_faz(vessels, scan, pixel_size_um)
        assert found.mask is not None, found.message
        areas.append(np.count_nonzero(found.mask) * pixel_size_um**2)
    assert areas[1] == pytest.approx(areas[0], rel=0.02)
