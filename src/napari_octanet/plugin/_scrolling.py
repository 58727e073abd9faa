"""Docks that fit a laptop screen: their rows scroll when the window is shorter than they are.

Two traps make the obvious ways fail in napari (the first attempt, commit 60d20f1, fell into the
first): napari docks a magicgui widget's ``.native``, which for ``Container(scrollable=True)`` is
the inner widget, lifted out of its scroll area, so nothing ever scrolls; and a plain
``QScrollArea`` caps its size hint at 24 text lines, so a dock that fits the screen would scroll
anyway. Here the scroll area lives *inside* ``.native`` and asks for its content's full size, while
it can shrink to a few rows: Qt then gives each dock what it asks for when there is room, and
scrolls a dock (instead of squashing its controls or growing the window) when there is not.
"""

from __future__ import annotations

from magicgui.widgets import Container
from qtpy.QtCore import QEvent, QObject, QSize, Qt
from qtpy.QtWidgets import QFrame, QLayout, QScrollArea, QWidget

#: The least height a dock keeps on a short screen: a few rows, enough to see that it scrolls.
MIN_VISIBLE_HEIGHT = 120


class FittingScrollArea(QScrollArea):
    """A vertical scroll area whose size hint is its content's (not capped) and that shrinks to a few rows."""

    def __init__(self, content: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(content)
        content.installEventFilter(self)
        self.viewport().installEventFilter(self)  # the content's updateGeometry() posts its LayoutRequest here
        self._fit_content()

    def _scroll_bar_width(self) -> int:
        return self.verticalScrollBar().sizeHint().width()

    def _frame(self) -> int:
        """Both borders (napari's style sheet gives scroll areas one)."""
        return 2 * self.frameWidth()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        content = self.widget().sizeHint()
        return QSize(content.width() + self._scroll_bar_width() + self._frame(), content.height() + self._frame())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        content = self.widget().minimumSizeHint()
        height = min(content.height(), MIN_VISIBLE_HEIGHT) + self._frame()
        return QSize(content.width() + self._scroll_bar_width() + self._frame(), height)

    def _fit_content(self) -> None:
        """Keep every row at its size hint: a resizable scroll area would otherwise press the content
        down to its minimum size (napari's style sheet lets spin boxes shrink below their hint), and
        never grow taller than the content, so that the room left goes to the docks below.

        The width is kept at least the content's minimum, and the dock's layout told at once: a scroll
        area hides its content's size from the layouts around it, so without this the dock kept the
        width its rows had before napari's style sheet widened them (as they are first shown) for a few
        passes of the event loop, and a first frame or screenshot showed the rows cut at the right."""
        content = self.widget()
        height = content.sizeHint().height()
        content.setMinimumHeight(height)
        self.setMaximumHeight(height + self._frame())
        self.setMinimumWidth(self.minimumSizeHint().width())
        self.updateGeometry()
        parent = self.parentWidget()
        if parent is not None and parent.layout() is not None:
            parent.layout().activate()  # the dock's minimum follows now, not a pass of the event loop later

    #: Events after which the content may have changed its size: rows shown or hidden, or restyled.
    _REFIT_EVENTS = (
        QEvent.Type.LayoutRequest,
        QEvent.Type.Show,
        QEvent.Type.Polish,
        QEvent.Type.StyleChange,
        QEvent.Type.FontChange,
    )

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        """A row shown, hidden or restyled changes the content's hint: fit it again."""
        if event.type() in self._REFIT_EVENTS and self.widget() is not None:
            self._fit_content()
        return super().eventFilter(watched, event)


class ScrollingDock(Container):
    """A dock (what napari docks is ``.native``) holding ``body`` in a :class:`FittingScrollArea`."""

    def __init__(self, body: Container) -> None:
        super().__init__(labels=False)
        self.margins = (0, 0, 0, 0)
        self.body = body
        layout = self.native.layout()
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinAndMaxSize)  # the dock, too, stops at its content
        layout.addWidget(FittingScrollArea(body.native))

    def reset_choices(self, *_: object) -> None:
        """napari calls this on layer changes; the choices live in the body."""
        self.body.reset_choices()
