"""The large preview (details pane) and the full view (Enter / Esc).

Both read the full image off the GUI thread (QImageReader on their own one-thread pool,
decoded straight at the size the widget needs), show the grid thumbnail meanwhile, and paint
only what `BlurPolicy.safe_image` lets through — the same choke point as the grid, so a
flagged, unreviewed image is blurred here too, and Space (`peek(True)`) reveals just this one.

All pixel work happens on the reader thread: the GUI thread takes the rule's decision
(`BlurPolicy.decision(row)`, a plain value), the reader decodes, scales to the exact device
size the picture will occupy and renders that decision (blur or cover) there, and the GUI
thread only blits the result. So the GUI thread never holds the clear picture of a covered
row, and never blurs or resamples a screen-sized image. When the decision changes after
the pixels were made (a review, a peek, a setting), `safe_image(..., made_for=...)` refuses
them and they are rendered again — from the reader's copy of the decoded picture, so a peek
or a review does not read the file again.
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import (
    QObject,
    QRect,
    QRectF,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QImage,
    QImageIOHandler,
    QImageReader,
    QKeyEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.blur import BlurPolicy, CoverDecision

RELOAD_DEBOUNCE_MS = 120
HINT = "Flagged \u2014 hold Space to peek"
GridRow = Any  # db.queries.GridRow


class _Delivery(QObject):
    """Lives on the GUI thread; worker threads emit through it (queued connection)."""

    # generation, safe pixels (null on failure), the CoverDecision they were rendered for,
    # the picture's natural size (oriented), error
    loaded = Signal(int, QImage, object, QSize, str)


class DecodedSource:
    """The last picture a widget's reader decoded, kept on the reader's side (the GUI thread
    never sees it): re-rendering for a new decision or a smaller size rescales this copy
    instead of reading the file again. Used from the widget's one reader thread; the lock
    only guards against a second caller."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, str | None] | None = None
        self._image = QImage()
        self._natural = QSize()

    def fitted(self, path: str, sha256: str | None, available: QSize) -> tuple[QImage, QSize]:
        """(the picture fitted within `available` device pixels — never enlarged —, its
        natural size). Raises OSError with a readable message when it cannot be read."""
        with self._lock:
            key = (path, sha256)
            if key == self._key and not self._image.isNull():
                fit = fit_within(self._natural, available)
                if fit.width() <= self._image.width() and fit.height() <= self._image.height():
                    return _resized(self._image, fit), self._natural
            image, natural = read_fitted(path, available)
            self._key, self._image, self._natural = key, image, natural
            return image, natural

    def clear(self) -> None:
        with self._lock:
            self._key, self._image, self._natural = None, QImage(), QSize()


class _RenderJob(QRunnable):
    def __init__(self, delivery: _Delivery, source: DecodedSource, generation: int,
                 row: GridRow, available: QSize, decision: CoverDecision) -> None:
        super().__init__()
        self._delivery = delivery
        self._source = source
        self._generation = generation
        self._path = row.path
        self._sha256 = row.sha256
        self._available = available
        self._decision = decision

    def run(self) -> None:
        try:
            image, natural = self._source.fitted(self._path, self._sha256, self._available)
            safe = self._decision.render(image, image.size())
            self._delivery.loaded.emit(self._generation, safe, self._decision, natural, "")
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message for the UI
            message = str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
            self._delivery.loaded.emit(self._generation, QImage(), self._decision, QSize(),
                                       message)


def fit_within(natural: QSize, available: QSize) -> QSize:
    """`natural` scaled down (aspect kept) to fit `available`; never enlarged."""
    if not natural.isValid() or not available.isValid():
        return natural
    if natural.width() <= available.width() and natural.height() <= available.height():
        return QSize(natural)
    return natural.scaled(available, Qt.AspectRatioMode.KeepAspectRatio).expandedTo(QSize(1, 1))


def _resized(image: QImage, size: QSize) -> QImage:
    if image.size() == size:
        return image
    return image.scaled(size, Qt.AspectRatioMode.IgnoreAspectRatio,
                        Qt.TransformationMode.SmoothTransformation)


def read_fitted(path: str, available: QSize) -> tuple[QImage, QSize]:
    """Decode `path` fitted within `available` (aspect kept, EXIF orientation applied, never
    enlarged), at exactly that size. Returns (image, natural oriented size). Runs on a worker
    thread; raises OSError with a readable message on failure."""
    reader = QImageReader(path)
    reader.setAutoTransform(True)
    stored = reader.size()
    rotated = bool(reader.transformation() & QImageIOHandler.Transformation.TransformationRotate90)
    natural = stored.transposed() if rotated and stored.isValid() else stored
    fit = fit_within(natural, available) if natural.isValid() else QSize()
    if fit.isValid() and fit != natural:
        # JPEG decodes straight at the reduced size (libjpeg's scaled IDCT); the scaled size
        # is in the stored orientation, before the EXIF rotation.
        reader.setQuality(100)
        reader.setScaledSize(fit.transposed() if rotated else fit)
    image = reader.read()
    if image.isNull():
        raise OSError(f"cannot read {path}: {reader.errorString()}")
    if not natural.isValid():  # a format that does not tell its size up front
        natural = image.size()
        fit = fit_within(natural, available)
    image = _resized(image, fit if fit.isValid() else image.size())
    return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied), natural


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
        # The full picture as rendered on the reader thread, with the decision and device
        # size it was rendered for. Never painted without BlurPolicy.safe_image's consent.
        self._rendered: QImage | None = None
        self._rendered_for: CoverDecision | None = None
        self._natural = QSize()  # the picture's natural size, once read
        self._pending: tuple[CoverDecision, QSize] | None = None  # the render asked for
        self._error = ""
        self._generation = 0
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._source = DecodedSource()
        self._delivery = _Delivery(self)
        self._delivery.loaded.connect(self._on_delivery_loaded)
        self._reload_timer = QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.setInterval(RELOAD_DEBOUNCE_MS)
        self._reload_timer.timeout.connect(self._render_if_stale)
        blur.changed.connect(self._on_blur_changed)
        if thumbnails is not None:
            thumbnails.thumbnail_ready.connect(self._on_thumbnails_thumbnail_ready)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(64, 64)

    # --- API ---------------------------------------------------------------------------------

    @property
    def row(self) -> GridRow | None:
        return self._row

    def set_row(self, row: GridRow | None) -> None:
        """Show this row (None: nothing). The same image again only refreshes its state (a
        new review decision re-renders the picture already read, without reading it)."""
        same = (row is not None and self._row is not None and row.image_id == self._row.image_id
                and row.sha256 == self._row.sha256 and row.path == self._row.path)
        if self._row is not None and not same and self._blur.peeking_image_id == self._row.image_id:
            self._blur.end_peek()
        self._row = row
        if not same:
            self._rendered = self._rendered_for = None
            self._natural = QSize()
            self._pending = None
            self._error = ""
            self._generation += 1
        self._render_if_stale()
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
        """The full picture is in, rendered for the rule's current decision."""
        return (self._rendered is not None and self._rendered_for is not None
                and self._rendered_for == self._blur.decision(self._row))

    def displayed_image(self) -> QImage | None:
        """What paintEvent paints now (already safe): for tests and the drag source."""
        if self._row is None:
            return None
        full = self._full_image()
        return full if full is not None else self._blur.safe_image(self._row, self._thumbnail())

    def shutdown(self) -> None:
        self._generation += 1
        self._reload_timer.stop()
        self._pool.waitForDone()
        self._source.clear()

    # --- painting ------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            if self.background.alpha():
                painter.fillRect(self.rect(), self.background)
            full = self._full_image()
            if full is not None:
                # Rendered at the device size it occupies: a plain blit.
                target = self._centred(QSize(round(full.width() / self._ratio()),
                                             round(full.height() / self._ratio())))
                painter.drawImage(QRectF(target), full)
            else:
                # Meanwhile the grid's thumbnail, made safe (and scaled) like in the grid.
                image = self._blur.safe_image(self._row, self._thumbnail()) \
                    if self._row is not None else None
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

    def _full_image(self) -> QImage | None:
        if self._rendered is None or self._row is None:
            return None
        return self._blur.safe_image(self._row, self._rendered, made_for=self._rendered_for)

    def _ratio(self) -> float:
        return max(0.01, self.devicePixelRatioF())

    def _centred(self, size: QSize) -> QRect:
        available = self.rect().size()
        if size.width() > available.width() or size.height() > available.height():
            size = size.scaled(available, Qt.AspectRatioMode.KeepAspectRatio)  # just shrunk
        return QRect((available.width() - size.width()) // 2,
                     (available.height() - size.height()) // 2, size.width(), size.height())

    def _fitted_rect(self, size: QSize) -> QRect:
        """Where a stand-in (the thumbnail) goes: where the full picture will be."""
        natural = self._natural if self._natural.isValid() else (self._row_size() or size)
        fitted = fit_within(natural, self._available())
        return self._centred(QSize(round(fitted.width() / self._ratio()),
                                   round(fitted.height() / self._ratio())))

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

    def _thumbnail(self) -> QImage | None:
        if self._thumbnails is not None and self._row is not None and self._row.sha256:
            return self._thumbnails.get(self._row.sha256)
        return None

    def _available(self) -> QSize:
        """The widget's size in device pixels: what the picture is fitted within."""
        ratio = self._ratio()
        size = self.size()
        return QSize(max(64, round(size.width() * ratio)), max(64, round(size.height() * ratio)))

    def _wanted(self) -> tuple[CoverDecision, QSize] | None:
        """(decision, device size) the full picture should be rendered for now; None when
        there is nothing to read."""
        row = self._row
        if row is None or row.status != "ok" or not row.path or self._error:
            return None
        decision = self._blur.decision(row)
        if not self._natural.isValid():
            return decision, self._available()
        return decision, fit_within(self._natural, self._available())

    def _render_if_stale(self) -> None:
        """Ask the reader for the picture rendered for the current decision and size, unless
        that is what is shown or already asked for."""
        wanted = self._wanted()
        if wanted is None or wanted == self._pending:
            return
        decision, size = wanted
        if (self._rendered is not None and self._rendered_for == decision
                and (not self._natural.isValid() or self._rendered.size() == size)):
            self._pending = None
            return
        self._pending = wanted
        self._generation += 1
        self._pool.start(_RenderJob(self._delivery, self._source, self._generation, self._row,
                                    self._available(), decision))

    def _on_delivery_loaded(self, generation: int, image: QImage, decision: CoverDecision,
                            natural: QSize, error: str) -> None:
        if generation != self._generation or self._row is None:
            return  # a newer row, decision or size was asked for meanwhile
        self._pending = None
        if image.isNull():
            self._error = error or "cannot read the image"
            self.load_failed.emit(self._row.image_id, self._error)
        else:
            first = self._rendered is None
            self._rendered, self._rendered_for = image, decision
            self._natural = natural
            self._error = ""
            if first:
                self.image_loaded.emit(self._row.image_id)
            self._render_if_stale()  # the decision may have changed while it was rendered
        self.update()

    def _on_blur_changed(self) -> None:
        self._render_if_stale()
        self.update()

    def _on_thumbnails_thumbnail_ready(self, sha256: str) -> None:
        if self._rendered is None and self._row is not None and self._row.sha256 == sha256:
            self.update()

    def resizeEvent(self, event: QResizeEvent) -> None:
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

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)
