"""The large preview (details pane) and the full view (Enter / Esc).

Both read the full image off the GUI thread (QImageReader on their own one-thread pool,
decoded straight at the size the widget needs), show the grid thumbnail meanwhile, and paint
only what `BlurPolicy.safe_image` returns — the same choke point as the grid, so a flagged,
unreviewed image is blurred here too, and Space (`peek(True)`) reveals just this one.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QRect, QRunnable, QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QImageReader, QKeyEvent, QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.blur import BlurPolicy

RELOAD_DEBOUNCE_MS = 120
HINT = "Flagged \u2014 hold Space to peek"
GridRow = Any  # db.queries.GridRow


class _Delivery(QObject):
    """Lives on the GUI thread; worker threads emit through it (queued connection)."""

    loaded = Signal(int, QImage, str)  # generation, image (null on failure), error


class _ReadJob(QRunnable):
    def __init__(self, delivery: _Delivery, generation: int, path: str, target: QSize) -> None:
        super().__init__()
        self._delivery = delivery
        self._generation = generation
        self._path = path
        self._target = target

    def run(self) -> None:
        image, error = read_scaled(self._path, self._target)
        self._delivery.loaded.emit(self._generation, image, error)


def read_scaled(path: str, target: QSize) -> tuple[QImage, str]:
    """Decode `path` at no more than `target` (aspect kept); (null image, message) on failure.
    Runs on a worker thread."""
    reader = QImageReader(path)
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and target.isValid() and (size.width() > target.width()
                                                 or size.height() > target.height()):
        reader.setScaledSize(size.scaled(target, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        return QImage(), f"cannot read {path}: {reader.errorString()}"
    return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied), ""


class ImagePreview(QWidget):
    """A large picture of one row, fitted to the widget."""

    image_loaded = Signal(int)  # image_id
    load_failed = Signal(int, str)  # image_id, message

    background = QColor(0, 0, 0, 0)

    def __init__(self, blur: BlurPolicy, thumbnails: Any | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._blur = blur
        self._thumbnails = thumbnails
        self._row: GridRow | None = None
        self._full: QImage | None = None
        self._full_target = QSize()
        self._error = ""
        self._generation = 0
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._delivery = _Delivery(self)
        self._delivery.loaded.connect(self._on_delivery_loaded)
        self._reload_timer = QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.setInterval(RELOAD_DEBOUNCE_MS)
        self._reload_timer.timeout.connect(self._load_if_too_small)
        blur.changed.connect(self.update)
        if thumbnails is not None:
            thumbnails.thumbnail_ready.connect(self._on_thumbnails_thumbnail_ready)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(64, 64)

    # --- API ---------------------------------------------------------------------------------

    @property
    def row(self) -> GridRow | None:
        return self._row

    def set_row(self, row: GridRow | None) -> None:
        """Show this row (None: nothing). The same image again only refreshes its state."""
        same = (row is not None and self._row is not None and row.image_id == self._row.image_id
                and row.sha256 == self._row.sha256 and row.path == self._row.path)
        if self._row is not None and not same and self._blur.peeking_image_id == self._row.image_id:
            self._blur.end_peek()
        self._row = row
        if not same:
            self._full = None
            self._error = ""
            self._generation += 1
            if row is not None and row.status == "ok" and row.path:
                self._start_load()
        self.update()

    def peek(self, on: bool) -> None:
        """Space held (True) / released (False): show this one image clear meanwhile."""
        if self._row is None:
            return
        if on:
            self._blur.peek(self._row.image_id)
        elif self._blur.peeking_image_id == self._row.image_id:
            self._blur.end_peek()

    def has_full_image(self) -> bool:
        return self._full is not None

    def displayed_image(self) -> QImage | None:
        """What paintEvent paints now (already safe): for tests and the drag source."""
        return self._blur.safe_image(self._row, self._source_image()) if self._row else None

    def shutdown(self) -> None:
        self._generation += 1
        self._pool.waitForDone()

    # --- painting ------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        try:
            if self.background.alpha():
                painter.fillRect(self.rect(), self.background)
            image = self.displayed_image()
            if image is None:
                self._paint_message(painter)
                return
            target = self._fitted_rect(image.size())
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(target, image)
            if self._blur.needs_cover(self._row):
                self._paint_hint(painter, target)
        finally:
            painter.end()

    def _fitted_rect(self, size: QSize) -> QRect:
        available = self.rect().size()
        source = self._row_size() or size
        fitted = source.scaled(available, Qt.AspectRatioMode.KeepAspectRatio)
        if fitted.width() > source.width() and fitted.height() > source.height() \
                and self._full is not None:
            fitted = source  # never enlarge a picture smaller than the widget
        x = (available.width() - fitted.width()) // 2
        y = (available.height() - fitted.height()) // 2
        return QRect(x, y, fitted.width(), fitted.height())

    def _row_size(self) -> QSize | None:
        row = self._row
        if row is not None and row.width and row.height:
            return QSize(row.width, row.height)
        return None

    def _paint_message(self, painter: QPainter) -> None:
        row = self._row
        if row is None:
            return
        if self._error:
            text = self._error
        elif row.status == "missing":
            text = "The file is missing"
        elif row.status == "broken":
            text = f"Cannot show this file: {row.error or 'unreadable'}"
        else:
            text = "Loading\u2026"
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.rect().adjusted(12, 12, -12, -12),
                         int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap), text)

    def _paint_hint(self, painter: QPainter, target: QRect) -> None:
        if self._row is not None and self._row.decision == "rejected":
            return  # the cover carries its own label
        metrics = painter.fontMetrics()
        band = QRect(target.x(), target.bottom() - metrics.height() - 12, target.width(),
                     metrics.height() + 12)
        painter.fillRect(band, QColor(0, 0, 0, 150))
        painter.setPen(QColor(235, 235, 235))
        painter.drawText(band, int(Qt.AlignmentFlag.AlignCenter), HINT)

    # --- loading -------------------------------------------------------------------------------

    def _source_image(self) -> QImage | None:
        if self._full is not None:
            return self._full
        if self._thumbnails is not None and self._row is not None and self._row.sha256:
            return self._thumbnails.get(self._row.sha256)
        return None

    def _target_size(self) -> QSize:
        ratio = self.devicePixelRatioF()
        size = self.size()
        return QSize(max(64, round(size.width() * ratio)), max(64, round(size.height() * ratio)))

    def _start_load(self) -> None:
        row = self._row
        if row is None:
            return
        self._generation += 1
        self._full_target = self._target_size()
        self._pool.start(_ReadJob(self._delivery, self._generation, row.path, self._full_target))

    def _load_if_too_small(self) -> None:
        if self._row is None or self._row.status != "ok":
            return
        target = self._target_size()
        if self._full is None or (target.width() > self._full_target.width()
                                  or target.height() > self._full_target.height()):
            if self._full is not None and self._row_size() is not None:
                natural = self._row_size()
                if (self._full.width() >= natural.width()
                        and self._full.height() >= natural.height()):
                    return  # already at full resolution
            self._start_load()

    def _on_delivery_loaded(self, generation: int, image: QImage, error: str) -> None:
        if generation != self._generation or self._row is None:
            return  # a newer row or size was asked for meanwhile
        if image.isNull():
            self._error = error or "cannot read the image"
            self.load_failed.emit(self._row.image_id, self._error)
        else:
            self._full = image
            self._error = ""
            self.image_loaded.emit(self._row.image_id)
        self.update()

    def _on_thumbnails_thumbnail_ready(self, sha256: str) -> None:
        if self._full is None and self._row is not None and self._row.sha256 == sha256:
            self.update()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._row is not None:
            self._reload_timer.start()


class FullView(ImagePreview):
    """The large view that Enter opens; Esc asks to close it (the window owns the stack)."""

    close_requested = Signal()

    background = QColor(16, 16, 18)

    def __init__(self, blur: BlurPolicy, thumbnails: Any | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(blur, thumbnails, parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAutoFillBackground(False)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            self.close_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)
