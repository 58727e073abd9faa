"""The first view shows the whole image, also once the docks have narrowed the canvas.

napari fits an image to the canvas when the layer is added; a dock added after it (as
``scripts/run.sh`` does) takes width from the canvas, and the image is then cropped at the sides.
So from the dock's first show on, each change of the canvas size fits the view again, until the
user moves or zooms the camera (their view is never reset).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QWidget

if TYPE_CHECKING:
    import napari
    from napari.components import Camera

CameraPose = tuple[tuple[float, ...], float]


class FitViewUntilMoved(QObject):
    """Refit the view on canvas resizes from ``dock``'s first show until the camera is moved by anyone else."""

    def __init__(self, dock: QWidget, viewer: napari.viewer.Viewer) -> None:
        super().__init__(dock)
        self._viewer = viewer
        self._pose: CameraPose | None = None
        dock.installEventFilter(self)
        dock.destroyed.connect(self._stop)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Show:
            watched.removeEventFilter(self)
            self._pose = self._camera_pose()
            self._viewer.canvas.events.size.connect(self._on_canvas_resized)
        return False

    def _camera_pose(self) -> CameraPose:
        camera = camera_of(self._viewer)
        return tuple(camera.center), float(camera.zoom)

    def _on_canvas_resized(self) -> None:
        if self._pose is None or not _same_pose(self._pose, self._camera_pose()):
            self._stop()
            return
        self._viewer.reset_view()
        self._pose = self._camera_pose()

    def _stop(self) -> None:
        self._pose = None
        self._viewer.canvas.events.size.disconnect(self._on_canvas_resized)


def camera_of(viewer: napari.viewer.Viewer) -> Camera:
    """napari 0.9 moved the camera into the scene; 0.5 to 0.8 have it on the viewer."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def _same_pose(a: CameraPose, b: CameraPose) -> bool:
    return len(a[0]) == len(b[0]) and bool(np.allclose(a[0], b[0]) and np.isclose(a[1], b[1]))
