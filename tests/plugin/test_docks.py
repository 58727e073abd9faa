"""What the docks share: together they fit a laptop screen, scrolling instead of squashing a control; one pixel
size field."""

from __future__ import annotations

import numpy as np
import pytest
from napari.settings import get_settings
from qtpy.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QProgressBar,
    QScrollArea,
    QWidget,
)

from napari_octanet.plugin._first_view import camera_of
from napari_octanet.plugin.measure_widget import MeasureWidget
from napari_octanet.plugin.segment_widget import SegmentWidget
from napari_octanet.plugin.train_widget import TrainWidget

LAPTOP = (1280, 800)
CONTROLS = (QAbstractButton, QAbstractSlider, QAbstractSpinBox, QComboBox, QLineEdit, QProgressBar)


def squashed_controls(root: QWidget) -> list[str]:
    """Visible controls lower than they ask to be (napari's style sheet may cap a control below its hint)."""
    return [
        f"{type(control).__name__} {control.height()} < {control.minimumSizeHint().height()}"
        for control in root.findChildren(QWidget)
        if isinstance(control, CONTROLS)
        and control.isVisible()
        and control.height() < min(control.minimumSizeHint().height(), control.maximumHeight())
    ]


@pytest.mark.parametrize(
    "docks", [(SegmentWidget, TrainWidget), (SegmentWidget, TrainWidget, MeasureWidget)], ids=["two", "three"]
)
def test_the_docks_fit_a_1280_by_800_window_without_squashing_a_control(make_napari_viewer, qtbot, docks) -> None:
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*LAPTOP)
    viewer.add_image(np.zeros((64, 64)), name="scan")
    widgets = [dock(viewer, synchronous=True) for dock in docks]
    for widget in widgets:
        viewer.window.add_dock_widget(widget, name=type(widget).__name__)
    QApplication.processEvents()
    qtbot.wait(50)
    assert widgets[0].native.window().height() <= LAPTOP[1]
    for widget in widgets:
        assert squashed_controls(widget.native) == [], type(widget).__name__


def visible_world_box(viewer) -> tuple[np.ndarray, np.ndarray]:
    """The (row, column) corners of the world the 2D camera shows."""
    camera = camera_of(viewer)
    half = np.asarray(viewer.canvas.size, dtype=float) / camera.zoom / 2
    centre = np.asarray(camera.center[-2:], dtype=float)
    return centre - half, centre + half


def test_the_first_view_shows_the_whole_image_after_the_dock_narrows_the_canvas(make_napari_viewer, qtbot) -> None:
    """As scripts/run.sh does: the window shown, the image added, then the Segment vessels dock."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*LAPTOP)
    QApplication.processEvents()
    viewer.add_image(np.zeros((400, 400)), name="scan")
    viewer.window.add_dock_widget(SegmentWidget(viewer, synchronous=True), name="Segment vessels")
    viewer.window.add_dock_widget(TrainWidget(viewer, synchronous=True), name="Fine-tune")
    qtbot.wait(100)
    low, high = visible_world_box(viewer)
    assert np.all(low <= -0.5) and np.all(high >= 399.5), (low, high)


def test_a_view_the_user_zoomed_is_not_refitted(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((400, 400)), name="scan")
    viewer.window.add_dock_widget(SegmentWidget(viewer, synchronous=True), name="Segment vessels")
    qtbot.wait(50)
    camera = camera_of(viewer)
    camera.zoom *= 3
    zoom = camera.zoom
    viewer.window.resize(900, 700)
    qtbot.wait(100)
    assert camera.zoom == pytest.approx(zoom)


def controls_cut_at_the_right(dock) -> list[str]:
    """Visible controls of a dock whose right edge lies beyond its scroll area's viewport (so hidden)."""
    scroll_area = dock.native.findChild(QScrollArea)
    viewport = scroll_area.viewport()
    return [
        f"{type(control).__name__} right edge {control.mapTo(viewport, control.rect().topRight()).x()} "
        f"> viewport {viewport.width()}"
        for control in scroll_area.widget().findChildren(QWidget)
        if isinstance(control, CONTROLS)
        and control.isVisible()
        and control.mapTo(viewport, control.rect().topRight()).x() >= viewport.width()
    ]


@pytest.mark.parametrize("restyle", [False, True], ids=["first-frame", "restyled"])
def test_the_fine_tune_rows_are_not_cut_at_the_right(make_napari_viewer, qtbot, restyle) -> None:
    """Each spin box's right edge lies within its dock's viewport at 1280 x 800, from the pass of the event
    loop that widens the rows on: napari's style sheet widens them as the docks are first shown (the
    first frame, or a screenshot taken then, as scripts/screenshot.py --loop does), and a theme or font
    change widens them later. A scroll area hides its content's size from the layouts around it, so the
    dock used to keep its narrower width for a few passes, the rows cut at the right ("+" hidden)."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*LAPTOP)
    viewer.add_image(np.zeros((64, 64)), name="scan")
    segment = SegmentWidget(viewer, synchronous=True)
    train = TrainWidget(viewer, synchronous=True)
    viewer.window.add_dock_widget(segment, name="Segment vessels")
    viewer.window.add_dock_widget(train, name="Fine-tune")
    if restyle:
        qtbot.wait(100)
        get_settings().appearance.font_size = 13  # napari's Preferences: every row wider than the dock was
    QApplication.processEvents()  # one pass
    assert train.native.findChildren(QAbstractSpinBox), "no spin boxes to check"
    for dock in (segment, train):
        assert controls_cut_at_the_right(dock) == [], type(dock).__name__


#: 70 characters, as an exported scan's name may be.
LONG_NAME = "sub-0042_ses-baseline_OD_angio_superficial_3x3mm_2023-05-17_export_v02"
#: A status line naming a file whose name Qt finds nowhere to wrap in (no space, '/' or '-'): 640 px wide.
LONG_STATUS = f"Saved {LONG_NAME.replace('-', '_')}_vessels_corrected.csv in /home/someone/exports."


def three_docks_at_1280_by_800(make_napari_viewer, qtbot, name: str) -> list:
    """The three docks, docked as napari does, beside an image and a labels layer named after ``name``."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*LAPTOP)
    viewer.add_image(np.zeros((64, 64)), name=name)
    viewer.add_labels(np.zeros((64, 64), np.uint8), name=f"{name} vessels")
    docks = [dock(viewer, synchronous=True) for dock in (SegmentWidget, TrainWidget, MeasureWidget)]
    for widget in docks:
        viewer.window.add_dock_widget(widget, name=type(widget).__name__)
    settle(qtbot)
    return docks


def settle(qtbot) -> None:
    QApplication.processEvents()
    qtbot.wait(50)


def widths(docks) -> dict[str, int]:
    return {type(widget).__name__: widget.native.width() for widget in docks}


def test_a_long_layer_name_widens_no_dock(make_napari_viewer, qtbot) -> None:
    """Every combo box of names is elided: with this name the docks were 614 px wide instead of 545."""
    short = widths(three_docks_at_1280_by_800(make_napari_viewer, qtbot, "scan"))
    assert widths(three_docks_at_1280_by_800(make_napari_viewer, qtbot, LONG_NAME)) == short


def test_a_long_path_in_a_status_line_widens_no_dock_and_is_shown_whole(make_napari_viewer, qtbot) -> None:
    docks = three_docks_at_1280_by_800(make_napari_viewer, qtbot, "scan")
    before = widths(docks)
    for widget in docks:
        widget.controls.show_status(LONG_STATUS)
    settle(qtbot)

    assert widths(docks) == before
    for widget in docks:
        status = widget.controls.status
        label = status.native
        assert status.value == LONG_STATUS
        assert label.height() >= label.heightForWidth(label.width()), "the wrapped lines are cut at the bottom"


def test_the_segment_and_measure_docks_share_one_pixel_size_field(make_napari_viewer) -> None:
    """One value per viewer: given in either dock, both show it and use it; another viewer's docks keep theirs."""
    viewer, other_viewer = make_napari_viewer(), make_napari_viewer()
    segment, measure = SegmentWidget(viewer, synchronous=True), MeasureWidget(viewer, synchronous=True)
    other = SegmentWidget(other_viewer, synchronous=True)
    assert segment.form["pixel_size"].native.text() == "unknown"

    segment.form["pixel_size"].value = 9.87
    assert measure.form["pixel_size"].value == pytest.approx(9.87)
    assert measure.pixel_size.um == pytest.approx(9.87) and other.form.pixel_size.um is None

    measure.pixel_size.um = None
    assert segment.form.pixel_size.um is None and segment.form["pixel_size"].native.text() == "unknown"
    measure.form["pixel_size"].value = 15.0
    assert SegmentWidget(viewer, synchronous=True).form.pixel_size.um == pytest.approx(15.0)  # a dock opened later
