"""One picture of the compare view, zoomed and panned in step with the others.

A ComparePane is an ImagePreview (desktop.preview) — the same reader thread, the same rule:
the worker decodes the picture, renders BlurPolicy's decision for it there, and the GUI
thread paints only pixels `BlurPolicy.safe_image` lets through (the grid thumbnail until the
full picture is in). So a flagged, unreviewed image is blurred in every pane exactly as in
the grid, a rejected one covered, and Space (peek) clears only the focused one. What a pane
adds is the shared `ZoomState`: the picture is drawn at the state's zoom (relative to fitting
the pane) around its centre, so every pane shows the same part of its picture at the same
framing — a half-size copy lines up with its original.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QPoint, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from desktop.blur import BlurPolicy
from desktop.preview import ImagePreview

# The largest side a pane decodes to: 1:1 on bigger pictures shows this version enlarged.
# Four panes of 2048² (decoded copy + rendered copy) stay under ~140 MB.
MAX_DECODE_SIDE = 2048
MIN_ZOOM, MAX_ZOOM = 0.25, 32.0
WHEEL_STEP = 120
ZOOM_PER_NOTCH = 1.25
FOCUS_COLOUR = QColor(64, 156, 255)
KEEPER_COLOUR = QColor(46, 157, 72)
REJECTED_COLOUR = QColor(212, 59, 59)
BADGE_TEXT = QColor(255, 255, 255)


class ZoomState(QObject):
    """Zoom (1 = fitted to the pane) and the picture point at the pane's centre (0..1 on
    each axis), shared by every pane of one compare view."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.zoom = 1.0
        self.centre = QPointF(0.5, 0.5)

    def fit(self) -> None:
        self.set(1.0, QPointF(0.5, 0.5))

    def set(self, zoom: float, centre: QPointF) -> None:
        zoom = max(MIN_ZOOM, min(MAX_ZOOM, zoom))
        centre = QPointF(min(1.0, max(0.0, centre.x())), min(1.0, max(0.0, centre.y())))
        if zoom != self.zoom or centre != self.centre:
            self.zoom, self.centre = zoom, centre
            self.changed.emit()


class ComparePane(ImagePreview):
    """One picture, drawn at the shared zoom; a click focuses it (`activated`)."""

    activated = Signal()

    background = QColor(16, 16, 18)

    def __init__(self, blur: BlurPolicy, zoom: ZoomState, thumbnails: Any | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(blur, thumbnails, parent)
        self._zoom = zoom
        self._focused = False
        self._keeper = False
        self._drag_from: QPointF | None = None
        self._wheel = 0
        zoom.changed.connect(self.update)
        self.setMouseTracking(False)
        self.setMinimumSize(60, 120)

    # --- state ---------------------------------------------------------------------------

    def set_focused(self, focused: bool) -> None:
        if focused != self._focused:
            self._focused = focused
            self.update()

    def is_focused(self) -> bool:
        return self._focused

    def set_keeper(self, keeper: bool) -> None:
        if keeper != self._keeper:
            self._keeper = keeper
            self.update()

    def is_keeper(self) -> bool:
        return self._keeper

    # --- geometry --------------------------------------------------------------------------

    def natural_size(self) -> QSize:
        if self._natural.isValid():
            return QSize(self._natural)
        size = self._row_size()
        return size if size is not None else QSize(1, 1)

    def fit_scale(self) -> float:
        natural = self.natural_size()
        return min(self.width() / max(1, natural.width()),
                   self.height() / max(1, natural.height()))

    def picture_rect(self) -> QRectF:
        """Where the whole picture lands in the pane (widget coordinates) at the shared zoom."""
        natural = self.natural_size()
        scale = self.fit_scale() * self._zoom.zoom
        width, height = natural.width() * scale, natural.height() * scale
        left = self.width() / 2 - self._zoom.centre.x() * width
        top = self.height() / 2 - self._zoom.centre.y() * height
        return QRectF(left, top, width, height)

    def one_to_one_zoom(self) -> float:
        """The zoom at which one picture pixel is one screen pixel in this pane."""
        return 1.0 / (self.devicePixelRatioF() * max(1e-6, self.fit_scale()))

    def _point_at(self, position: QPointF) -> QPointF:
        rect = self.picture_rect()
        return QPointF((position.x() - rect.x()) / max(1e-6, rect.width()),
                       (position.y() - rect.y()) / max(1e-6, rect.height()))

    def _available(self) -> QSize:
        # Decoded at full size (bounded), not fitted to the pane: zooming in needs pixels.
        return QSize(MAX_DECODE_SIDE, MAX_DECODE_SIDE)

    # --- painting -------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), self.background)
            target = self.picture_rect()
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            full = self._full_image()
            image = full if full is not None else (
                self._blur.safe_image(self._row, self._thumbnail())
                if self._row is not None else None)
            if image is None:
                self._paint_message(painter)
            else:
                painter.drawImage(target, image)
                if self._blur.needs_cover(self._row):
                    self._paint_hint(painter, target.toAlignedRect().intersected(self.rect()))
            self._paint_badges(painter)
        finally:
            painter.end()

    def _paint_badges(self, painter: QPainter) -> None:
        font = QFont(painter.font())
        font.setBold(True)
        font.setPixelSize(12)
        painter.setFont(font)
        x = 8
        if self._keeper:
            x = self._pill(painter, x, "KEEPER", KEEPER_COLOUR)
        decision = getattr(self._row, "decision", "none")
        if decision == "accepted":
            self._pill(painter, x, "\u2713 accepted", KEEPER_COLOUR.darker(120))
        elif decision == "rejected":
            self._pill(painter, x, "\u2715 rejected", REJECTED_COLOUR)
        if self._focused:
            painter.setPen(QPen(FOCUS_COLOUR, 3))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(self.rect().adjusted(1, 1, -2, -2))

    @staticmethod
    def _pill(painter: QPainter, x: int, text: str, colour: QColor) -> int:
        width = painter.fontMetrics().horizontalAdvance(text) + 14
        rect = QRect(x, 8, width, 20)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRoundedRect(QRectF(rect), 10, 10)
        painter.setPen(BADGE_TEXT)
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), text)
        return x + width + 6

    # --- mouse: focus, drag to pan, wheel to zoom (every pane follows) ---------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.activated.emit()
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = event.position()
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag_from is None:
            return
        delta = event.position() - self._drag_from
        self._drag_from = event.position()
        rect = self.picture_rect()
        centre = self._zoom.centre
        self._zoom.set(self._zoom.zoom, QPointF(centre.x() - delta.x() / max(1.0, rect.width()),
                                                centre.y() - delta.y() / max(1.0, rect.height())))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._drag_from = None
        super().mouseReleaseEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        self._wheel += event.angleDelta().y()
        steps = int(self._wheel / WHEEL_STEP)
        if steps == 0:
            event.accept()
            return
        self._wheel -= steps * WHEEL_STEP
        self.zoom_at(event.position(), self._zoom.zoom * ZOOM_PER_NOTCH ** steps)
        event.accept()

    def zoom_at(self, position: QPointF | QPoint, zoom: float) -> None:
        """Zoom to `zoom`, keeping the picture point under `position` where it is."""
        position = QPointF(position)
        anchor = self._point_at(position)
        zoom = max(MIN_ZOOM, min(MAX_ZOOM, zoom))
        natural = self.natural_size()
        scale = self.fit_scale() * zoom
        width, height = natural.width() * scale, natural.height() * scale
        centre = QPointF(anchor.x() - (position.x() - self.width() / 2) / max(1e-6, width),
                         anchor.y() - (position.y() - self.height() / 2) / max(1e-6, height))
        self._zoom.set(zoom, centre)
