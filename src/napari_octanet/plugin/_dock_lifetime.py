"""Telling a dock that it was shown, closed, or docked again: Qt events magicgui does not expose.

napari's close button (X) calls ``remove_dock_widget``, which only takes the dock's widget out of its
dock (its parent becomes None, which also hides it); the widget itself lives on while anything holds
it, a registry listener for one. So a dock stops its work and its listeners when it is taken out,
and may be docked again later (by a script, ``viewer.window.add_dock_widget(widget)``).
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QWidget


def _do_nothing() -> None:
    """Default for the callbacks a dock does not need."""


class DockEvents(QObject):
    """Calls back when the widget is shown, taken out of its dock, or put into one; install it as an event filter."""

    def __init__(
        self,
        widget: QWidget,
        on_show: Callable[[], None] = _do_nothing,
        on_undocked: Callable[[], None] = _do_nothing,
        on_docked: Callable[[], None] = _do_nothing,
    ) -> None:
        super().__init__(widget)
        self._on_show = on_show
        self._on_undocked = on_undocked
        self._on_docked = on_docked

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Show:
            self._on_show()
        elif event.type() == QEvent.Type.ParentChange and isinstance(watched, QWidget):
            if watched.parent() is None:
                self._on_undocked()
            else:
                self._on_docked()
        return False
