"""Item models and the grid for families: one cell per stack (its best image) or per
near-duplicate group (its keeper), with a count badge.

Each cell paints its cover image exactly like the main grid does: the thumbnail from the
shared ThumbnailLoader, made safe by `BlurPolicy.safe_image`, so a flagged, unreviewed cover
stays blurred here too; drags carry file URLs and the safe thumbnail only (GridView). The
list of cells is read on a worker thread (grouping 100k pictures takes seconds) and arrives
with one model reset (`cells_loaded`); the cover rows are read by id, a block at a time, when
first shown.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, cast

from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QRunnable,
    Qt,
    QThreadPool,
    QUrl,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import QStyleOptionViewItem, QWidget

from db import families as family_db
from db import queries
from db.filters import ImageFilter
from desktop.blur import BlurPolicy
from desktop.grid.delegate import DEFAULT_SIZE, ThumbnailDelegate
from desktop.grid.model import tooltip_text
from desktop.grid.view import GridView
from desktop.roles import Role

Index = QModelIndex | QPersistentModelIndex
SessionFactory = Callable[[], AbstractContextManager[Any]]
GridRow = Any  # db.queries.GridRow
BLOCK = 200
COUNT_BADGE = QColor(40, 110, 220)

_ROW_ROLES = {
    Role.ImageId: "image_id", Role.ContentId: "content_id", Role.Path: "path",
    Role.Sha256: "sha256", Role.Decision: "decision", Role.Rating: "rating",
    Role.Flagged: "flagged", Role.FlagNsfw: "flag_nsfw", Role.FlagIncoherent: "flag_incoherent",
    Role.Analysed: "analysed", Role.Status: "status", Role.Error: "error",
}


@dataclass(frozen=True)
class FamilyCell:
    key: str | int  # the stack key, or the duplicate group id
    count: int  # images in the stack / pictures in the group
    cover_image_id: int  # the stack's best image, the group's keeper
    member_image_ids: tuple[int, ...] = ()  # a group's pictures, keeper first


class _Delivery(QObject):
    loaded = Signal(int, object)  # generation, list[FamilyCell] (or an Exception)


class _ReadJob(QRunnable):
    def __init__(self, delivery: _Delivery, generation: int,
                 read: Callable[[], list[FamilyCell]]) -> None:
        super().__init__()
        self._delivery, self._generation, self._read = delivery, generation, read

    def run(self) -> None:
        try:
            cells: object = self._read()
        except Exception as exc:  # noqa: BLE001 - reported by the model, never lost
            cells = exc
        self._delivery.loaded.emit(self._generation, cells)


class FamilyCellsModel(QAbstractListModel):
    """Cells of one kind of family under a filter (subclasses say which)."""

    cells_loaded = Signal()
    load_failed = Signal(str)

    noun = "family"

    def __init__(self, sessions: SessionFactory, thumbnails: Any, blur: BlurPolicy,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sessions = sessions
        self._thumbnails = thumbnails
        self._blur = blur
        self._filter: ImageFilter | None = None
        self._cells: list[FamilyCell] = []
        self._rows: dict[int, GridRow | None] = {}  # cover image id -> row
        self._waiting: dict[str, set[int]] = {}  # sha256 -> cell rows painted without it
        self._generation = 0
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._delivery = _Delivery(self)
        self._delivery.loaded.connect(self._on_delivery_loaded)
        thumbnails.thumbnails_ready.connect(self._on_thumbnails_ready)
        blur.changed.connect(self._on_blur_changed)

    # --- loading ---------------------------------------------------------------------------

    def load(self, f: ImageFilter) -> None:
        """Read the cells for `f` on the worker thread; `cells_loaded` when they are in."""
        self._filter = f
        self._generation += 1
        self._pool.start(_ReadJob(self._delivery, self._generation,
                                  functools.partial(self.read_cells, f)))

    def read_cells(self, f: ImageFilter) -> list[FamilyCell]:  # runs on the worker thread
        raise NotImplementedError

    def reload(self) -> None:
        if self._filter is not None:
            self.load(self._filter)

    def wait(self, msecs: int = -1) -> bool:
        return self._pool.waitForDone(msecs)

    @property
    def filter(self) -> ImageFilter | None:
        return self._filter

    def _on_delivery_loaded(self, generation: int, cells: object) -> None:
        if generation != self._generation:
            return  # a newer load was asked for meanwhile
        if isinstance(cells, Exception):
            self.load_failed.emit(f"cannot list {self.noun} groups: {cells}")
            cells = []
        self.beginResetModel()
        self._cells = list(cast("list[FamilyCell]", cells))
        self._rows.clear()
        self._waiting.clear()
        self.endResetModel()
        self.cells_loaded.emit()

    def refresh_rows(self) -> None:
        """Re-read the cover rows (a decision or a flag changed) and repaint."""
        if not self._rows:
            return
        self._rows.clear()
        if self._cells:
            self.dataChanged.emit(self.index(0), self.index(len(self._cells) - 1))

    # --- lookups -----------------------------------------------------------------------------

    def cell(self, row: int) -> FamilyCell | None:
        return self._cells[row] if 0 <= row < len(self._cells) else None

    def cover_row(self, row: int) -> GridRow | None:
        cell = self.cell(row)
        if cell is None:
            return None
        if cell.cover_image_id not in self._rows:
            self._read_block(row)
        return self._rows.get(cell.cover_image_id)

    def row_of_key(self, key: str | int) -> int | None:
        return next((i for i, cell in enumerate(self._cells) if cell.key == key), None)

    def _read_block(self, row: int) -> None:
        start = row - row % BLOCK
        ids = [c.cover_image_id for c in self._cells[start:start + BLOCK]
               if c.cover_image_id not in self._rows]
        with self._sessions() as session:
            rows = {r.image_id: r for r in queries.rows_by_image_ids(session, ids)}
        for image_id in ids:
            self._rows[image_id] = rows.get(image_id)

    # --- Qt model interface ---------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._cells)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.model() is not self or index.column() != 0:
            return None
        cell = self.cell(index.row())
        if cell is None:
            return None
        if role == Role.FamilyCount:
            return cell.count
        if role == Role.FamilyKey:
            return cell.key
        row = self.cover_row(index.row())
        if row is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.label(cell)
        if role == Qt.ItemDataRole.DecorationRole:
            return self._decoration(index.row(), row)
        if role == Qt.ItemDataRole.ToolTipRole:
            # Escaped like the grid's (tooltip_text): text only, never an image.
            return tooltip_text(row)[:-len("</qt>")] + "<br>" + html.escape(
                self.label(cell)) + "</qt>"
        if role == Role.Row:
            return row
        if role == Role.NeedsBlur:
            return self._blur.needs_cover(row)
        if role == Role.ThumbnailError:
            return self._thumbnails.failure(row.sha256) if row.sha256 else None
        attr = _ROW_ROLES.get(role)  # type: ignore[call-overload]
        return getattr(row, attr, None) if attr is not None else None

    def label(self, cell: FamilyCell) -> str:
        return f"{cell.count} images"

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid() or index.model() is not self:
            return Qt.ItemFlag.NoItemFlags
        return (Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                | Qt.ItemFlag.ItemIsDragEnabled | Qt.ItemFlag.ItemNeverHasChildren)

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        """The cover files' URLs only — never pixels (the drag picture is the safe one)."""
        mime = QMimeData()
        rows = [self.cover_row(i.row()) for i in indexes if i.isValid()]
        mime.setUrls([QUrl.fromLocalFile(r.path) for r in rows if r is not None])
        return mime

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    # --- thumbnails (the GridView reports what is on screen) -----------------------------

    def set_visible_rows(self, first: int, last: int) -> None:
        rows = [(r, self.cover_row(r)) for r in range(max(0, first),
                                                      min(len(self._cells) - 1, last) + 1)]
        shas = [row.sha256 for _, row in rows if row is not None and row.sha256]
        self._thumbnails.set_visible(shas)
        for rank, (number, row) in enumerate(rows):
            if row is not None and row.sha256 and not self._thumbnails.fits(row.sha256):
                self._request(number, row, len(rows) - rank)

    def set_thumbnail_target(self, pixels: int) -> None:
        self._thumbnails.set_target_size(pixels)

    def _decoration(self, number: int, row: GridRow) -> Any:
        if not row.sha256:
            return None
        image = self._thumbnails.get(row.sha256)
        if (image is None or not self._thumbnails.fits(row.sha256)) \
                and self._thumbnails.failure(row.sha256) is None:
            self._request(number, row, 0)
        return None if image is None else self._blur.safe_image(row, image)

    def _request(self, number: int, row: GridRow, priority: int) -> None:
        self._waiting.setdefault(row.sha256, set()).add(number)
        self._thumbnails.request(row.sha256, row.path, priority)

    def _on_thumbnails_ready(self, sha256s: list[str]) -> None:
        for sha in sha256s:
            for number in self._waiting.pop(sha, ()):
                if number < len(self._cells):
                    index = self.index(number)
                    self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def _on_blur_changed(self) -> None:
        if self._cells:
            self.dataChanged.emit(self.index(0), self.index(len(self._cells) - 1),
                                  [Qt.ItemDataRole.DecorationRole, int(Role.NeedsBlur)])


class StackCellsModel(FamilyCellsModel):
    """One cell per stack among the images the filter shows: its best image (highest rating,
    then accepted, then aesthetic score, then newest) and how many images it has."""

    noun = "stack"

    def read_cells(self, f: ImageFilter) -> list[FamilyCell]:
        with self._sessions() as session:
            return [FamilyCell(s.stack_key, s.count, s.best_image_id)
                    for s in family_db.stack_summaries(session, f)]

    def label(self, cell: FamilyCell) -> str:
        return f"stack of {cell.count}" if cell.count > 1 else "1 image"


class DuplicateCellsModel(FamilyCellsModel):
    """One cell per near-duplicate group among the images the filter shows: its keeper."""

    noun = "duplicate"

    def read_cells(self, f: ImageFilter) -> list[FamilyCell]:
        from library import family_ops

        # Stored too: `dup:GROUP` and `is:duplicate` then agree with what this view shows.
        groups = family_ops.find_groups(self._sessions, f, store=True)  # type: ignore[arg-type]
        return [FamilyCell(g.group_id, len(g.members), g.keeper.image_ids[0],
                           tuple(m.image_ids[0] for m in g.members)) for g in groups]

    def label(self, cell: FamilyCell) -> str:
        return f"{cell.count} copies"


class FamilyCellDelegate(ThumbnailDelegate):
    """The grid's cell, plus a count badge in the bottom-right corner of the picture."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        super().paint(painter, option, index)
        count = index.data(Role.FamilyCount)
        if not count or count < 2:
            return
        painter.save()
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            font = QFont(painter.font())
            font.setBold(True)
            font.setPixelSize(max(10, min(16, self.thumbnail_size // 12)))
            painter.setFont(font)
            text = str(count)
            height = QFontMetrics(font).height() + 4
            icon = height - 8  # two offset squares: a stack (drawn: no font lacks it)
            width = QFontMetrics(font).horizontalAdvance(text) + icon + 16
            picture = self.image_rect(option.rect)
            badge = QRect(picture.right() - width - 3, picture.bottom() - height - 3, width,
                          height)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(COUNT_BADGE)
            painter.drawRoundedRect(QRectF(badge), height / 2, height / 2)
            white = QColor(255, 255, 255)
            painter.setPen(white)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            left, top = badge.x() + 7, badge.y() + 3
            painter.drawRect(QRectF(left + 2, top, icon - 2, icon - 2))
            painter.setBrush(COUNT_BADGE)
            painter.drawRect(QRectF(left, top + 2, icon - 2, icon - 2))
            painter.drawText(badge.adjusted(icon + 8, 0, -6, 0),
                             int(Qt.AlignmentFlag.AlignCenter), text)
        finally:
            painter.restore()


class FamilyGridView(GridView):
    """A GridView whose cells carry the count badge."""

    def __init__(self, parent: QWidget | None = None, thumbnail_size: int = DEFAULT_SIZE) -> None:
        super().__init__(parent, thumbnail_size)
        self._delegate = FamilyCellDelegate(self, thumbnail_size)
        self.setItemDelegate(self._delegate)
        self._apply_cell_size()


def stack_filter(base: ImageFilter, stack_key: str) -> ImageFilter:
    """`base` narrowed to one stack (what Enter on a stack cell shows in the grid)."""
    return replace(base, stacks=frozenset({stack_key}))
