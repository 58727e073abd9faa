"""A form value that follows the dock's suggestion until the user sets it to something else."""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets.bases import ValueWidget


class Suggested:
    """Keeps ``widget`` at the latest suggestion, unless the user set it to another value.

    Remembering who set the value, rather than comparing it with the previous suggestion, keeps a
    user's choice even when it happens to equal a suggestion: a learning rate typed as 1e-3 stays
    1e-3 when the starting model changes back and forth. Setting it back to the suggestion hands it
    back to the dock.
    """

    def __init__(self, widget: ValueWidget) -> None:
        self._widget = widget
        self._suggestion: Any = widget.value
        self.set_by_user = False
        widget.changed.connect(self._on_changed)

    def suggest(self, value: Any) -> None:
        self._suggestion = value
        if not self.set_by_user:
            self._widget.value = value

    def _on_changed(self) -> None:
        self.set_by_user = not np.isclose(self._widget.value, self._suggestion)
