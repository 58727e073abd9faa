"""A small live plot of training loss and validation Dice per epoch, drawn with QPainter.

No plotting library: napari does not bring matplotlib, and two lines need none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPalette, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

LOSS_COLOUR = QColor("#ff9f43")
DICE_COLOUR = QColor("#4fc3f7")
EMPTY_TEXT = "Training loss and validation Dice\nappear here after each epoch."


@dataclass(frozen=True)
class EpochPoint:
    stage: int
    epoch: int
    loss: float
    val_dice: float | None


def loss_range(losses: list[float]) -> tuple[float, float]:
    """The loss axis: the losses' span with a tenth of margin each side, never below 0, never empty."""
    finite = [loss for loss in losses if math.isfinite(loss)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    margin = 0.1 * (high - low) or 0.1 * abs(high) or 0.1
    return max(0.0, low - margin), high + margin


class LossCurve(QWidget):
    """Loss (left axis, from 0) and validation Dice (right axis, 0 to 1) against epochs of both stages."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._points: list[EpochPoint] = []
        self.setMinimumHeight(130)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(
            "Per epoch: mean training loss (orange, left axis) and validation Dice (blue, right axis). "
            "Stage 1's loss adds the pixel and centerline losses, so the loss drops where stage 2 (SRS) starts"
        )

    @property
    def points(self) -> list[EpochPoint]:
        return list(self._points)

    def clear(self) -> None:
        self._points.clear()
        self.update()

    def add_epoch(self, stage: int, epoch: int, loss: float, val_dice: float | None) -> None:
        self._points.append(EpochPoint(stage, epoch, loss, val_dice))
        self.update()

    # -- drawing ------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = self.palette().color(QPalette.ColorRole.WindowText)
        metrics = painter.fontMetrics()
        line = metrics.height()
        left, right = metrics.horizontalAdvance("0.000") + 8, metrics.horizontalAdvance("1.0") + 8
        plot = QRectF(self.rect()).adjusted(left, line + 6, -right, -(line + 4))
        faint = QColor(text)
        faint.setAlpha(90)
        painter.setPen(QPen(faint, 1))
        painter.drawRect(plot)
        if not self._points:
            painter.setPen(text)
            painter.drawText(plot, int(Qt.AlignmentFlag.AlignCenter), EMPTY_TEXT)
            painter.end()
            return
        low_loss, high_loss = loss_range([p.loss for p in self._points])
        count = len(self._points)

        def x_of(index: int) -> float:
            return plot.center().x() if count == 1 else plot.left() + plot.width() * index / (count - 1)

        def y_of(fraction: float) -> float:
            return plot.bottom() - plot.height() * min(max(fraction, 0.0), 1.0)

        self._draw_stage_boundary(painter, plot, x_of, faint, text)
        loss = [
            (x_of(i), y_of((p.loss - low_loss) / (high_loss - low_loss)))
            for i, p in enumerate(self._points)
            if math.isfinite(p.loss)
        ]
        dice = [(x_of(i), y_of(p.val_dice)) for i, p in enumerate(self._points) if p.val_dice is not None]
        self._draw_series(painter, loss, LOSS_COLOUR)
        self._draw_series(painter, dice, DICE_COLOUR)
        self._draw_labels(painter, plot, (low_loss, high_loss), text, has_dice=bool(dice))
        painter.end()

    def _draw_stage_boundary(
        self, painter: QPainter, plot: QRectF, x_of: Callable[[int], float], faint: QColor, text: QColor
    ) -> None:
        first_fine = next((i for i, p in enumerate(self._points) if p.stage == 2), None)
        if first_fine is None:
            return
        x = x_of(first_fine) if first_fine == 0 else (x_of(first_fine - 1) + x_of(first_fine)) / 2
        painter.setPen(QPen(faint, 1, Qt.PenStyle.DashLine))
        painter.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
        painter.setPen(text)
        painter.drawText(QPointF(x + 3, plot.top() + painter.fontMetrics().ascent() + 2), "SRS")

    @staticmethod
    def _draw_series(painter: QPainter, points: list[tuple[float, float]], colour: QColor) -> None:
        if not points:
            return
        painter.setPen(QPen(colour, 2))
        if len(points) > 1:
            path = QPainterPath(QPointF(*points[0]))
            for point in points[1:]:
                path.lineTo(QPointF(*point))
            painter.drawPath(path)
        painter.setBrush(colour)
        for point in points:
            painter.drawEllipse(QPointF(*point), 2.5, 2.5)
        painter.setBrush(Qt.BrushStyle.NoBrush)

    def _draw_labels(
        self, painter: QPainter, plot: QRectF, loss_limits: tuple[float, float], text: QColor, *, has_dice: bool
    ) -> None:
        metrics = painter.fontMetrics()
        ascent = metrics.ascent()
        painter.setPen(LOSS_COLOUR)
        painter.drawText(QPointF(2, plot.top() + ascent), f"{loss_limits[1]:.3g}")
        painter.drawText(QPointF(2, plot.bottom()), f"{loss_limits[0]:.3g}")
        painter.drawText(QPointF(plot.left(), ascent + 2), "loss")
        right = plot.right() + 4
        if has_dice:
            painter.setPen(DICE_COLOUR)
            painter.drawText(QPointF(right, plot.top() + ascent), "1")
            painter.drawText(QPointF(right, plot.bottom()), "0")
            legend = "validation Dice"
            painter.drawText(QPointF(plot.right() - metrics.horizontalAdvance(legend), ascent + 2), legend)
        painter.setPen(text)
        epochs = f"{len(self._points)} epoch{'s' if len(self._points) != 1 else ''}"
        width = metrics.horizontalAdvance(epochs)
        painter.drawText(QPointF(plot.center().x() - width / 2, plot.bottom() + ascent + 3), epochs)


__all__ = ["EpochPoint", "LossCurve", "loss_range"]
