"""The training dock's table of (image, vessel labels, optional centerline labels) rows.

One row per image layer to train on; rows are added and removed with buttons. A row's labels
choice moves to the image's newest corrections layer when there is one (made in the Segment
vessels dock), and otherwise to a Labels layer of the same shape if the current one does not fit,
so the common cases (correct a result; one image, one painted Labels layer) need no clicks at all.
A result nobody painted is never picked: it is the model's own output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, PushButton
from napari.layers import Image, Labels, Layer
from qtpy.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from ._combos import narrow
from ._layers import find_corrections, is_output, is_unedited_result

if TYPE_CHECKING:
    import napari

IMAGE_TIP = "Image layer to train on: grey 2D, RGB (converted to grey), or a stack (one training image per slice)"
LABEL_TIP = (
    "Labels layer with the vessels painted on this image (same shape): 0 is background, any other "
    "value is vessel. Slices of a stack with nothing painted are skipped"
)
CENTERLINE_TIP = (
    "Optional Labels layer with vessel centerlines (thin lines) for the coarse stage's centerline "
    "target; without one, the centerlines are the skeleton of the vessel labels"
)
NO_CENTERLINE = "— from vessels"
NO_LABELS = "— none"


def spatial_shape(layer: Layer) -> tuple[int, ...]:
    """A layer's shape without its colour axis."""
    shape = tuple(layer.data.shape)
    return shape[:-1] if isinstance(layer, Image) and layer.rgb else shape


class PairRow:
    """The three choices and the remove button of one row."""

    def __init__(self, viewer: napari.viewer.Viewer, on_remove: Callable[[PairRow], None]) -> None:
        self._viewer = viewer
        self.image = ComboBox(choices=self._image_choices, tooltip=IMAGE_TIP)
        self.label = ComboBox(choices=self._label_choices, tooltip=LABEL_TIP)
        self.centerline = ComboBox(choices=self._centerline_choices, tooltip=CENTERLINE_TIP)
        for combo in (self.image, self.label, self.centerline):
            narrow(combo)  # three layer names side by side would widen the dock past a laptop screen's share
        self.remove_button = PushButton(text="✕", tooltip="Remove this row")
        self.remove_button.native.setFixedWidth(28)
        self.image.changed.connect(self.match_labels)
        self.remove_button.changed.connect(lambda: on_remove(self))
        self.match_labels()

    @property
    def widgets(self) -> tuple[ComboBox, ComboBox, ComboBox, PushButton]:
        return self.image, self.label, self.centerline, self.remove_button

    def reset_choices(self) -> None:
        for combo in (self.image, self.label, self.centerline):
            combo.reset_choices()

    def _image_choices(self, _: ComboBox) -> list[tuple[str, Image]]:
        return [
            (layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image) and not is_output(layer)
        ]

    def _labels_layers(self) -> list[tuple[str, Labels]]:
        # Results are listed too: painting one makes it the user's corrections (and an unpainted one is refused).
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Labels)]

    def _label_choices(self, _: ComboBox) -> list[tuple[str, Labels | None]]:
        return [(NO_LABELS, None), *self._labels_layers()]

    def _centerline_choices(self, _: ComboBox) -> list[tuple[str, Labels | None]]:
        return [(NO_CENTERLINE, None), *self._labels_layers()]

    def match_labels(self) -> None:
        """Point the labels choice at the image's newest corrections, or else at labels its shape fits.

        Any layer this plugin wrote (a result, older corrections, another image's) gives way to the
        image's newest corrections. A layer the user picked stays picked while it fits, or while
        nothing fits better. An unedited result is never picked here.
        """
        image = self.image.value
        if image is None:
            return
        current = self.label.value
        corrections = find_corrections(self._viewer, str(image.unique_id))
        if corrections is not None and (current is None or is_output(current)):
            self.label.value = corrections
            return
        shape = spatial_shape(image)
        if current is not None and not is_unedited_result(current) and spatial_shape(current) == shape:
            return
        drawn = [layer for _, layer in self._labels_layers() if not is_unedited_result(layer)]
        fitting = [layer for layer in drawn if spatial_shape(layer) == shape]
        # A layer named after the image (e.g. 'scan labels') first; with none of its shape, any drawn
        # layer rather than none, so that Train says what does not fit.
        named = [layer for layer in fitting if layer.name.startswith(image.name)]
        better = named or fitting or (drawn if current is None else [])
        if better:
            self.label.value = better[0]


class PairTable(QWidget):
    """Rows of (image, vessel labels, centerline) choices, with a button to add rows."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self.rows: list[PairRow] = []
        self._grid = QGridLayout()
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(4)
        self._grid.setVerticalSpacing(2)
        for column, (title, tip) in enumerate(
            (("image", IMAGE_TIP), ("vessel labels", LABEL_TIP), ("centerline", CENTERLINE_TIP))
        ):
            header = QLabel(title)
            header.setToolTip(tip)
            self._grid.addWidget(header, 0, column)
            self._grid.setColumnStretch(column, 1)
        self._next_grid_row = 1
        self.add_button = PushButton(text="+ Add image", tooltip="Train on one more image layer and its labels")
        self.add_button.changed.connect(self.add_row)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(self._grid)
        layout.addWidget(self.add_button.native)
        self.add_row()

    def add_row(self) -> PairRow:
        row = PairRow(self._viewer, self.remove_row)
        used = {r.image.value for r in self.rows}
        unused = [layer for _, layer in row._image_choices(row.image) if layer not in used]
        if unused and self.rows:
            row.image.value = unused[0]
        for column, widget in enumerate(row.widgets):
            self._grid.addWidget(widget.native, self._next_grid_row, column)
        self._next_grid_row += 1
        self.rows.append(row)
        self._update_remove_buttons()
        return row

    def remove_row(self, row: PairRow) -> None:
        if len(self.rows) <= 1 or row not in self.rows:
            return
        self.rows.remove(row)
        for widget in row.widgets:
            self._grid.removeWidget(widget.native)
            widget.native.setParent(None)
            widget.native.deleteLater()
        self._update_remove_buttons()

    def reset_choices(self) -> None:
        """Refresh every row's choices, then its labels choice.

        Skipped while two layers share a name: magicgui keys choices by name, and napari allows a
        shared name only for a moment, while a rename (painting a result renames it) is made unique,
        which it announces again.
        """
        names = [layer.name for layer in self._viewer.layers]
        if len(set(names)) < len(names):
            return
        for row in self.rows:
            row.reset_choices()
            row.match_labels()

    def _update_remove_buttons(self) -> None:
        for row in self.rows:
            row.remove_button.enabled = len(self.rows) > 1


__all__ = ["PairRow", "PairTable", "spatial_shape"]
