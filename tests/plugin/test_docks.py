"""What both docks share: on a short screen they scroll instead of cutting their lower rows off."""

from __future__ import annotations

import pytest
from qtpy.QtWidgets import QScrollArea

from napari_octanet.plugin.segment_widget import SegmentWidget
from napari_octanet.plugin.train_widget import TrainWidget


@pytest.mark.parametrize("dock", [SegmentWidget, TrainWidget])
def test_a_short_dock_scrolls_to_its_last_row(make_napari_viewer, qtbot, dock) -> None:
    widget = dock(make_napari_viewer(), synchronous=True)
    area = widget.root_native_widget
    assert isinstance(area, QScrollArea)
    area.resize(320, 160)
    area.show()
    qtbot.waitUntil(lambda: area.verticalScrollBar().maximum() > 0)
    assert area.widget().sizeHint().height() > area.viewport().height()
