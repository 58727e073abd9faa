"""What the docks share: together they fit a laptop screen, scrolling instead of squashing a control."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QProgressBar,
    QWidget,
)

from napari_octanet.plugin._first_view import _camera
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
    window = viewer.window._qt_window
    window.resize(*LAPTOP)
    viewer.add_image(np.zeros((64, 64)), name="scan")
    widgets = [dock(viewer, synchronous=True) for dock in docks]
    for widget in widgets:
        viewer.window.add_dock_widget(widget, name=type(widget).__name__)
    QApplication.processEvents()
    qtbot.wait(50)
    assert window.height() <= LAPTOP[1]
    for widget in widgets:
        assert squashed_controls(widget.native) == [], type(widget).__name__


def visible_world_box(viewer) -> tuple[np.ndarray, np.ndarray]:
    """The (row, column) corners of the world the 2D camera shows."""
    camera = _camera(viewer)
    half = np.asarray(viewer.canvas.size, dtype=float) / camera.zoom / 2
    centre = np.asarray(camera.center[-2:], dtype=float)
    return centre - half, centre + half


def test_the_first_view_shows_the_whole_image_after_the_dock_narrows_the_canvas(make_napari_viewer, qtbot) -> None:
    """As scripts/run.sh does: the window shown, the image added, then the Segment vessels dock."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(*LAPTOP)
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
    camera = _camera(viewer)
    camera.zoom *= 3
    zoom = camera.zoom
    viewer.window._qt_window.resize(900, 700)
    qtbot.wait(100)
    assert camera.zoom == pytest.approx(zoom)
