"""OCTA measures on shapes with known answers, on synthetic scans with a known FAZ, and on bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.draw import disk, polygon

from napari_octanet.core.measure import (
    FAZ_COLUMNS,
    MeasureJob,
    Units,
    box_counting_dimension,
    faz_measures,
    find_faz,
    iter_measure,
    measure_scan,
    pixel_size_from_fov,
    pixel_size_from_layer_scale,
)
from napari_octanet.core.synthetic import synthetic_octa

PIXEL_UM = 10.0


def whole(measures) -> dict[str, object]:
    return next(row for row in measures.rows() if row["region"] == "whole")


def bar(width: int = 5, length: int = 160, shape: tuple[int, int] = (100, 200)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    top, left = shape[0] // 2 - width // 2, (shape[1] - length) // 2
    mask[top : top + width, left : left + length] = True
    return mask


def test_straight_bar_density_length_and_calibre() -> None:
    width, length = 5, 160
    row = whole(measure_scan(bar(width, length), pixel_size_um=PIXEL_UM))
    area_mm2 = 100 * 200 * (PIXEL_UM / 1000) ** 2
    assert row["units"] == "mm" and row["area_mm2"] == pytest.approx(area_mm2)
    assert row["vad"] == pytest.approx(100 * width * length / (100 * 200))
    # The skeleton stops about half a width short of each end: a bar's width is the tolerance.
    true_vld = length * PIXEL_UM / 1000 / area_mm2
    assert true_vld - width * PIXEL_UM / 1000 / area_mm2 <= row["vld"] <= true_vld
    assert row["vdi"] == pytest.approx(width * PIXEL_UM, abs=PIXEL_UM)
    assert row["mean_diameter_um"] == pytest.approx(width * PIXEL_UM, abs=PIXEL_UM)
    assert row["segments"] == 1 and row["branch_points_per_mm2"] == 0
    assert row["tortuosity"] == pytest.approx(1.0, abs=0.01)


def test_a_cross_has_one_branch_point_and_four_segments() -> None:
    mask = np.zeros((101, 101), dtype=bool)
    mask[49:52, 10:91] = True
    mask[10:91, 49:52] = True
    row = whole(measure_scan(mask))
    assert row["units"] == "px" and row["segments"] == 4
    assert row["branch_points_per_px2"] == pytest.approx(1 / 101**2)


def test_semicircle_arc_tortuosity_is_half_pi() -> None:
    rows, cols = np.indices((200, 200))
    radius = np.hypot(rows - 100, cols - 100)
    arc = (np.abs(radius - 60) <= 1.5) & (rows <= 100)
    assert whole(measure_scan(arc))["tortuosity"] == pytest.approx(math.pi / 2, rel=0.03)


def test_fractal_dimension_of_a_filled_square_and_a_line() -> None:
    # Boxes of 2-32 px (20-320 µm at the assumed 10 µm): a square must span many of the largest boxes.
    square = np.zeros((512, 512), dtype=bool)
    square[20:480, 30:490] = True
    line = np.zeros((256, 256), dtype=bool)
    line[128, 10:250] = True
    assert box_counting_dimension(square) == pytest.approx(2.0, abs=0.1)
    assert box_counting_dimension(line) == pytest.approx(1.0, abs=0.05)


def test_disc_faz_area_and_circularity() -> None:
    mask = np.zeros((200, 200), dtype=bool)
    mask[disk((100, 100), 40)] = True
    faz = faz_measures(mask, Units(PIXEL_UM))
    assert faz.area == pytest.approx(math.pi * 0.4**2, rel=0.01)
    assert faz.perimeter == pytest.approx(2 * math.pi * 0.4, rel=0.02)
    assert faz.circularity == pytest.approx(1.0, abs=0.03)
    assert faz.acircularity == pytest.approx(1.0, abs=0.03)
    assert not faz.touches_border and faz.centroid == pytest.approx((100, 100))


def test_square_faz_circularity_is_quarter_pi_over_orientations() -> None:
    """Crofton's perimeter is unbiased over orientations (FAZ outlines have none preferred), not per angle."""
    corners = np.array([[-50, -50], [-50, 50], [50, 50], [50, -50]], dtype=float)
    circularities = []
    for angle in np.deg2rad(np.arange(0, 90, 10)):
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        turned = corners @ turn.T + 100
        mask = np.zeros((200, 200), dtype=bool)
        mask[polygon(turned[:, 0], turned[:, 1], mask.shape)] = True
        circularities.append(faz_measures(mask, Units(None)).circularity)
    assert np.mean(circularities) == pytest.approx(math.pi / 4, rel=0.05)
    assert all(abs(c - math.pi / 4) < 0.15 * math.pi / 4 for c in circularities)


def test_empty_mask_gives_zeros_and_no_faz() -> None:
    measures = measure_scan(
        np.zeros((128, 128), np.uint8), scan=np.zeros((128, 128)), pixel_size_um=PIXEL_UM, faz="find"
    )
    row = whole(measures)
    numbers = {
        k: v
        for k, v in row.items()
        if k not in ("region", "units", "pixel_size_um", "area_mm2") and k not in FAZ_COLUMNS
    }
    assert all(value == 0 for value in numbers.values()), numbers
    assert measures.faz_mask is None and all(row[name] is None for name in FAZ_COLUMNS)
    assert any("No FAZ found" in note for note in measures.notes)


def test_all_vessel_mask_is_full_density_and_finite() -> None:
    measures = measure_scan(np.ones((128, 128), bool), pixel_size_um=PIXEL_UM, faz="find")
    row = whole(measures)
    assert row["vad"] == 100 and row["fractal_dimension"] == pytest.approx(2.0)
    assert all(math.isfinite(v) for v in row.values() if isinstance(v, float))
    assert measures.faz_mask is None and "No FAZ found" in measures.notes[0]


def test_faz_touching_the_border_is_measured_and_flagged() -> None:
    vessels = np.ones((150, 150), bool)
    faz = np.zeros_like(vessels)
    faz[disk((75, 0), 30, shape=faz.shape)] = True
    vessels[faz] = False
    measures = measure_scan(vessels, pixel_size_um=PIXEL_UM, faz=faz)
    row = whole(measures)
    assert row["faz_touches_border"] is True
    assert row["faz_area_mm2"] == pytest.approx(np.count_nonzero(faz) * 1e-4)
    assert any("border" in note for note in measures.notes)


def test_a_given_faz_is_measured_as_given() -> None:
    faz = np.zeros((150, 150), bool)
    faz[disk((70, 80), 20)] = True
    row = whole(measure_scan(bar(shape=(150, 150)), pixel_size_um=PIXEL_UM, faz=faz.astype(np.uint8) * 3))
    assert row["faz_area_mm2"] == pytest.approx(np.count_nonzero(faz) * 1e-4)


def test_a_grey_image_is_refused_as_a_mask_in_the_api() -> None:
    grey = np.random.default_rng(0).random((64, 64))
    with pytest.raises(ValueError, match="not a vessel mask.*segment the scan first"):
        measure_scan(grey)
    with pytest.raises(ValueError, match="not a FAZ mask"):
        measure_scan(bar(), faz=np.random.default_rng(0).random((100, 200)))


def test_a_mask_with_nan_is_refused() -> None:
    mask = bar().astype(float)
    mask[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        measure_scan(mask)


def test_every_nonzero_value_is_vessel_negative_ones_included() -> None:
    mask = np.where(bar(), -1, 0).astype(np.int16)
    assert whole(measure_scan(mask))["vad"] == pytest.approx(whole(measure_scan(bar()))["vad"])
    hole = np.zeros((150, 150), bool)
    hole[disk((75, 75), 20)] = True
    found = find_faz(np.where(hole, 0, -1).astype(np.int16), pixel_size_um=PIXEL_UM)
    assert found.mask is not None and np.count_nonzero(found.mask & hole) > 0.9 * np.count_nonzero(hole)


@pytest.mark.parametrize("faz", [None, "find"])
def test_a_scan_of_another_size_is_refused_naming_both_shapes(faz: str | None) -> None:
    with pytest.raises(ValueError, match=r"the scan is \(10, 10\) but the vessel mask is \(100, 200\)"):
        measure_scan(bar(), scan=np.zeros((10, 10)), faz=faz)


@pytest.mark.parametrize("fov", [0, -3, float("nan"), float("inf"), 1000, "three"])
def test_nonsense_field_of_view_is_a_value_error_naming_it(fov: object) -> None:
    with pytest.raises(ValueError, match=f"field of view {fov!r}".replace("(", r"\(").replace(")", r"\)")):
        pixel_size_from_fov(fov, 304)  # type: ignore[arg-type]


@pytest.mark.parametrize("pixel_size_um", [-1, 0.0099, 201])
def test_nonsense_pixel_size_is_refused(pixel_size_um: float) -> None:
    with pytest.raises(ValueError, match=f"pixel size {pixel_size_um} µm makes no sense") as refusal:
        measure_scan(bar(), pixel_size_um=pixel_size_um)
    assert "mm or µm" not in str(refusal.value)  # a layer's scale is read as µm per pixel only


def test_a_field_of_view_giving_no_octa_pixel_size_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="a field of view of 0.1 mm over 1024 px makes pixels of 0.0977 µm"):
        pixel_size_from_fov(0.1, 1024)


def test_a_layer_scale_in_um_per_pixel_is_the_pixel_size() -> None:
    assert pixel_size_from_layer_scale(3000 / 304) == pytest.approx(9.868, abs=1e-3)


def test_napari_default_layer_scale_is_refused_as_no_pixel_size() -> None:
    """Read as 1 µm/px, an unset scale shrank a 3 mm scan of 304 px to 0.3 mm and dropped its ETDRS rings."""
    with pytest.raises(ValueError, match="napari's default when no scale was set") as refusal:
        pixel_size_from_layer_scale(1.0)
    assert "set the layer's scale in µm per pixel" in str(refusal.value) and "µm per pixel field" in str(refusal.value)


@pytest.mark.parametrize("scale", [3 / 304, 0.5])
def test_a_layer_scale_in_mm_is_refused_as_mm(scale: float) -> None:
    """Read as µm, a 3 mm scan's scale in mm (0.0099) made the vessel length density 1000 times too large."""
    with pytest.raises(ValueError, match=f"the layer's scale {scale:.3g} looks like mm per pixel") as refusal:
        pixel_size_from_layer_scale(scale)
    assert f"µm per pixel ({1000 * scale:.3g} if" in str(refusal.value)


def test_pixel_units_are_named_in_the_columns() -> None:
    measures = measure_scan(bar(), faz=np.pad(np.ones((10, 10)), ((10, 80), (20, 170))))
    row = whole(measures)
    assert row["units"] == "px" and row["pixel_size_um"] is None
    assert {"area_px2", "mean_diameter_px", "branch_points_per_px2", "faz_area_px2", "faz_perimeter_px"} <= set(row)
    assert not any(name.endswith(("_mm", "_mm2", "_um")) for name in row if name != "pixel_size_um")
    assert [r.region for r in measures.records] == ["whole"]


@pytest.mark.parametrize(
    ("size", "fov_mm", "regions"),
    [(304, 3.0, ["whole", "fovea", "parafovea"]), (400, 6.0, ["whole", "fovea", "parafovea", "perifovea"])],
)
def test_etdrs_rings_where_the_field_of_view_holds_them(size: int, fov_mm: float, regions: list[str]) -> None:
    faz = np.zeros((size, size), bool)
    faz[disk((size / 2 + 3, size / 2 - 2), size / 15)] = True
    measures = measure_scan(bar(shape=(size, size)), pixel_size_um=pixel_size_from_fov(fov_mm, size), faz=faz)
    assert [r.region for r in measures.records] == regions
    fovea = measures.records[1]
    assert fovea.vessels.area == pytest.approx(math.pi * 0.5**2, rel=0.02)
    assert measures.rings[0].centre == pytest.approx((size / 2 + 3, size / 2 - 2), abs=0.5)


def synthetic_faz_radius(size: int, seed: int) -> float:
    """The visible FAZ radius of ``synthetic_octa(size, seed)``, from the generator's own parameters.

    The generator draws its FAZ radius r as its third random draw (after the centre's two) and
    fades the capillaries in from r to 2 r with a smoothstep s(t), t = d / r - 1, over a speckled
    floor of 40 (gamma noise of shape 8: standard deviation 40 / √8 = 14) with capillaries of 140.
    The capillary signal 140 s(t) equals one noise standard deviation at s = 0.101, t = 0.2:
    inside 1.2 r nothing is there to see, so 1.2 r is the FAZ an observer (or a method) can find.
    """
    rng = np.random.default_rng(seed)
    rng.normal(), rng.normal()
    return 1.2 * rng.uniform(0.065, 0.085) * size


@pytest.mark.parametrize(("size", "seed"), [(304, 0), (304, 3), (400, 1), (400, 5)])
def test_faz_area_on_synthetic_scans_within_ten_percent(size: int, seed: int) -> None:
    image, label = synthetic_octa(size, seed)
    found = find_faz(label, image, 3000 / 304)
    assert found.mask is not None, found.message
    true_area = math.pi * synthetic_faz_radius(size, seed) ** 2
    assert np.count_nonzero(found.mask) == pytest.approx(true_area, rel=0.10)


def test_batch_yields_progress_and_returns_each_scan() -> None:
    jobs = [MeasureJob("a", bar()), MeasureJob("b", np.zeros((100, 200), bool), pixel_size_um=PIXEL_UM)]
    generator = iter_measure(jobs)
    progress = []
    while True:
        try:
            progress.append(next(generator))
        except StopIteration as stop:
            results = stop.value
            break
    assert [p.done for p in progress] == [0, 1, 2] and progress[-1].total == 2
    assert [whole(r)["units"] for r in results] == ["px", "mm"]
    assert whole(results[1])["vad"] == 0
