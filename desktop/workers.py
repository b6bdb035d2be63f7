"""Qt bridges for the Qt-free background machinery in library/.

Each bridge is a QObject living on the GUI thread whose plain-Python callbacks are called from
some other thread (watchdog's observer, a scan thread, the inference QThread) and re-emit the
event as a signal; Qt queues cross-thread emissions, so every slot runs on the GUI thread.
Signals are named for what happened (`images_indexed`, `results_written`, `folder_lost`,
`progress_changed`). None of these modules is imported until the window is up: the analysis
runner (and through it torch) loads inside the inference thread.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot
from sqlalchemy.orm import Session, sessionmaker

from library.scan import ExecutorKind
from library.settings import Settings

log = logging.getLogger(__name__)

NEW_IMAGES_POLL_S = 0.4  # during a scan, how often new rows are looked for


class _ScanStopped(Exception):
    """Raised from the scan's progress callback once ScanBridge.stop() was called."""


def _short_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


class WatcherBridge(QObject):
    """Turns library.watch.FolderWatcher callbacks (watchdog's thread) into signals."""

    images_indexed = Signal(list)  # image ids new or changed on disk
    images_missing = Signal(list)  # image ids whose file vanished
    images_moved = Signal(list)  # image ids whose path changed
    folder_lost = Signal(str)  # a watched folder disappeared (unmounted, deleted)
    error_reported = Signal(str)
    state_changed = Signal(str)  # "watching 3 folders", "not watching: …"

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._watcher: Any = None

    def callbacks(self) -> dict[str, Callable[..., None]]:
        """Keyword arguments for FolderWatcher: each emits the matching signal."""
        return {
            "on_indexed": lambda ids: self.images_indexed.emit(list(ids)),
            "on_missing": lambda ids: self.images_missing.emit(list(ids)),
            "on_moved": lambda ids: self.images_moved.emit(list(ids)),
            "on_folder_lost": lambda path: self.folder_lost.emit(str(path)),
            "on_error": lambda message: self.error_reported.emit(str(message)),
        }

    def start(self, create_watcher: Callable[..., Any], folder_count: int) -> None:
        """`create_watcher(**callbacks)` builds the library.watch.FolderWatcher (the
        composition root knows its other arguments); a failure is reported, never raised."""
        try:
            self._watcher = create_watcher(**self.callbacks())
            self._watcher.start()
        except Exception as exc:  # the window works without live updates
            log.exception("folder watcher failed to start")
            self._watcher = None
            self.state_changed.emit(f"Not watching folders ({_short_error(exc)})")
            return
        self._announce(folder_count)

    def _announce(self, count: int) -> None:
        self.state_changed.emit(f"Watching {count} folder{'s' if count != 1 else ''}"
                                if count else "No folders watched")

    def add_folder(self, path: str, count: int) -> None:
        if self._watcher is not None:
            try:
                self._watcher.add_folder(path, scan=False)  # the scan bridge scans it
            except Exception as exc:  # noqa: BLE001
                self.error_reported.emit(f"cannot watch {path}: {_short_error(exc)}")
            self._announce(count)

    def remove_folder(self, path: str, count: int) -> None:
        if self._watcher is not None:
            try:
                self._watcher.remove_folder(path)
            except Exception as exc:  # noqa: BLE001
                self.error_reported.emit(f"cannot stop watching {path}: {_short_error(exc)}")
            self._announce(count)

    def stop(self) -> None:
        if self._watcher is not None:
            try:
                self._watcher.stop()
            except Exception:  # shutting down anyway
                log.exception("folder watcher did not stop cleanly")
            self._watcher = None


class ScanBridge(QObject):
    """Runs library.scan's LibraryIndexer in a background thread, one scan at a time.

    New files appear in the grid as they are recorded, not only when the scan ends: the
    indexer commits in batches, and while it works the progress callback (throttled) reads
    the ids of images added since the scan began and emits them."""

    images_indexed = Signal(list)
    scan_started = Signal(list)  # folder paths
    scan_finished = Signal(object)  # library.scan.ScanSummary
    scan_failed = Signal(str)
    progress_changed = Signal(int, int)  # files done, files to read

    def __init__(self, sessions: sessionmaker[Session], thumbnails: Any,
                 executor: ExecutorKind = "thread", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sessions = sessions
        self._thumbnails = thumbnails
        self._executor = executor
        self._thread: threading.Thread | None = None
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        # Set by stop() (shutdown): the scan thread ends at its next progress call and emits
        # nothing more, so no signal is emitted on this QObject once its owner is going.
        self._stopped = threading.Event()

    def is_running(self) -> bool:
        return not self._idle.is_set()

    def scan(self, folders: Sequence[str]) -> None:
        """Scan these folders; while a scan runs, further requests queue behind it."""
        with self._lock:
            if self._stopped.is_set():
                return
            for folder in folders:
                if folder not in self._pending:
                    self._pending.append(folder)
            if not self._idle.is_set():
                return
            self._idle.clear()
            self._thread = threading.Thread(target=self._run, name="gentriage-scan",
                                            daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Cancel the running scan and drop queued ones (shutdown). Files not yet recorded
        are picked up by the next scan. Returns whether the scan thread has finished."""
        with self._lock:
            self._stopped.set()
            self._pending = []
        return self.wait(timeout)

    def _take(self) -> list[str]:
        with self._lock:
            folders, self._pending = self._pending, []
            if self._stopped.is_set():
                folders = []
            if not folders:
                self._idle.set()
            return folders

    def _run(self) -> None:
        from sqlalchemy import func, select

        from db.schema import Image
        from library.scan import LibraryIndexer

        while folders := self._take():
            self.scan_started.emit(folders)
            try:
                with self._sessions() as session:
                    seen = session.scalar(select(func.max(Image.id))) or 0
                last_poll = 0.0

                def progress(done: int, total: int) -> None:
                    nonlocal seen, last_poll
                    if self._stopped.is_set():
                        raise _ScanStopped
                    now = time.monotonic()
                    if now - last_poll < NEW_IMAGES_POLL_S and done < total:
                        return
                    last_poll = now
                    self.progress_changed.emit(done, total)
                    with self._sessions() as session:
                        new = list(session.scalars(select(Image.id).where(Image.id > seen)
                                                   .order_by(Image.id)))
                    if new:
                        seen = new[-1]
                        self.images_indexed.emit(new)

                with LibraryIndexer(self._sessions, self._thumbnails,
                                    executor=self._executor) as indexer:
                    summary = indexer.scan(folders, progress)
            except _ScanStopped:
                continue  # _take() ends the loop
            except Exception as exc:  # noqa: BLE001 - reported in the status bar
                if self._stopped.is_set():
                    continue
                log.error("scan failed: %s", traceback.format_exc())
                self.scan_failed.emit(_short_error(exc))
                continue
            # Changed files keep their ids; moved ones too. Everything else was emitted above.
            if self._stopped.is_set():
                continue
            rest = sorted(set(summary.indexed_ids) | set(summary.moved_ids)
                          | set(summary.broken_ids))
            if rest:
                self.images_indexed.emit(rest)
            self.scan_finished.emit(summary)


class AnalysisWorker(QObject):
    """The inference side: lives on its own long-lived QThread and runs
    library.analysis.AnalysisRunner there (which imports torch lazily, in that thread).

    `run` blocks the thread's event loop for as long as the runner works, so control calls
    (pause, resume, prioritise, restart, stop) are plain thread-safe methods, not queued
    slots."""

    results_written = Signal(list)  # content ids with new results (and maybe new flags)
    progress_changed = Signal(object)  # library.analysis.RunProgress
    status_changed = Signal(str)
    analysis_unavailable = Signal(str)  # the runner or its models could not start: why
    finished = Signal()

    def __init__(self, sessions: sessionmaker[Session], models_dir: Path, settings: Settings,
                 device: str, runner_factory: Callable[..., Any] | None = None) -> None:
        super().__init__()
        self._sessions = sessions
        self._models_dir = models_dir
        self._settings = settings
        self._device = device
        self._runner_factory = runner_factory
        self._runner: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._shutdown = threading.Event()
        self._paused = False
        self._priority: list[int] = []

    @Slot()
    def run(self) -> None:
        """The thread's body: build a runner, drain the queue, sleep until woken; rebuild
        when `restart` asked for it (new settings), return on `stop`."""
        while not self._shutdown.is_set():
            self._stop.clear()
            try:
                self._run_once()
            except Exception as exc:  # noqa: BLE001 - the window must survive anything here
                log.error("analysis stopped: %s", traceback.format_exc())
                self.analysis_unavailable.emit(f"Analysis stopped: {_short_error(exc)}")
                self._shutdown.wait()  # until stop() or restart() (which clears it)
            with self._lock:
                self._runner = None
        self.finished.emit()

    def _run_once(self) -> None:
        factory = self._runner_factory
        if factory is None:
            from library.analysis import AnalysisRunner  # lazy: keeps the window's start light

            factory = AnalysisRunner
        self.status_changed.emit("Loading models…")
        runner = factory(self._sessions, self._models_dir, self._settings, self._device,
                         on_results=lambda ids: self.results_written.emit(list(ids)),
                         on_progress=self.progress_changed.emit,
                         on_status=lambda status: self.status_changed.emit(str(status)))
        runner.load()
        if not runner.ready:
            self.analysis_unavailable.emit(
                f"No analyser ready: no model weights found in {self._models_dir}")
            self._stop.wait()
            return
        with self._lock:
            self._runner = runner
            if self._paused:
                runner.pause()
            if self._priority:
                runner.prioritise(self._priority)
                self._priority = []
        device = getattr(runner.pipeline, "device", self._device)
        self.status_changed.emit(f"Analysing on {device}: {', '.join(runner.ready)}")
        runner.run(self._stop, self._wake, until_empty=False)

    # ---- control (any thread) ----

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            if self._runner is not None:
                self._runner.pause()

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            if self._runner is not None:
                self._runner.resume()

    @property
    def paused(self) -> bool:
        return self._paused

    def wake(self) -> None:
        """New work was queued (images indexed)."""
        self._wake.set()

    def prioritise(self, content_ids: Collection[int]) -> None:
        with self._lock:
            if self._runner is not None:
                self._runner.prioritise(list(content_ids))
            else:
                self._priority = list(content_ids)
        self._wake.set()

    def restart(self, settings: Settings, models_dir: Path, device: str) -> None:
        """Rebuild the runner with new settings (enabled analysers, device, models)."""
        with self._lock:
            self._settings, self._models_dir, self._device = settings, models_dir, device
            if self._runner is not None:
                self._runner.cancel()
        self._stop.set()
        self._wake.set()

    def stop(self) -> None:
        self._shutdown.set()
        with self._lock:
            if self._runner is not None:
                self._runner.cancel()
                self._runner.resume()
        self._stop.set()
        self._wake.set()


class AnalysisThread(QObject):
    """Owns the long-lived QThread and the worker moved onto it."""

    def __init__(self, worker: AnalysisWorker, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.qthread = QThread()  # not `thread`: that would hide QObject.thread()
        self.qthread.setObjectName("gentriage-inference")
        worker.moveToThread(self.qthread)
        self.qthread.started.connect(worker.run)
        worker.finished.connect(self.qthread.quit)

    def start(self) -> None:
        self.qthread.start(QThread.Priority.LowPriority)

    def stop(self, timeout_ms: int = 10_000) -> bool:
        self.worker.stop()
        if not self.qthread.isRunning():
            return True
        self.qthread.quit()
        return self.qthread.wait(timeout_ms)


class FlagRecomputer(QObject):
    """Recomputes every content's flags (new thresholds or analysers) off the GUI thread.

    One short transaction per db.flags.CHUNK contents, not one for the whole library: SQLite
    has a single write lock, and a 100k-content recompute holding it for its whole run would
    make a review keypress (a write on the GUI thread) wait behind it. Each chunk's changed
    ids are announced as soon as they are committed (`flags_changed`), so the grid repaints
    progressively; `flags_recomputed` follows once with every changed id.
    """

    flags_changed = Signal(list)  # content ids whose flags changed in one committed chunk
    flags_recomputed = Signal(list)  # all content ids whose flags changed, at the end
    recompute_failed = Signal(str)

    def __init__(self, sessions: sessionmaker[Session], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sessions = sessions
        self._lock = threading.Lock()  # one recompute at a time; later ones wait their turn
        self._threads: list[threading.Thread] = []

    def recompute(self, thresholds: Any, enabled: Collection[str]) -> threading.Thread:
        enabled = list(enabled)
        thread = threading.Thread(target=self._run, args=(thresholds, enabled),
                                  name="gentriage-flags", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _run(self, thresholds: Any, enabled: list[str]) -> None:
        started = time.perf_counter()
        changed: list[int] = []
        with self._lock:
            try:
                for chunk_changed in self._recompute_by_chunk(thresholds, enabled):
                    changed += chunk_changed
                    self.flags_changed.emit(chunk_changed)
            except Exception as exc:
                log.exception("flag recompute failed")
                # Chunks committed before the failure stay: their rows are repainted.
                self.recompute_failed.emit(_short_error(exc))
                return
        log.info("flags recomputed in %.2fs (%d changed)", time.perf_counter() - started,
                 len(changed))
        self.flags_recomputed.emit(changed)

    def _recompute_by_chunk(self, thresholds: Any, enabled: list[str]) -> Iterator[list[int]]:
        """Walk the contents by id, CHUNK at a time, each chunk recomputed and committed in
        its own session; yields each chunk's changed ids (only non-empty ones)."""
        from sqlalchemy import select

        from db.flags import CHUNK, update_flags
        from db.schema import Content
        from db.transaction import pause_for_other_writers, write_transaction

        last = 0
        while True:
            locked_at = time.monotonic()
            with write_transaction(self._sessions) as session:
                ids = list(session.scalars(select(Content.id).where(Content.id > last)
                                           .order_by(Content.id).limit(CHUNK)))
                if not ids:
                    return
                chunk_changed = update_flags(session, ids, thresholds, enabled)
            last = ids[-1]
            pause_for_other_writers(time.monotonic() - locked_at)
            if chunk_changed:
                yield chunk_changed

    def wait(self, timeout: float = 10.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
