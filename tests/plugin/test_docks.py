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
