"""Combo boxes of names (layers, models) that keep their dock narrow, for every dock.

Qt sizes a combo box to its longest choice, so one long layer name widened a dock to 600 px or more
at 1280 x 800, squeezing the canvas. A narrowed combo box asks for a few characters only and paints
its current choice elided in the middle ('sub-0042_s…OD vessels'): names of one scan differ at their
end ('scan vessels', 'scan corrections'), which Qt's own painting would cut off. The open list shows
every name whole.
"""

from __future__ import annotations

from magicgui.widgets import ComboBox
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QComboBox, QStyle, QStyleOptionComboBox, QStylePainter

#: Characters a narrowed combo box shows at least.
NARROW_COMBO_CHARACTERS = 10


def narrow(combo: ComboBox) -> None:
    """Size ``combo`` for a few characters, whatever its choices, and paint its choice elided in the middle."""
    combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.native.setMinimumContentsLength(NARROW_COMBO_CHARACTERS)
    combo.native.installEventFilter(MiddleElider(combo.native))


class MiddleElider(QObject):
    """Paints a combo box's current text as :func:`middle_elided_text` gives it; install it as an event filter."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(watched, QComboBox) or event.type() != QEvent.Type.Paint:
            return False
        painter = QStylePainter(watched)
        option = _style_option(watched)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        option.currentText = middle_elided_text(watched)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)
        painter.end()
        return True


def middle_elided_text(combo: QComboBox) -> str:
    """The combo box's current text elided in the middle to fit its field."""
    field = combo.style().subControlRect(
        QStyle.ComplexControl.CC_ComboBox, _style_option(combo), QStyle.SubControl.SC_ComboBoxEditField, combo
    )
    return combo.fontMetrics().elidedText(combo.currentText(), Qt.TextElideMode.ElideMiddle, field.width())


def _style_option(combo: QComboBox) -> QStyleOptionComboBox:
    option = QStyleOptionComboBox()
    combo.initStyleOption(option)
    return option
