"""Paints one grid cell: thumbnail (already made safe by the model), placeholder, badges.

No file I/O and no decoding here: the model hands over a QImage that BlurPolicy has already
blurred or covered when needed. The delegate only scales it to the cell, once per (image,
size) — the scaled pixmaps are kept in a small byte-bounded LRU, so scrolling back and forth
repaints from memory instead of resampling 512 px thumbnails on every frame.
"""

from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from desktop.roles import Role

PADDING = 6
MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 64, 512, 192
SCALED_CACHE_BYTES = 64 * 1024 * 1024
NAME_MIN_THUMB = 96  # below this the cell has no room for the file name

ACCEPTED = QColor(46, 157, 72)
REJECTED = QColor(212, 59, 59)
NSFW = QColor(200, 40, 90)
INCOHERENT = QColor(230, 140, 20)
COVERED = QColor(70, 70, 90)
STATUS = QColor(120, 120, 120)
STAR = QColor(255, 200, 40)
PLACEHOLDER = QColor(128, 128, 128, 60)
BADGE_TEXT = QColor(255, 255, 255)


class ThumbnailDelegate(QStyledItemDelegate):
    def __init__(self, parent: QObject | None = None, thumbnail_size: int = DEFAULT_SIZE) -> None:
        super().__init__(parent)
        self._thumbnail_size = clamp_size(thumbnail_size)
        self._scaled: OrderedDict[tuple[int, int, int], QPixmap] = OrderedDict()
        self._scaled_bytes = 0

    @property
    def thumbnail_size(self) -> int:
        return self._thumbnail_size

    def set_thumbnail_size(self, size: int) -> None:
        self._thumbnail_size = clamp_size(size)

    def show_names(self) -> bool:
        return self._thumbnail_size >= NAME_MIN_THUMB

    def sizeHint(self, option: QStyleOptionViewItem,
                 index: QModelIndex | QPersistentModelIndex) -> QSize:
        size = self._thumbnail_size + 2 * PADDING
        text = QFontMetrics(option.font).height() + 2 if self.show_names() else 0
        return QSize(size, size + text)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        painter.save()
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            self._paint_background(painter, option)
            image_rect = self.image_rect(option.rect)
            row = index.data(Role.Row)
            image = index.data(Qt.ItemDataRole.DecorationRole)
            badge_rect = image_rect
            if isinstance(image, QImage) and not image.isNull():
                self._paint_image(painter, image, image_rect)
                badge_rect = _badge_area(_fitted_area(image.size(), image_rect), image_rect)
            else:
                self._paint_placeholder(painter, image_rect, row,
                                        index.data(Role.ThumbnailError))
            if row is not None:
                self._paint_badges(painter, badge_rect, row, bool(index.data(Role.NeedsBlur)),
                                   index.data(Role.PendingDecision))
            if self.show_names():
                self._paint_name(painter, option, image_rect, index.data() or "")
        finally:
            painter.restore()

    def image_rect(self, cell: QRect) -> QRect:
        size = self._thumbnail_size
        return QRect(cell.x() + (cell.width() - size) // 2, cell.y() + PADDING, size, size)

    # --- pieces ----------------------------------------------------------------------------

    def _paint_background(self, painter: QPainter, option: QStyleOptionViewItem) -> None:
        palette = option.palette
        rect = option.rect.adjusted(1, 1, -1, -1)
        if option.state & QStyle.StateFlag.State_Selected:
            colour = QColor(palette.color(QPalette.ColorRole.Highlight))
            colour.setAlpha(110)
            painter.fillRect(rect, colour)
        if option.state & QStyle.StateFlag.State_HasFocus:
            pen = QPen(palette.color(QPalette.ColorRole.Highlight), 2)
            painter.setPen(pen)
            painter.drawRoundedRect(QRectF(rect).adjusted(1, 1, -1, -1), 4, 4)

    def _paint_image(self, painter: QPainter, image: QImage, target: QRect) -> None:
        ratio = painter.device().devicePixelRatioF() if painter.device() else 1.0
        area = _fitted_area(image.size(), target)
        device_size = QSize(round(area.width() * ratio), round(area.height() * ratio))
        if image.size() == device_size:
            # The usual case: the loader decoded it at the cell size; a plain blit.
            painter.drawImage(area, image)
            return
        # Zoom changed (or a blurred/small image): scale once, keep the result.
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawPixmap(area, self._scaled_pixmap(image, device_size))

    def _scaled_pixmap(self, image: QImage, size: QSize) -> QPixmap:
        key = (image.cacheKey(), size.width(), size.height())
        pixmap = self._scaled.get(key)
        if pixmap is not None:
            self._scaled.move_to_end(key)
            return pixmap
        scaled = image if image.size() == size else image.scaled(
            size, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)
        pixmap = QPixmap.fromImage(scaled)
        self._scaled[key] = pixmap
        self._scaled_bytes += _pixmap_bytes(pixmap)
        while self._scaled_bytes > SCALED_CACHE_BYTES and len(self._scaled) > 1:
            _, old = self._scaled.popitem(last=False)
            self._scaled_bytes -= _pixmap_bytes(old)
        return pixmap

    def _paint_placeholder(self, painter: QPainter, rect: QRect, row: object,
                           thumbnail_error: str | None) -> None:
        # A plain rectangle: antialiased rounded ones cost more than the rest of the cell.
        painter.fillRect(rect.adjusted(4, 4, -4, -4), PLACEHOLDER)
        status = getattr(row, "status", "ok")
        if status == "missing":
            text = "missing"
        elif status == "broken" or thumbnail_error:
            text = "cannot show"
        else:
            text = "\u2026"  # loading
        painter.setPen(QColor(150, 150, 150))
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), text)

    def _paint_badges(self, painter: QPainter, rect: QRect, row: object,
                      covered: bool, pending: str | None = None) -> None:
        size = max(14, min(24, self._thumbnail_size // 8))
        font = QFont(painter.font())
        font.setPixelSize(max(9, size - 6))
        font.setBold(True)
        painter.setFont(font)
        x, y = rect.x() + 3, rect.y() + 3
        decision = getattr(row, "decision", "none")
        if pending is not None:
            # Not written yet (the database is busy): the decision asked for, hollow, with an
            # hourglass, so it never passes for a saved one.
            colour = {"accepted": ACCEPTED, "rejected": REJECTED}.get(pending, STATUS)
            mark = {"accepted": "\u2713", "rejected": "\u2715"}.get(pending, "\u2205")
            self._hollow_badge(painter, QRect(x, y, size * 2, size), colour,
                               mark + "\u231b")
        elif decision == "accepted":
            self._badge(painter, QRect(x, y, size, size), ACCEPTED, "\u2713")
        elif decision == "rejected":
            self._badge(painter, QRect(x, y, size, size), REJECTED, "\u2715")
        right = rect.right() - 3
        pills = []
        if getattr(row, "flag_nsfw", False):
            pills.append(("NSFW", NSFW))
        if getattr(row, "flag_incoherent", False):
            pills.append(("?!", INCOHERENT))
        if covered:
            pills.append(("\u25cc", COVERED))  # dotted circle: shown blurred/covered
        metrics = QFontMetrics(font)
        for text, colour in pills:
            width = max(size, metrics.horizontalAdvance(text) + 8)
            self._badge(painter, QRect(right - width + 1, y, width, size), colour, text)
            right -= width + 3
        rating = int(getattr(row, "rating", 0) or 0)
        if rating:
            star_font = QFont(font)
            star_font.setPixelSize(max(9, size - 4))
            painter.setFont(star_font)
            stars = "\u2605" * rating
            area = QRect(rect.x() + 3, rect.bottom() - size - 2, rect.width() - 6, size)
            painter.setPen(QColor(0, 0, 0, 160))
            painter.drawText(area.translated(1, 1), int(Qt.AlignmentFlag.AlignLeft
                                                         | Qt.AlignmentFlag.AlignVCenter), stars)
            painter.setPen(STAR)
            painter.drawText(area, int(Qt.AlignmentFlag.AlignLeft
                                       | Qt.AlignmentFlag.AlignVCenter), stars)
            painter.setFont(font)
        status = getattr(row, "status", "ok")
        if status != "ok":
            text = status
            width = metrics.horizontalAdvance(text) + 8
            self._badge(painter, QRect(rect.right() - width - 2, rect.bottom() - size - 2,
                                       width, size), STATUS, text)

    @staticmethod
    def _badge(painter: QPainter, rect: QRect, colour: QColor, text: str) -> None:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        radius = rect.height() / 2
        painter.drawRoundedRect(QRectF(rect), radius, radius)
        painter.setPen(BADGE_TEXT)
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), text)

    @staticmethod
    def _hollow_badge(painter: QPainter, rect: QRect, colour: QColor, text: str) -> None:
        painter.setPen(QPen(colour, 2))
        painter.setBrush(QColor(0, 0, 0, 150))
        radius = rect.height() / 2
        painter.drawRoundedRect(QRectF(rect).adjusted(1, 1, -1, -1), radius, radius)
        painter.setPen(BADGE_TEXT)
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), text)

    def _paint_name(self, painter: QPainter, option: QStyleOptionViewItem, image_rect: QRect,
                    name: str) -> None:
        painter.setFont(option.font)
        metrics = QFontMetrics(option.font)
        area = QRect(option.rect.x() + 2, image_rect.bottom() + 2, option.rect.width() - 4,
                     metrics.height())
        role = (QPalette.ColorRole.HighlightedText
                if option.state & QStyle.StateFlag.State_Selected else QPalette.ColorRole.Text)
        painter.setPen(option.palette.color(role))
        painter.drawText(area, int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter),
                         metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, area.width()))


def clamp_size(size: int) -> int:
    return max(MIN_SIZE, min(MAX_SIZE, int(size)))


def _pixmap_bytes(pixmap: QPixmap) -> int:
    return pixmap.width() * pixmap.height() * max(1, pixmap.depth() // 8)


def _fitted_area(image_size: QSize, target: QRect) -> QRect:
    """Where a picture of `image_size` lands inside `target`: scaled to fit, centred."""
    fitted = image_size.scaled(target.size(), Qt.AspectRatioMode.KeepAspectRatio)
    fitted = fitted.expandedTo(QSize(1, 1))
    return QRect(target.x() + (target.width() - fitted.width()) // 2,
                 target.y() + (target.height() - fitted.height()) // 2,
                 fitted.width(), fitted.height())


# Badges sit on the picture's own corners; a picture thinner than this (a 100:1 panorama)
# keeps them on the cell's corners, where they stay legible.
MIN_BADGE_AREA = 48


def _badge_area(picture: QRect, cell_image: QRect) -> QRect:
    if picture.width() < MIN_BADGE_AREA or picture.height() < MIN_BADGE_AREA:
        return cell_image
    return picture
