"""The Measure vessels dock: table, features, FAZ layer (edits respected), rings, CSV export."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from napari.layers import Labels, Shapes
from qtpy.QtWidgets import QApplication
from skimage.draw import disk

from napari_octanet.core.synthetic import synthetic_octa
from napari_octanet.plugin._combos import middle_elided_text
from napari_octanet.plugin._layers import TAG
from napari_octanet.plugin.measure_widget import MeasureWidget


@pytest.fixture
def scan_viewer(make_napari_viewer):
    """A viewer with a synthetic 304-px scan and its vessel label, and the dock (synchronous)."""
    viewer = make_napari_viewer()
    image, label = synthetic_octa(304, seed=0)
    viewer.add_image(image, name="eye")
    viewer.add_labels(label.astype(np.uint8), name="eye vessels")
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
    assert list(table["region"]) == ["whole", "fovea", "parafovea"]
    assert table["faz_area_mm2"].iloc[0] > 0.05
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
    assert widget.table.to_dataframe()["faz_area_mm2"].iloc[0] == pytest.approx(area_mm2)
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
    viewer.add_image(np.stack([image for image, _ in pairs]), name="eyes")
    viewer.add_labels(np.stack([label for _, label in pairs]).astype(np.uint8), name="eyes vessels")
    widget = MeasureWidget(viewer, synchronous=True)
    widget.form.reset_choices()
    widget.form["vessels"].value = viewer.layers["eyes vessels"]
    widget.form["scan"].value = viewer.layers["eyes"]

    widget.controls.run_button.changed.emit(True)

    assert shown["error"] == []
    table = widget.table.to_dataframe()
    assert list(table["slice"]) == [0, 0, 0, 1, 1, 1] and list(table["region"][:3]) == ["whole", "fovea", "parafovea"]
    for index, (_, label) in enumerate(pairs):
        assert table["vad"][3 * index] == pytest.approx(100 * np.mean(label))
    (faz,) = [layer for layer in viewer.layers if isinstance(layer, Labels) and layer.name == "eyes FAZ"]
    assert faz.data.shape == (2, 304, 304) and faz.data[0].any() and faz.data[1].any()
    (rings,) = [layer for layer in viewer.layers if isinstance(layer, Shapes)]
    assert rings.ndim == 3 and rings.nshapes == 4
    assert widget.export_csv(tmp_path / "eyes.csv")
    with (tmp_path / "eyes.csv").open() as file:
        assert [row["slice"] for row in csv.DictReader(file)] == ["0", "0", "0", "1", "1", "1"]


@pytest.mark.parametrize(
    ("scale", "refusal"),
    [(1.0, "napari's default when no scale was set"), (3 / 304, "looks like mm per pixel")],
    ids=["unset", "mm"],
)
def test_a_layer_scale_that_is_not_um_per_pixel_is_refused(scan_viewer, shown, scale, refusal) -> None:
    """napari's default scale read as 1 µm/px shrank a 3 mm scan to 0.3 mm; a scale in mm read as µm made VLD 1000x."""
    viewer, widget = scan_viewer
    viewer.layers["eye vessels"].scale = (scale, scale)
    widget.form["pixel_size"].value = "scale"
    widget.controls.run_button.changed.emit(True)
    assert len(shown["error"]) == 1 and refusal in shown["error"][0]
    assert "set the layer's scale in µm per pixel" in shown["error"][0]
    assert widget.table.to_dataframe().empty
    assert widget.controls.status.value == f"Not started: {shown['error'][0]}"


def test_a_refused_measure_replaces_the_last_status(scan_viewer, shown) -> None:
    """After a measurement, a refused one must not leave "Measured ..." in the status line."""
    viewer, widget = scan_viewer
    widget.controls.run_button.changed.emit(True)
    assert widget.controls.status.value.startswith("Measured")
    viewer.layers["eye vessels"].scale = (1.0, 1.0)
    widget.form["pixel_size"].value = "scale"
    widget.find_faz()
    assert widget.controls.status.value.startswith("Not started: the layer's scale is 1")


def test_a_layer_scale_in_um_per_pixel_is_used(scan_viewer, shown) -> None:
    viewer, widget = scan_viewer
    viewer.layers["eye vessels"].scale = (3000 / 304, 3000 / 304)
    widget.form["pixel_size"].value = "scale"
    widget.controls.run_button.changed.emit(True)
    assert shown["error"] == []
    table = widget.table.to_dataframe()
    assert table["area_mm2"].iloc[0] == pytest.approx(9.0) and list(table["region"]) == ["whole", "fovea", "parafovea"]


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
    assert shown["error"] == [] and "faz_area_mm2" not in widget.table.to_dataframe()
    tooltip = widget.form["scan"].tooltip
    assert "without it Measure leaves the FAZ out" in tooltip and "Find FAZ looks in the mask alone" in tooltip


LONG_NAME = "sub-0042_ses-baseline_OD_angio_superficial_3x3mm_2023-05-17_export"


def test_long_layer_names_leave_the_dock_narrow_at_1280_by_800(make_napari_viewer, qtbot, tmp_path, shown) -> None:
    """Combos elide long names and the status line names no layer or folder: either widened the dock to ~690 px,
    leaving the canvas ~240 px."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
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
