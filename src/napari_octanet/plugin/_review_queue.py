"""The Segment dock's review queue: which scans to check first, flagged ones first, then the least confident.

Each slice of a stack, and each image layer segmented in this dock, is one entry with its
confidence (the Dice its mask is predicted to have) and artefact flags, both from the core's
:mod:`napari_octanet.core.quality`. A click on an entry takes the viewer there: the stack's slice,
or the layer with its result, the other queued scans hidden. The queue stays hidden while there is
only one entry to review (a single 2D scan), for which the status line says it all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from napari_octanet.core.quality import review_key

from ._layers import CORRECTIONS_ROLE, Placement, find_corrections, role_of
from ._segment_results import VESSELS

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

    from napari_octanet.core.quality import ScanQuality

#: Rows the list shows before it scrolls: enough to see the worst few, little enough for a laptop screen.
VISIBLE_ROWS = 5
SEPARATOR = " · "
HEADING = "Review queue: flagged first, then least confident. Click to go there."


@dataclass(frozen=True)
class ReviewEntry:
    """One scan to review: a 2D image layer (``slice_index`` None) or one slice of a stack."""

    placement: Placement
    slice_index: int | None
    quality: ScanQuality

    @property
    def source_id(self) -> str:
        return self.placement.source_id


def entries_of(placement: Placement, qualities: Sequence[ScanQuality], *, stack: bool) -> list[ReviewEntry]:
    """The entries of one result: one per slice of a stack, one for a 2D scan."""
    return [ReviewEntry(placement, index if stack else None, quality) for index, quality in enumerate(qualities)]


def review_order(entries: Iterable[ReviewEntry]) -> list[ReviewEntry]:
    """Flagged scans first (a flag makes a scan unfit for measuring, whatever its confidence), then by confidence
    ascending; ties keep their order."""
    return sorted(entries, key=lambda entry: review_key(entry.quality))


def flag_words(quality: ScanQuality) -> str:
    """The flags' names as words ('low signal'), each named once."""
    names = dict.fromkeys(flag.name.replace("_", " ") for flag in quality.flags)
    return ", ".join(names)


def entry_text(entry: ReviewEntry, *, with_layer: bool) -> str:
    """'slice 3 · 0.81 · motion', or '<layer> · 0.86'; a stack's slice is named with its layer when the queue
    holds several layers."""
    parts = []
    if with_layer or entry.slice_index is None:
        parts.append(entry.placement.source_name)
    if entry.slice_index is not None:
        parts.append(f"slice {entry.slice_index}")
    parts.append(f"{entry.quality.confidence:.2f}")
    if entry.quality.flags:
        parts.append(flag_words(entry.quality))
    return SEPARATOR.join(parts)


def entry_tooltip(entry: ReviewEntry) -> str:
    """The confidence spelled out and each flag's reason."""
    lines = [f"confidence {entry.quality.confidence:.2f}: the Dice this mask is predicted to have"]
    lines += [f"{flag.name.replace('_', ' ')}: {flag.reason}" for flag in entry.quality.flags]
    return "\n".join(lines)


def quality_summary(qualities: Sequence[ScanQuality]) -> str:
    """What the status line says of a run's quality: the confidence and each flag's reason for a 2D scan; the
    range, the least confident slice and the flagged slices for a stack."""
    if not qualities:
        return ""
    if len(qualities) == 1:
        (quality,) = qualities
        flags = "; ".join(f"{flag.name.replace('_', ' ')}: {flag.reason}" for flag in quality.flags)
        return f"Confidence {quality.confidence:.2f}" + (f"; flagged {flags}." if flags else ", no artefact flags.")
    confidences = [quality.confidence for quality in qualities]
    lowest = confidences.index(min(confidences))
    flagged = [f"slice {index} ({flag_words(quality)})" for index, quality in enumerate(qualities) if quality.flags]
    flags = f"flagged: {', '.join(flagged)}" if flagged else "no artefact flags"
    return (
        f"Confidence {min(confidences):.2f} to {max(confidences):.2f} over {len(qualities)} slices (lowest: slice "
        f"{lowest}); {flags}. The review queue lists them."
    )


# -- going there ----------------------------------------------------------------------------------


def belongs_to(layer: Layer, source_id: str) -> bool:
    """Whether ``layer`` is the source image with this id or one of its results or corrections."""
    tag = role_of(layer)
    return str(layer.unique_id) == source_id or (tag is not None and tag[0] == source_id)


def shown_with_its_scan(layer: Layer, source_id: str) -> bool:
    """The source image with this id, its vessel mask and its corrections: what a reviewer looks at."""
    tag = role_of(layer)
    return str(layer.unique_id) == source_id or tag in ((source_id, VESSELS.role), (source_id, CORRECTIONS_ROLE))


def go_to_slice(viewer: napari.viewer.Viewer, placement: Placement, index: int) -> None:
    """Move the viewer's slider on the stack's axis to slice ``index`` (in the layer's scale and offset)."""
    axis = viewer.dims.ndim - len(placement.scale)
    viewer.dims.set_point(axis, placement.translate[0] + index * placement.scale[0])


def shown_slice(viewer: napari.viewer.Viewer, placement: Placement, depth: int) -> int:
    """The slice of a stack of ``depth`` slices that the viewer shows now."""
    axis = viewer.dims.ndim - len(placement.scale)
    index = round((viewer.dims.point[axis] - placement.translate[0]) / placement.scale[0])
    return min(max(index, 0), depth - 1)


def show_only(viewer: napari.viewer.Viewer, source_id: str, queued: Iterable[str]) -> None:
    """Show the source image with this id, its vessel mask and corrections, and hide the other queued scans and
    their results (several scans of one size lie on top of each other); the active layer moves to its
    corrections (or else the image) unless it is one of this source's already."""
    others = set(queued) - {source_id}
    for layer in viewer.layers:
        if any(belongs_to(layer, other) for other in others):
            layer.visible = False
        elif shown_with_its_scan(layer, source_id):
            layer.visible = True
    active = viewer.layers.selection.active
    if active is None or not belongs_to(active, source_id):
        corrections = find_corrections(viewer, source_id)
        image = next((layer for layer in viewer.layers if str(layer.unique_id) == source_id), None)
        viewer.layers.selection.active = corrections or image


# -- the list -------------------------------------------------------------------------------------


class ReviewQueue(QWidget):
    """A heading and a short scrolling list of entries in review order; ``on_chosen`` hears a click (or the
    arrow keys) on an entry."""

    def __init__(self, on_chosen: Callable[[ReviewEntry], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entries: list[ReviewEntry] = []
        self._on_chosen = on_chosen
        self.heading = QLabel(HEADING)
        self.heading.setWordWrap(True)
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a long layer name keeps its confidence in view
        self.list.itemClicked.connect(self._chosen)
        self.list.currentItemChanged.connect(self._chosen)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.heading)
        layout.addWidget(self.list)
        self.setVisible(False)

    def show_entries(self, entries: Iterable[ReviewEntry]) -> None:
        """List ``entries`` in review order; hidden while there is at most one."""
        self.entries = review_order(entries)
        with_layer = len({entry.source_id for entry in self.entries}) > 1
        self.list.blockSignals(True)  # rebuilding is not the user choosing
        self.list.clear()
        for entry in self.entries:
            item = QListWidgetItem(entry_text(entry, with_layer=with_layer))
            item.setToolTip(entry_tooltip(entry))
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._fit_height()
        self.setVisible(len(self.entries) > 1)

    def texts(self) -> list[str]:
        """The rows as shown, top to bottom."""
        return [self.list.item(row).text() for row in range(self.list.count())]

    def _fit_height(self) -> None:
        """As tall as its rows up to VISIBLE_ROWS; it scrolls beyond."""
        rows = min(max(self.list.count(), 1), VISIBLE_ROWS)
        row_height = self.list.sizeHintForRow(0) if self.list.count() else self.list.fontMetrics().height()
        self.list.setFixedHeight(rows * row_height + 2 * self.list.frameWidth() + 2)

    def _chosen(self, item: QListWidgetItem | None, *_: object) -> None:
        if item is not None:
            self._on_chosen(self.entries[self.list.row(item)])
