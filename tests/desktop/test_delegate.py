"""Badges sit on the picture, not on the empty margin beside a portrait thumbnail."""

from types import SimpleNamespace

import numpy as np
from PySide6.QtCore import QModelIndex, QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QStyleOptionViewItem

from desktop.grid.delegate import ACCEPTED, ThumbnailDelegate, _fitted_area
from desktop.roles import Role


class _Index:
    """The few data roles paint() reads, for one cell."""

    def __init__(self, image: QImage, row: object) -> None:
        self._data = {Qt.ItemDataRole.DecorationRole: image, Role.Row: row,
                      Role.NeedsBlur: False, Qt.ItemDataRole.DisplayRole: "a.png"}

    def data(self, role=Qt.ItemDataRole.DisplayRole):
        return self._data.get(role)


def _paint_cell(image: QImage, row: object, cell: QRect) -> np.ndarray:
    delegate = ThumbnailDelegate()
    canvas = QImage(cell.width(), cell.height(), QImage.Format.Format_ARGB32)
    canvas.fill(QColor("white"))
    option = QStyleOptionViewItem()
    option.rect = cell
    painter = QPainter(canvas)
    # _Index stands in for a QModelIndex (it answers data() for the roles paint() reads).
    delegate.paint(painter, option, _Index(image, row))  # type: ignore[arg-type]
    painter.end()
    rgb = canvas.convertToFormat(QImage.Format.Format_RGB888)
    stride = rgb.bytesPerLine()
    data = np.frombuffer(rgb.constBits(), dtype=np.uint8, count=stride * rgb.height())
    return data.reshape(rgb.height(), stride)[:, :rgb.width() * 3].reshape(
        rgb.height(), rgb.width(), 3)


def _green(pixels: np.ndarray) -> np.ndarray:
    rgb = pixels[..., :3].astype(int)
    return (np.abs(rgb - [ACCEPTED.red(), ACCEPTED.green(), ACCEPTED.blue()]).max(axis=-1) < 30)


def test_the_decision_badge_is_drawn_on_a_portrait_picture_not_beside_it(qtbot):
    delegate = ThumbnailDelegate()
    size = delegate.sizeHint(QStyleOptionViewItem(), QModelIndex())
    cell = QRect(0, 0, size.width(), size.height())
    portrait = QImage(60, 180, QImage.Format.Format_RGB32)
    portrait.fill(QColor(128, 128, 128))
    row = SimpleNamespace(decision="accepted", rating=0, flag_nsfw=False,
                          flag_incoherent=False, status="ok", analysed=True)
    pixels = _paint_cell(portrait, row, cell)
    square = delegate.image_rect(cell)
    picture = _fitted_area(portrait.size(), square)
    # Only the thumbnail's square is looked at: the file name under it is antialiased text
    # whose colour fringes depend on the fonts the platform found, not on the badge.
    in_square = np.zeros(pixels.shape[:2], dtype=bool)
    in_square[square.top():square.bottom() + 1, square.left():square.right() + 1] = True
    ys, xs = np.nonzero(_green(pixels) & in_square)
    assert xs.size, "no accepted badge painted"
    assert xs.min() >= picture.left() and ys.min() >= picture.top()
    assert xs.max() <= picture.right()
