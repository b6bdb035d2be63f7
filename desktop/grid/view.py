"""The thumbnail grid view: a QListView whose uniform cells flow left to right and wrap (a
grid), zoom, visible-range reporting for the thumbnail loader, and drags whose picture is the
safe (blurred) image.

Why QListView and not a custom view: with uniform item sizes and static movement, Qt lays
out 100,000 cells arithmetically and paints only the visible ones; everything else (keyboard
navigation, selection, rubber band, accessibility, fetchMore at the bottom) comes for free.
"""

from __future__ import annotations

import math

from PySide6.QtCore import (
    Property,
    QAbstractProxyModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QDrag,
    QFont,
    QImage,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

from desktop.grid.delegate import (
    DEFAULT_SIZE,
    MAX_SIZE,
    MIN_SIZE,
    ThumbnailDelegate,
    clamp_size,
)

ZOOM_FACTOR = 1.2
VISIBLE_DEBOUNCE_MS = 40
DRAG_IMAGE_SIDE = 128
WHEEL_STEP = 120  # one notch; touchpads send smaller deltas that add up to it


class RowMapProxy(QSortFilterProxyModel):
    """A pass-through proxy (no sorting, no filtering) between the GridModel and the view.

    Why: QListView re-lays out every row after each insert, and for each row it calls
    `model->index(row)`, which on a Python model calls the Python `rowCount` — about 2 us a
    row, so 230 ms per page fetched at 100,000 rows (measured: benchmarks/bench_scroll.py).
    QSortFilterProxyModel answers index()/rowCount() from its own C++ row mapping, which
    brings that relayout to a few ms. Rows are the same numbers on both sides; fetchMore,
    data, flags, mimeData and dataChanged pass straight through.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setDynamicSortFilter(False)


class SourceAwareSelectionModel(QItemSelectionModel):
    """Selection model over the RowMapProxy that also accepts indexes of the GridModel (as
    the review controller, which knows only the GridModel, passes them) and maps them."""

    def _map(self, index: QModelIndex) -> QModelIndex:
        proxy = self.model()
        if (index.isValid() and isinstance(proxy, QAbstractProxyModel)
                and index.model() is proxy.sourceModel()):
            return proxy.mapFromSource(index)
        return index

    def setCurrentIndex(self, index: QModelIndex,
                        command: QItemSelectionModel.SelectionFlag) -> None:
        super().setCurrentIndex(self._map(index), command)

    def select(self, selection, command) -> None:
        if isinstance(selection, (QModelIndex, QPersistentModelIndex)):
            # QModelIndex(QPersistentModelIndex) exists; PySide6's stubs list only copies.
            super().select(self._map(QModelIndex(selection)), command)  # type: ignore[arg-type]
            return
        proxy = self.model()
        ranges = list(selection) if selection is not None else []
        if (ranges and isinstance(proxy, QAbstractProxyModel)
                and ranges[0].model() is proxy.sourceModel()):
            selection = proxy.mapSelectionFromSource(selection)
        super().select(selection, command)


class GridView(QListView):
    visible_range_changed = Signal(int, int)
    thumbnail_size_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None, thumbnail_size: int = DEFAULT_SIZE,
                 icon_mode: bool = True) -> None:
        super().__init__(parent)
        self._source = None
        self._proxy: RowMapProxy | None = None
        self._delegate = ThumbnailDelegate(self, thumbnail_size)
        self.setItemDelegate(self._delegate)
        self.setUniformItemSizes(True)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        # SinglePass, not Batched: with uniform sizes a full layout of 100,000 cells is
        # arithmetic (about a millisecond), while Batched re-lays out in slices after every
        # fetchMore and clamps the scroll position to the part laid out so far, so a fast
        # scroll keeps being pushed back.
        self.setLayoutMode(QListView.LayoutMode.SinglePass)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        # Always shown: a scroll bar that came and went would change the width, hence the
        # spread columns, the rows, and so whether the scroll bar is needed — a loop.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setMouseTracking(True)
        self.set_icon_mode(icon_mode)
        self._wheel_accumulated = 0
        self._visible_timer = QTimer(self)
        self._visible_timer.setSingleShot(True)
        self._visible_timer.setInterval(VISIBLE_DEBOUNCE_MS)
        self._visible_timer.timeout.connect(self._report_visible_range)
        self._last_reported: tuple[int, int] | None = None
        self.verticalScrollBar().valueChanged.connect(self._schedule_visible_report)
        self._apply_cell_size()

    # --- configuration ----------------------------------------------------------------------

    def set_icon_mode(self, icon_mode: bool) -> None:
        """Icon mode: cells flow left to right and wrap (a grid). List mode: one column.

        Both are QListView's ListMode: a wrapping left-to-right flow on the grid size gives
        the same grid as IconMode, and ListMode re-lays out an appended page 2.5x cheaper
        (QIconModeViewBase rebuilds an item and a BSP-tree leaf per row; measured 18 ms vs
        7.4 ms of CPU per page at 100,000 rows, once per fetchMore while scrolling)."""
        self._icon_mode = bool(icon_mode)
        self.setViewMode(QListView.ViewMode.ListMode)
        self.setMovement(QListView.Movement.Static)
        self.setWrapping(self._icon_mode)
        self.setFlow(QListView.Flow.LeftToRight if self._icon_mode
                     else QListView.Flow.TopToBottom)
        self.setResizeMode(QListView.ResizeMode.Adjust)

    def is_icon_mode(self) -> bool:
        return self._icon_mode

    @property
    def delegate(self) -> ThumbnailDelegate:
        return self._delegate

    def get_thumbnail_size(self) -> int:
        return self._delegate.thumbnail_size

    def set_thumbnail_size(self, size: int) -> None:
        size = clamp_size(size)
        if size == self._delegate.thumbnail_size:
            return
        self._delegate.set_thumbnail_size(size)
        self._apply_cell_size()
        self._tell_model_target()
        current = self.currentIndex()
        if current.isValid():
            self.scrollTo(current)
        self.thumbnail_size_changed.emit(size)
        self._schedule_visible_report()

    thumbnail_size = Property(int, get_thumbnail_size, set_thumbnail_size,
                              notify=thumbnail_size_changed)

    def zoom_in(self) -> None:
        self.set_thumbnail_size(min(MAX_SIZE, math.ceil(self.get_thumbnail_size() * ZOOM_FACTOR)))

    def zoom_out(self) -> None:
        self.set_thumbnail_size(max(MIN_SIZE, math.floor(self.get_thumbnail_size() / ZOOM_FACTOR)))

    def setModel(self, model) -> None:
        """Show `model` (normally the GridModel) through a row-mapping proxy; see
        `RowMapProxy` for why. `model()` returns the proxy, `source_model()` the model given.
        Rows are the same numbers in both."""
        old = self.model()
        if old is not None:
            for signal in (old.modelReset, old.rowsInserted, old.rowsRemoved, old.layoutChanged):
                try:
                    signal.disconnect(self._schedule_visible_report)
                except (RuntimeError, TypeError):
                    pass
        self._source = model
        if model is not None and not isinstance(model, QAbstractProxyModel):
            self._proxy = RowMapProxy(self)
            self._proxy.setSourceModel(model)
            model = self._proxy
        else:
            self._proxy = None
        super().setModel(model)
        if self._proxy is not None:
            previous = self.selectionModel()
            self.setSelectionModel(SourceAwareSelectionModel(self._proxy, self))
            if previous is not None:
                previous.deleteLater()
        if model is not None:
            for signal in (model.modelReset, model.rowsInserted, model.rowsRemoved,
                           model.layoutChanged):
                signal.connect(self._schedule_visible_report)
        self._last_reported = None
        self._tell_model_target()
        self._schedule_visible_report()

    def source_model(self):
        """The model passed to setModel (the GridModel), not the proxy."""
        return self._source

    def to_view_index(self, index: QModelIndex) -> QModelIndex:
        """An index of the source model, as an index of `model()` (same row)."""
        if self._proxy is not None and index.isValid() and index.model() is self._source:
            return self._proxy.mapFromSource(index)
        return index

    def current_row(self) -> int:
        """The current row (-1 when none)."""
        index = self.currentIndex()
        return index.row() if index.isValid() else -1

    def set_current_row(self, row: int) -> None:
        model = self.model()
        if model is not None and 0 <= row < model.rowCount():
            self.setCurrentIndex(model.index(row, 0))

    def selected_rows(self) -> list[int]:
        return sorted(index.row() for index in self.selectedIndexes())

    def setCurrentIndex(self, index: QModelIndex) -> None:
        super().setCurrentIndex(self.to_view_index(index))

    def scrollTo(self, index: QModelIndex,
                 hint: QAbstractItemView.ScrollHint = QAbstractItemView.ScrollHint.EnsureVisible
                 ) -> None:
        super().scrollTo(self.to_view_index(index), hint)

    # --- events -------------------------------------------------------------------------------

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self._wheel_accumulated += event.angleDelta().y()
            while self._wheel_accumulated >= WHEEL_STEP:
                self._wheel_accumulated -= WHEEL_STEP
                self.zoom_in()
            while self._wheel_accumulated <= -WHEEL_STEP:
                self._wheel_accumulated += WHEEL_STEP
                self.zoom_out()
            event.accept()
            return
        super().wheelEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if event.matches(QKeySequence.StandardKey.ZoomIn) or (
                ctrl and event.key() in (Qt.Key.Key_Plus, Qt.Key.Key_Equal)):
            self.zoom_in()
            event.accept()
            return
        if event.matches(QKeySequence.StandardKey.ZoomOut) or (
                ctrl and event.key() in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore)):
            self.zoom_out()
            event.accept()
            return
        super().keyPressEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._icon_mode and event.size().width() != event.oldSize().width():
            # Next turn: by then the viewport has its final width for this size.
            QTimer.singleShot(0, self._respread)
        self._schedule_visible_report()

    # --- visible range ------------------------------------------------------------------------

    def visible_range(self) -> tuple[int, int]:
        """(first, last) rows on screen, (0, -1) when none. `last` may include the rest of a
        partly visible line: a few extra thumbnails early is harmless."""
        model = self.model()
        count = model.rowCount() if model is not None else 0
        if count == 0:
            return 0, -1
        cell = self.gridSize() if self.gridSize().isValid() else self.sizeHintForIndex(
            model.index(0, 0))
        cell_w, cell_h = max(1, cell.width()), max(1, cell.height())
        first = self._first_visible_row(cell_w, cell_h)
        if first is None:
            return 0, -1
        columns = max(1, self.viewport().width() // cell_w) if self.is_icon_mode() else 1
        lines = math.ceil(self.viewport().height() / cell_h) + 1
        first -= first % columns
        return first, min(count - 1, first + columns * lines - 1)

    def _first_visible_row(self, cell_w: int, cell_h: int) -> int | None:
        for y in range(1, min(self.viewport().height(), 2 * cell_h), max(1, cell_h // 8)):
            for x in (cell_w // 2, 1, cell_w - 2):
                index = self.indexAt(QPoint(x, y))
                if index.isValid():
                    return index.row()
        return None

    def _schedule_visible_report(self, *_args: object) -> None:
        # Throttle, not debounce: during a long fling the range is still reported every
        # VISIBLE_DEBOUNCE_MS, so queued thumbnails for rows flown past are dropped as we go.
        if not self._visible_timer.isActive():
            self._visible_timer.start()

    def _report_visible_range(self) -> None:
        first, last = self.visible_range()
        if (first, last) == self._last_reported:
            return
        self._last_reported = (first, last)
        # The grid model prioritises thumbnails for these rows (duck-typed: any model works).
        set_visible = getattr(self._source, "set_visible_rows", None)
        if callable(set_visible):
            set_visible(first, last)
        self.visible_range_changed.emit(first, last)

    # --- drag -----------------------------------------------------------------------------------

    def drag_pixmap(self, indexes: list[QModelIndex]) -> QPixmap:
        """The drag picture: the SAFE thumbnail (the model's DecorationRole, which went
        through BlurPolicy) of the current or first dragged item, never the file itself; a
        plain tile while the thumbnail is not loaded. More than one item: a count badge."""
        lead = self.currentIndex() if self.currentIndex() in indexes else (
            indexes[0] if indexes else QModelIndex())
        image = lead.data(Qt.ItemDataRole.DecorationRole) if lead.isValid() else None
        if isinstance(image, QImage) and not image.isNull():
            scaled = image.scaled(QSize(DRAG_IMAGE_SIDE, DRAG_IMAGE_SIDE),
                                  Qt.AspectRatioMode.KeepAspectRatio,
                                  Qt.TransformationMode.SmoothTransformation)
            pixmap = QPixmap.fromImage(scaled)
        else:
            pixmap = QPixmap(DRAG_IMAGE_SIDE, DRAG_IMAGE_SIDE)
            pixmap.fill(QColor(90, 90, 90))
        if len(indexes) > 1:
            painter = QPainter(pixmap)
            try:
                painter.setRenderHint(QPainter.RenderHint.Antialiasing)
                painter.setBrush(QColor(40, 110, 220))
                painter.setPen(Qt.PenStyle.NoPen)
                painter.drawEllipse(pixmap.width() - 34, 2, 32, 32)
                font = QFont(painter.font())
                font.setBold(True)
                font.setPixelSize(13)
                painter.setFont(font)
                painter.setPen(QColor(255, 255, 255))
                painter.drawText(pixmap.width() - 34, 2, 32, 32,
                                 int(Qt.AlignmentFlag.AlignCenter), str(len(indexes)))
            finally:
                painter.end()
        return pixmap

    def startDrag(self, supported_actions: Qt.DropAction) -> None:
        indexes = [i for i in self.selectedIndexes()
                   if i.flags() & Qt.ItemFlag.ItemIsDragEnabled]
        model = self.model()
        if not indexes or model is None:
            return
        mime = model.mimeData(indexes)
        if mime is None or not mime.hasUrls():  # nothing the blur rule lets out
            return
        drag = QDrag(self)
        drag.setMimeData(mime)
        pixmap = self.drag_pixmap(indexes)
        drag.setPixmap(pixmap)
        drag.setHotSpot(QPoint(pixmap.width() // 2, pixmap.height() // 2))
        drag.exec(supported_actions, Qt.DropAction.CopyAction)

    # --- internals ------------------------------------------------------------------------------

    def _tell_model_target(self) -> None:
        """The grid model decodes thumbnails at the cell size (duck-typed: any model works)."""
        set_target = getattr(self._source, "set_thumbnail_target", None)
        if callable(set_target):
            set_target(math.ceil(self._delegate.thumbnail_size * self.devicePixelRatioF()))

    def _apply_cell_size(self) -> None:
        self.setGridSize(self._spread_cell())
        self.doItemsLayout()

    def _natural_cell(self) -> QSize:
        option = self.viewOptions() if hasattr(self, "viewOptions") else None
        if option is None:
            from PySide6.QtWidgets import QStyleOptionViewItem
            option = QStyleOptionViewItem()
            self.initViewItemOption(option)
        return self._delegate.sizeHint(option, QModelIndex())

    def _respread(self) -> None:
        if self.gridSize() != self._spread_cell():
            self._apply_cell_size()

    def _spread_cell(self) -> QSize:
        """The delegate's cell, widened so whole columns fill the viewport: no unused strip
        at the right edge (the delegate centres each thumbnail in its cell)."""
        cell = self._natural_cell()
        # QListView wraps a line whose cells would reach the viewport's last pixel column.
        width = self.viewport().width() - 1
        if not self._icon_mode or width < cell.width():
            return cell
        columns = width // cell.width()
        return QSize(width // columns, cell.height())
