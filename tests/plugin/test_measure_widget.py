"""The Measure vessels dock: table, features, FAZ layer (edits respected), rings, CSV export, pixel size."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from napari.layers import Labels, Shapes
from qtpy.QtWidgets import QApplication, QScrollArea
from skimage.draw import disk

from napari_octanet.core.synthetic import synthetic_octa
from napari_octanet.plugin._combos import middle_elided_text
from napari_octanet.plugin._layers import TAG
from napari_octanet.plugin.measure_widget import MeasureWidget

UM_PER_PIXEL = 3000 / 304  # a 3 mm scan of 304 px


@pytest.fixture
def scan_viewer(make_napari_viewer):
    """A viewer with a synthetic 304-px scan of 3 mm and its vessel label, and the dock (synchronous)."""
    viewer = make_napari_viewer()
    image, label = synthetic_octa(304, seed=0)
    viewer.add_image(image, name="eye", scale=(UM_PER_PIXEL, UM_PER_PIXEL))
    viewer.add_labels(label.astype(np.uint8), name="eye vessels", scale=(UM_PER_PIXEL, UM_PER_PIXEL))
    widget = MeasureWidget(viewer, synchronous=True)
    viewer.window.add_dock_widget(widget, name="Measure vessels")
    widget.form.reset_choices()
    widget.form["vessels"].value = viewer.layers["eye vessels"]
    widget.form["scan"].value = viewer.layers["eye"]
    return viewer, widget


def faz_layers(viewer) -> list[Labels]:
    return [layer for layer in viewer.layers if isinstance(layer, Labels) and layer.name.startswith("eye FAZ")]


def test_measure_fills_table_features_faz_and_rings(scan_viewer, shown) -> None:
    viewer, widget = scan_viewer
    widget.controls.run_button.changed.emit(True)
    assert shown["error"] == []
    table = widget.table.to_dataframe()
    assert list(table.columns) == ["whole", "fovea", "parafovea"]
    assert float(table.loc["faz_area_mm2", "whole"]) > 0.05
    assert [row["region"] for row in widget.rows()] == ["whole", "fovea", "parafovea"]
    assert "9.87 µm per pixel (from the layer's scale)" in widget.controls.status.value
    vessels = viewer.layers["eye vessels"]
    assert vessels.features["vad"][0] == pytest.approx(100 * np.mean(vessels.data > 0))
    assert len(faz_layers(viewer)) == 1
    rings = [layer for layer in viewer.layers if isinstance(layer, Shapes)]
    assert len(rings) == 1 and rings[0].nshapes == 2


def test_an_edited_faz_is_measured_and_never_overwritten(scan_viewer, shown) -> None:
    viewer, widget = scan_viewer
    widget.find_faz()
    (faz,) = faz_layers(viewer)
    edited = np.zeros_like(faz.data)
    edited[disk((150, 150), 30)] = 1
    faz.data = edited
    widget.controls.run_button.changed.emit(True)
    area_mm2 = np.count_nonzero(edited) * (3.0 / 304) ** 2
    assert widget.rows()[0]["faz_area_mm2"] == pytest.approx(area_mm2)
    widget.find_faz()
    assert len(faz_layers(viewer)) == 2
    np.testing.assert_array_equal(faz.data, edited)


def test_export_keeps_an_existing_file_unless_confirmed(scan_viewer, tmp_path: Path, shown) -> None:
    _, widget = scan_viewer
    widget.controls.run_button.changed.emit(True)
    out = tmp_path / "measures.csv"
    out.write_text("precious")
    assert not widget.export_csv(out)
    assert out.read_text() == "precious" and "was kept" in shown["error"][-1]
    assert widget.export_csv(out, overwrite=True)
    with out.open(newline="") as file:
        assert [row["region"] for row in csv.DictReader(file)] == ["whole", "fovea", "parafovea"]


def test_without_a_vessel_layer_the_user_is_told(make_napari_viewer, shown) -> None:
    viewer = make_napari_viewer()
    widget = MeasureWidget(viewer, synchronous=True)
    widget.controls.run_button.changed.emit(True)
    assert "No vessel Labels layer" in shown["error"][0]


def test_a_stack_is_measured_slice_by_slice(make_napari_viewer, tmp_path, shown) -> None:
    viewer = make_napari_viewer()
    pairs = [synthetic_octa(304, seed=seed) for seed in (0, 1)]
    scale = (1.0, UM_PER_PIXEL, UM_PER_PIXEL)
    viewer.add_image(np.stack([image for image, _ in pairs]), name="eyes", scale=scale)
    viewer.add_labels(np.stack([label for _, label in pairs]).astype(np.uint8), name="eyes vessels", scale=scale)
    widget = MeasureWidget(viewer, synchronous=True)
    widget.form.reset_choices()
    widget.form["vessels"].value = viewer.layers["eyes vessels"]
    widget.form["scan"].value = viewer.layers["eyes"]

    widget.controls.run_button.changed.emit(True)

    assert shown["error"] == []
    rows = widget.rows()
    assert [row["slice"] for row in rows] == [0, 0, 0, 1, 1, 1]
    assert [row["region"] for row in rows[:3]] == ["whole", "fovea", "parafovea"]
    for index, (_, label) in enumerate(pairs):
        assert rows[3 * index]["vad"] == pytest.approx(100 * np.mean(label))
    assert widget.table.column_headers == ("0 whole", "0 fovea", "0 parafovea", "1 whole", "1 fovea", "1 parafovea")
    (faz,) = [layer for layer in viewer.layers if isinstance(layer, Labels) and layer.name == "eyes FAZ"]
    assert faz.data.shape == (2, 304, 304) and faz.data[0].any() and faz.data[1].any()
    (rings,) = [layer for layer in viewer.layers if isinstance(layer, Shapes)]
    assert rings.ndim == 3 and rings.nshapes == 4
    assert widget.export_csv(tmp_path / "eyes.csv")
    with (tmp_path / "eyes.csv").open() as file:
        assert [row["slice"] for row in csv.DictReader(file)] == ["0", "0", "0", "1", "1", "1"]


@pytest.mark.parametrize("scale", [1.0, 3 / 304], ids=["unset", "mm"])
def test_a_layer_scale_that_is_not_um_per_pixel_gives_way_to_the_pixel_size_field(scan_viewer, shown, scale) -> None:
    """napari's default scale read as 1 µm/px shrank a 3 mm scan to 0.3 mm; a scale in mm read as µm made VLD 1000x."""
    viewer, widget = scan_viewer
    for name in ("eye", "eye vessels"):
        viewer.layers[name].scale = (scale, scale)
    widget.controls.run_button.changed.emit(True)
    assert shown["error"] == [] and widget.rows()[0]["units"] == "px"
    assert "pixel size unknown" in widget.controls.status.value

    widget.form["pixel_size"].value = 12.5
    widget.controls.run_button.changed.emit(True)
    assert widget.rows()[0]["pixel_size_um"] == pytest.approx(12.5)
    assert widget.rows()[0]["area_mm2"] == pytest.approx((304 * 0.0125) ** 2)
    assert "12.5 µm per pixel (from the pixel-size field)" in widget.controls.status.value
    note = widget.form["pixel_size_note"]
    assert ("looks like mm per pixel" in note.value) == (scale != 1.0)


def test_a_refused_measure_replaces_the_last_status(scan_viewer, shown) -> None:
    """After a measurement, a refused one must not leave "Measured ..." in the status line."""
    viewer, widget = scan_viewer
    widget.controls.run_button.changed.emit(True)
    assert widget.controls.status.value.startswith("Measured")
    widget.form["scan"].value = viewer.add_image(np.zeros((32, 32)), name="thumbnail")
    widget.find_faz()
    assert widget.controls.status.value.startswith("Not started: The scan 'thumbnail' is (32, 32)")


def test_a_layer_scale_in_um_per_pixel_wins_over_the_field(scan_viewer, shown) -> None:
    _, widget = scan_viewer
    widget.form["pixel_size"].value = 20.0
    widget.controls.run_button.changed.emit(True)
    assert shown["error"] == []
    assert widget.rows()[0]["area_mm2"] == pytest.approx(9.0)
    assert "This layer's scale gives 9.87 µm per pixel" in widget.form["pixel_size_note"].value


def test_at_1280_by_800_the_table_shows_the_measures_as_rows_and_the_regions_as_columns(
    make_napari_viewer, qtbot, shown
) -> None:
    """With a column per measure the dock showed file, region and units, and every measure lay off to the right."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1280, 800)
    image, label = synthetic_octa(304, seed=0)
    viewer.add_image(image, name="eye", scale=(UM_PER_PIXEL, UM_PER_PIXEL))
    viewer.add_labels(label.astype(np.uint8), name="eye vessels", scale=(UM_PER_PIXEL, UM_PER_PIXEL))
    widget = MeasureWidget(viewer, synchronous=True)
    viewer.window.add_dock_widget(widget, name="Measure vessels")
    widget.controls.run_button.changed.emit(True)
    QApplication.processEvents()
    qtbot.wait(50)

    table = widget.table
    assert table.column_headers == ("whole", "fovea", "parafovea")
    assert {"vad", "vld", "vdi", "fractal_dimension", "faz_area_mm2"} <= set(table.row_headers)
    assert "file" not in table.row_headers and "region" not in table.row_headers
    grid = table.native
    dock_viewport = widget.native.findChild(QScrollArea).viewport()
    vad_row = table.row_headers.index("vad")
    whole_value = grid.visualItemRect(grid.item(vad_row, 0))
    right_edge = grid.viewport().mapTo(dock_viewport, whole_value.topRight()).x()
    assert 0 < whole_value.right() <= grid.viewport().width() and right_edge <= dock_viewport.width()
    assert float(table.data[vad_row, 0]) == pytest.approx(widget.rows()[0]["vad"], rel=1e-3)


def test_the_progress_bar_reads_done_after_measuring(scan_viewer, shown) -> None:
    _, widget = scan_viewer
    widget.controls.run_button.changed.emit(True)
    bar = widget.controls.progress_bar
    assert shown["error"] == [] and bar.value == bar.max >= 1


def test_the_scan_defaults_to_the_only_image_that_fits(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    image, label = synthetic_octa(304, seed=0)
    viewer.add_image(image, name="eye")
    viewer.add_image(np.zeros((3, 3)), name="thumbnail")
    viewer.add_labels(label.astype(np.uint8), name="painted")
    widget = MeasureWidget(viewer, synchronous=True)
    assert widget.form["scan"].value is viewer.layers["eye"]


def test_the_scan_follows_the_image_the_mask_was_made_from(make_napari_viewer) -> None:
    """As the Segment vessels dock leaves it: the vessel layer's tag names its source image."""
    viewer = make_napari_viewer()
    image, label = synthetic_octa(304, seed=0)
    viewer.add_image(image, name="left eye")
    right = viewer.add_image(image[::-1], name="right eye")
    widget = MeasureWidget(viewer, synchronous=True)
    assert widget.form["scan"].value is None  # two scans fit, none is known to be the mask's
    viewer.add_labels(
        label.astype(np.uint8), name="right eye vessels", metadata={TAG: {"source": str(right.unique_id)}}
    )
    assert widget.form["scan"].value is right


def test_without_a_scan_measure_leaves_the_faz_out_as_the_tooltip_says(scan_viewer, shown) -> None:
    _, widget = scan_viewer
    widget.form["scan"].value = None
    widget.controls.run_button.changed.emit(True)
    assert shown["error"] == [] and "faz_area_mm2" not in widget.rows()[0]
    tooltip = widget.form["scan"].tooltip
    assert "without it Measure leaves the FAZ out" in tooltip and "Find FAZ looks in the mask alone" in tooltip


LONG_NAME = "sub-0042_ses-baseline_OD_angio_superficial_3x3mm_2023-05-17_export"


def test_long_layer_names_leave_the_dock_narrow_at_1280_by_800(make_napari_viewer, qtbot, tmp_path, shown) -> None:
    """Combos elide long names and the status line names no layer or folder: either widened the dock to ~690 px,
    leaving the canvas ~240 px."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1280, 800)
    image, label = synthetic_octa(304, seed=0)
    viewer.add_image(image, name=LONG_NAME)
    viewer.add_labels(label.astype(np.uint8), name=f"{LONG_NAME} vessels")
    widget = MeasureWidget(viewer, synchronous=True)
    viewer.window.add_dock_widget(widget, name="Measure vessels")
    widget.controls.run_button.changed.emit(True)
    folder = tmp_path / LONG_NAME
    folder.mkdir()
    assert widget.export_csv(folder / f"{LONG_NAME}.csv")
    QApplication.processEvents()
    qtbot.wait(50)
    assert shown["error"] == []
    assert widget.native.width() < 350, widget.native.width()
    shown_name = middle_elided_text(widget.form["vessels"].native)
    assert shown_name.startswith("sub-0042") and shown_name.endswith("vessels") and "…" in shown_name


def test_every_nonzero_label_counts_as_vessel(scan_viewer, shown) -> None:
    """Nonzero = vessel, as in the core and the CLI: a mask drawn with label -1 used to measure as empty."""
    viewer, widget = scan_viewer
    vessels = viewer.layers["eye vessels"]
    positive = (vessels.data > 0).mean()
    vessels.data = -vessels.data.astype(np.int16)
    widget.controls.run_button.changed.emit(True)
    assert shown["error"] == []
    assert vessels.features["vad"][0] == pytest.approx(100 * positive)
