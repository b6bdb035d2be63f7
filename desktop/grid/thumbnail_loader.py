"""Thumbnails for the grid, loaded off the GUI thread, visible ones first.

Layers: a bounded in-memory LRU of QImages (by content sha256, bounded by bytes), the on-disk
thumbnail cache (library.thumbnails), and the source file (decoded with Pillow at reduced
size, then saved to the disk cache). Only the first layer is touched on the GUI thread.

Scheduling ("waterfall", after hydrus): requests wait in our own priority queue, and only as
many as there are worker threads are handed to the pool at a time. So when the user scrolls
on, `set_visible()` can still drop everything queued for rows they left behind, and the rows
now on screen go first. Among equal priorities the newest request wins, since it was made
for where the user is now.

Results come back through a lock-protected list that a GUI-thread timer drains every
FLUSH_INTERVAL_MS while work is outstanding: thumbnails arriving together are announced
together (`thumbnails_ready(list)` once per flush, plus `thumbnail_ready(sha)` for each),
so a fast disk does not flood the view with one repaint per image. Workers produce QImage
only: QPixmap may not be created outside the GUI thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QImage, QImageReader

log = logging.getLogger(__name__)

FLUSH_INTERVAL_MS = 30
DEFAULT_MEMORY_BYTES = 96 * 1024 * 1024
DEFAULT_MAX_COUNT = 2_000
# Failures are remembered so a broken file is not decoded again on every repaint.
MAX_REMEMBERED_FAILURES = 10_000
PRIORITY_VISIBLE = 1_000_000  # added to the priority of requests for rows on screen
# Decoding threads run at this nice level (Linux): on a 2-core machine they would otherwise
# take the GUI thread's core whenever both decode, and a frame waits for a time slice.
WORKER_NICE = 10
_niced = threading.local()


def default_thread_count() -> int:
    """One core is left to the GUI thread (1 to 4 threads): benchmarks/bench_scroll.py on 2
    cores found the longest scrolling stalls were mostly the GUI thread waiting for a core,
    not working."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def _lower_this_thread_priority() -> None:
    """Nice the calling pool thread once, so the GUI thread wins the CPU when both want it
    (Linux: setpriority on a thread id affects that thread only; elsewhere a no-op, since
    QThread priorities do nothing under the default scheduler)."""
    if getattr(_niced, "done", False):
        return
    _niced.done = True
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
        except OSError:
            pass  # not permitted: run at normal priority


class ThumbnailStore(Protocol):
    """What the loader needs from library.thumbnails.ThumbnailCache."""

    def path_for(self, sha256: str) -> Path: ...
    def has(self, sha256: str) -> bool: ...
    def make_from(self, image): ...  # PIL image -> PIL thumbnail
    def save(self, sha256: str, thumb) -> object: ...  # falsy (SaveOutcome) when it failed
    def remove_many(self, sha256s: Iterable[str]) -> int: ...
    def prune(self, keep: set[str]) -> int: ...


@dataclass
class _Request:
    sha256: str
    path: str
    priority: int
    seq: int


class _LoadTask(QRunnable):
    """Runs on a pool thread: produce one QImage thumbnail, or an error message."""

    def __init__(self, loader: ThumbnailLoader, request: _Request, target: int) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._loader = loader
        self._request = request
        self._store = loader.store
        self._target = target

    def run(self) -> None:
        _lower_this_thread_priority()
        sha, path = self._request.sha256, self._request.path
        try:
            image = load_thumbnail(self._store, sha, path, self._target)
            self._loader._deliver(sha, image, self._target, None)
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message for the UI
            self._loader._deliver(sha, None, self._target, f"{type(exc).__name__}: {exc}")


class _Housekeeping(QRunnable):
    """Runs on a pool thread: deletes cached thumbnail files (a directory walk or many
    unlinks, never on the GUI thread). Failures are logged: the cache only stays bigger."""

    def __init__(self, what: str, work: Callable[[], int]) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._what = what
        self._work = work

    def run(self) -> None:
        _lower_this_thread_priority()
        try:
            removed = self._work()
        except Exception:
            log.exception("thumbnail cache: %s failed", self._what)
            return
        if removed:
            log.info("thumbnail cache: %s removed %d file(s)", self._what, removed)


def _fit_within(size: QSize, target: int) -> QSize | None:
    """The size to decode at so the long side is `target` (None: keep, it is not larger)."""
    if target <= 0 or not size.isValid() or max(size.width(), size.height()) <= target:
        return None
    return size.scaled(QSize(target, target), Qt.AspectRatioMode.KeepAspectRatio)


def _read_qimage(path: Path, target: int = 0) -> QImage:
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    scaled = _fit_within(reader.size(), target)
    if scaled is not None:
        # JPEG decodes straight at the reduced size (libjpeg's scaled IDCT): much cheaper
        # than decoding 512 px and shrinking on the GUI thread at paint time.
        reader.setQuality(100)  # smooth scaling for the part libjpeg does not do
        reader.setScaledSize(scaled)
    image = reader.read()
    if image.isNull():
        raise OSError(f"cannot read {path}: {reader.errorString()}")
    return image


def _pil_to_qimage(pil_image) -> QImage:
    rgba = pil_image.convert("RGBA")
    data = rgba.tobytes("raw", "RGBA")
    image = QImage(data, rgba.width, rgba.height, rgba.width * 4,
                   QImage.Format.Format_RGBA8888)
    return image.copy()  # detach from `data`, which Python frees


def load_thumbnail(store: ThumbnailStore, sha256: str, source_path: str,
                   target: int = 0) -> QImage:
    """The thumbnail for a content: from the disk cache, else made from the source file with
    Pillow and saved. With `target` > 0 it is returned with its long side at most `target`
    (the grid's cell size in device pixels), so painting never rescales. Runs on worker
    threads. Raises with a readable message on failure."""
    if store.has(sha256):
        try:
            image = _read_qimage(store.path_for(sha256), target)
            return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
        except OSError as exc:  # a damaged cache file: make it again from the source
            log.info("thumbnail cache entry for %s unreadable (%s); regenerating", sha256, exc)
    from PIL import Image as PILImage  # Pillow is only needed on a cache miss

    try:
        with PILImage.open(source_path) as source:
            source.draft("RGB", (1024, 1024))  # JPEG: decode at reduced size
            thumb = store.make_from(source)
    except FileNotFoundError:
        raise FileNotFoundError(f"file not found: {source_path}") from None
    except OSError as exc:
        raise OSError(f"cannot read image {source_path}: {exc}") from exc
    # A read-only or full cache disk must not hide the picture: show it, say why once.
    try:
        outcome = store.save(sha256, thumb)
    except OSError as exc:
        outcome = None
        log.warning("cannot save thumbnail for %s: %s", sha256, exc)
    if outcome is not None and not outcome:
        log.warning("cannot save thumbnail for %s: %s", sha256, getattr(outcome, "error", ""))
    image = _pil_to_qimage(thumb)
    scaled = _fit_within(image.size(), target)
    if scaled is not None:
        image = image.scaled(scaled, Qt.AspectRatioMode.IgnoreAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


class ThumbnailLoader(QObject):
    """Loads thumbnails on its own QThreadPool and keeps recent ones in memory."""

    thumbnail_ready = Signal(str)  # sha256
    thumbnails_ready = Signal(list)  # list[str]: all the sha256s of one flush
    thumbnail_failed = Signal(str, str)  # sha256, message

    def __init__(self, store: ThumbnailStore, max_bytes: int = DEFAULT_MEMORY_BYTES,
                 max_count: int = DEFAULT_MAX_COUNT, threads: int | None = None,
                 target_size: int = 0, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._target = max(0, int(target_size))
        # sha256 -> the target it was loaded for (0: natural size), to know when zooming in
        # needs a sharper one.
        self._loaded_for: dict[str, int] = {}
        self._max_bytes = max_bytes
        self._max_count = max_count
        self._memory: OrderedDict[str, QImage] = OrderedDict()
        self._memory_bytes = 0
        self._failures: OrderedDict[str, str] = OrderedDict()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, threads or default_thread_count()))
        self._pending: dict[str, _Request] = {}
        self._heap: list[tuple[int, int, str]] = []
        self._in_flight: set[str] = set()
        self._visible: set[str] = set()
        self._seq = itertools.count()
        self._results: list[tuple[str, QImage | None, int, str | None]] = []
        self._results_lock = threading.Lock()
        self._dispatch_timer = QTimer(self)
        self._dispatch_timer.setSingleShot(True)
        self._dispatch_timer.setInterval(0)
        self._dispatch_timer.timeout.connect(self._dispatch)
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(FLUSH_INTERVAL_MS)
        self._flush_timer.timeout.connect(self._on_flush_timer_timeout)
        self._shut_down = False

    # --- GUI-thread API ---------------------------------------------------------------------

    def get(self, sha256: str) -> QImage | None:
        """The thumbnail if it is in memory (no I/O, ever)."""
        image = self._memory.get(sha256)
        if image is not None:
            self._memory.move_to_end(sha256)
        return image

    def set_target_size(self, pixels: int) -> None:
        """Thumbnails are delivered with their long side at most `pixels` (0: as stored,
        <= 512). Ones already in memory stay usable; `fits` says whether they are sharp
        enough for the new size."""
        self._target = max(0, int(pixels))

    @property
    def target_size(self) -> int:
        return self._target

    def fits(self, sha256: str) -> bool:
        """The in-memory thumbnail is at least as large as the current target needs."""
        loaded_for = self._loaded_for.get(sha256)
        if loaded_for is None:
            return False
        if loaded_for == 0:
            return True
        if self._target and loaded_for >= self._target:
            return True
        image = self._memory.get(sha256)
        # Smaller than what was asked for: that is its natural size; nothing sharper exists.
        return image is not None and max(image.width(), image.height()) < loaded_for

    def failure(self, sha256: str) -> str | None:
        """Why this thumbnail could not be made, if it could not."""
        return self._failures.get(sha256)

    def request(self, sha256: str, path: str, priority: int = 0) -> None:
        """Ask for a thumbnail; `thumbnail_ready` follows. Repeated requests only raise the
        priority. Known failures are not retried (see `forget_failure`)."""
        if (self._shut_down or not sha256 or sha256 in self._in_flight
                or sha256 in self._failures
                or (sha256 in self._memory and self.fits(sha256))):
            return
        if sha256 in self._visible:
            priority += PRIORITY_VISIBLE
        existing = self._pending.get(sha256)
        if existing is not None and existing.priority >= priority:
            return
        request = _Request(sha256, str(path), priority, next(self._seq))
        self._pending[sha256] = request
        heapq.heappush(self._heap, (-request.priority, -request.seq, sha256))
        # Not started here: requests come from paint (data() for a cell without its
        # thumbnail), and a pool thread starting mid-paint takes the GIL from the GUI thread
        # for the rest of the frame (bench_scroll: placeholder painting waited 20-90 ms with
        # the GUI thread off the CPU). Started on the next event-loop turn, the screen's
        # requests are also all queued first, so the top of the screen goes first.
        if not self._dispatch_timer.isActive():
            self._dispatch_timer.start()

    def set_visible(self, sha256s: Iterable[str], keep: Iterable[str] = ()) -> None:
        """The thumbnails on screen now, in display order. Queued requests for anything
        else (except `keep`, e.g. a prefetch page ahead) are dropped; visible ones go first,
        top of the screen first."""
        ordered = list(dict.fromkeys(sha256s))
        self._visible = set(ordered)
        retained = self._visible | set(keep)
        dropped = [sha for sha in self._pending if sha not in retained]
        for sha in dropped:
            del self._pending[sha]
        for rank, sha in enumerate(ordered):
            request = self._pending.get(sha)
            if request is not None:
                request.priority = PRIORITY_VISIBLE + len(ordered) - rank
                request.seq = next(self._seq)
        self._heap = [(-r.priority, -r.seq, sha) for sha, r in self._pending.items()]
        heapq.heapify(self._heap)
        self._dispatch()

    def cancel_all(self) -> None:
        """Drop every queued request (a new filter: nothing queued is wanted any more)."""
        self._pending.clear()
        self._heap.clear()

    def forget(self, sha256s: Iterable[str]) -> None:
        """Drop in-memory thumbnails and remembered failures (the file was replaced)."""
        for sha in sha256s:
            image = self._memory.pop(sha, None)
            self._loaded_for.pop(sha, None)
            if image is not None:
                self._memory_bytes -= image.sizeInBytes()
            self._failures.pop(sha, None)

    def discard(self, sha256s: Iterable[str]) -> None:
        """These pictures left the library (no file shows them): drop them from memory and
        delete their cached thumbnails, on the pool."""
        shas = list(dict.fromkeys(sha256s))
        if not shas:
            return
        self.forget(shas)
        self._pool.start(_Housekeeping("discarding", lambda: self.store.remove_many(shas)))

    def prune(self, referenced: Callable[[], set[str]]) -> None:
        """Delete, on the pool, every cached thumbnail no picture needs: `referenced()`
        (also called there) names those to keep. Catches what a crash or files deleted
        while GenTriage was closed left behind. Racing a scan that just saved a thumbnail
        and has not recorded its file yet costs that thumbnail: it is made again when
        shown."""
        self._pool.start(_Housekeeping("pruning", lambda: self.store.prune(referenced())))

    def forget_failure(self, sha256: str) -> None:
        self._failures.pop(sha256, None)

    def pending_count(self) -> int:
        return len(self._pending) + len(self._in_flight)

    def is_pending(self, sha256: str) -> bool:
        """Queued or being loaded: a thumbnails_ready or thumbnail_failed will follow."""
        return sha256 in self._pending or sha256 in self._in_flight

    def memory_bytes(self) -> int:
        return self._memory_bytes

    def wait_for_done(self, msecs: int = -1) -> bool:
        """Block until the pool is idle (tests and shutdown)."""
        return self._pool.waitForDone(msecs)

    def shutdown(self) -> None:
        """Stop handing out work and wait for running tasks (call before the app exits).
        Requests after this are ignored: a closing window still paints and scrolls, and
        must not start loads (or timers) that outlive it."""
        self._shut_down = True
        self.cancel_all()
        self._dispatch_timer.stop()
        self._pool.waitForDone()
        self._flush_timer.stop()

    # --- internals ----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        if self._shut_down:
            return
        slots = self._pool.maxThreadCount() - len(self._in_flight)
        while slots > 0 and self._heap:
            _, neg_seq, sha = heapq.heappop(self._heap)
            request = self._pending.get(sha)
            if request is None or request.seq != -neg_seq:
                continue  # stale heap entry (dropped or re-prioritised)
            del self._pending[sha]
            self._in_flight.add(sha)
            self._pool.start(_LoadTask(self, request, self._target))
            slots -= 1
        if self._in_flight and not self._flush_timer.isActive():
            self._flush_timer.start()

    def _deliver(self, sha256: str, image: QImage | None, target: int,
                 error: str | None) -> None:
        """Called on worker threads."""
        with self._results_lock:
            self._results.append((sha256, image, target, error))

    def _on_flush_timer_timeout(self) -> None:
        with self._results_lock:
            results, self._results = self._results, []
        ready: list[str] = []
        for sha, image, target, error in results:
            self._in_flight.discard(sha)
            if image is not None:
                self._remember(sha, image, target)
                ready.append(sha)
            else:
                self._failures[sha] = error or "unknown error"
                while len(self._failures) > MAX_REMEMBERED_FAILURES:
                    self._failures.popitem(last=False)
                self.thumbnail_failed.emit(sha, error or "unknown error")
        self._dispatch()
        if not self._in_flight:
            self._flush_timer.stop()
        if ready:
            self.thumbnails_ready.emit(ready)
            for sha in ready:
                self.thumbnail_ready.emit(sha)

    def _remember(self, sha256: str, image: QImage, target: int) -> None:
        old = self._memory.pop(sha256, None)
        if old is not None:
            self._memory_bytes -= old.sizeInBytes()
        self._memory[sha256] = image
        self._loaded_for[sha256] = target
        self._memory_bytes += image.sizeInBytes()
        while self._memory and (self._memory_bytes > self._max_bytes
                                or len(self._memory) > self._max_count):
            evicted_sha, evicted = self._memory.popitem(last=False)
            self._loaded_for.pop(evicted_sha, None)
            self._memory_bytes -= evicted.sizeInBytes()
