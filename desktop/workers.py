"""Qt bridges for the Qt-free background machinery in library/ and db/.

Each bridge is a QObject living on the GUI thread whose plain-Python callbacks are called from
some other thread (watchdog's observer, a scan thread, the inference thread, the change
poller) and re-emit the event as a signal; Qt queues cross-thread emissions, so every slot
runs on the GUI thread. Signals are named for what happened (`images_indexed`,
`results_written`, `folder_lost`, `progress_changed`). None of these modules is imported until
the window is up: the analysis runner (and through it torch) loads inside the inference thread.

The other direction — the GUI asking a background thread for something — never goes through a
queued slot: each of those threads is busy in a loop of its own and has no event loop to
deliver one. Requests are plain thread-safe methods that write under a lock and wake the
thread, which reads them at its next safe point (Qt's mandelbrot RenderThread pattern; see
AnalysisWorker).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, Signal

from desktop.error_sink import ErrorReport, ErrorSink, short_error
from library.scan import ExecutorKind
from library.settings import Settings

if TYPE_CHECKING:  # the bridges call db/ and library/ functions; no SQL here
    from db.transaction import Sessions

log = logging.getLogger(__name__)

SCAN_PROGRESS_INTERVAL_S = 0.4  # how often a scan's progress line is updated
CHANGE_POLL_S = 1.0  # how often the library's change log is looked at (db.changes)


class _ScanStopped(Exception):
    """Raised from the scan's callbacks once ScanBridge.stop() was called."""



class ErrorBridge(QObject):
    """The Qt side of the app's ErrorSink: each report, from whatever thread, becomes
    `error_reported` on the GUI thread (Qt queues the cross-thread emission)."""

    error_reported = Signal(str, str)  # one-line message, details (traceback)

    def __init__(self, sink: ErrorSink, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._closed = threading.Event()
        sink.add_listener(self._relay)

    def _relay(self, report: ErrorReport) -> None:
        if not self._closed.is_set():
            self.error_reported.emit(report.message, report.details)

    def close(self) -> None:
        """Stop relaying (shutdown: the window it reports to is going)."""
        self._closed.set()


class WatcherBridge(QObject):
    """Turns library.watch.FolderWatcher callbacks (watchdog's thread) into signals."""

    images_indexed = Signal(list)  # image ids new or changed on disk
    images_missing = Signal(list)  # image ids whose file vanished
    images_moved = Signal(list)  # image ids whose path changed
    folder_lost = Signal(str)  # a watched folder disappeared (unmounted, deleted)
    error_reported = Signal(str)
    state_changed = Signal(str)  # "watching 3 folders", "not watching: …"
    regrouped = Signal(list)  # content ids whose near-duplicate group changed

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
            "on_regrouped": lambda ids: self.regrouped.emit(list(ids)),
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
            self.state_changed.emit(f"Not watching folders ({short_error(exc)})")
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
                self.error_reported.emit(f"cannot watch {path}: {short_error(exc)}")
            self._announce(count)

    def remove_folder(self, path: str, count: int) -> None:
        if self._watcher is not None:
            try:
                self._watcher.remove_folder(path)
            except Exception as exc:  # noqa: BLE001
                self.error_reported.emit(f"cannot stop watching {path}: {short_error(exc)}")
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
    indexer commits in batches and reports the ids of each committed batch through its
    `on_recorded` callback, which this bridge re-emits as `images_indexed`."""

    images_indexed = Signal(list)  # image ids of one committed batch (new, changed, moved, broken)
    scan_started = Signal(list)  # folder paths
    scan_finished = Signal(object)  # library.scan.ScanSummary
    scan_failed = Signal(str)
    progress_changed = Signal(int, int)  # files done, files to read

    def __init__(self, sessions: Sessions, thumbnails: Any,
                 executor: ExecutorKind = "thread", parent: QObject | None = None, *,
                 pictures: Any = None) -> None:
        super().__init__(parent)
        self._sessions = sessions
        self._thumbnails = thumbnails
        self._executor = executor
        self._pictures = pictures  # library.handoff.PictureHandoff shared with the analysis
        self._thread: threading.Thread | None = None
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        # Set by stop() (shutdown): the scan thread ends at its next callback and emits
        # nothing more, so no signal is emitted on this QObject once its owner is going.
        self._stopped = threading.Event()
        self._last_progress = 0.0

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
        """Whether the scan thread is idle (waits up to `timeout` for it); once idle, the
        thread itself has ended too."""
        if not self._idle.wait(timeout):
            return False
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

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
        from library.scan import LibraryIndexer

        while folders := self._take():
            self.scan_started.emit(folders)
            self._last_progress = 0.0
            try:
                with LibraryIndexer(self._sessions, self._thumbnails,
                                    executor=self._executor, on_recorded=self._on_recorded,
                                    pictures=self._pictures) as indexer:
                    summary = indexer.scan(folders, self._on_progress)
            except _ScanStopped:
                continue  # _take() ends the loop
            except Exception as exc:  # noqa: BLE001 - reported in the status bar
                if self._stopped.is_set():
                    continue
                log.error("scan failed: %s", traceback.format_exc())
                self.scan_failed.emit(short_error(exc))
                continue
            if not self._stopped.is_set():
                self.scan_finished.emit(summary)

    def _on_progress(self, done: int, total: int) -> None:
        """On the scan thread, per file read."""
        if self._stopped.is_set():
            raise _ScanStopped
        now = time.monotonic()
        if now - self._last_progress < SCAN_PROGRESS_INTERVAL_S and done < total:
            return
        self._last_progress = now
        self.progress_changed.emit(done, total)

    def _on_recorded(self, image_ids: list[int]) -> None:
        """On the scan thread, after each committed batch."""
        if self._stopped.is_set():
            raise _ScanStopped
        self.images_indexed.emit(list(image_ids))


@dataclass(frozen=True)
class RunnerConfig:
    """What a runner is built from; a restart replaces it."""

    settings: Settings
    models_dir: Path
    device: str


class AnalysisWorker(QObject):
    """The inference side: builds library.analysis.AnalysisRunner on the inference thread
    (which imports torch there) and runs it for the life of the window.

    Control follows Qt's mandelbrot example (RenderThread): the thread's body (`run`) is one
    long loop, so it has no event loop to deliver queued slots to, and the GUI thread never
    tries to. Each control method (`prioritise`, `pause`, `resume`, `restart`, `stop`) writes
    its request under one lock and wakes the thread; the thread reads requests at its own safe
    points — visible-first priorities between batches (the runner's `between_batches` hook), a
    restart once the runner has returned, and after a failed start it waits on the condition
    until a restart (new settings may fix it) or the end. Requests that must act mid-batch
    (pause, and interrupting a batch for a restart or the end) also set the runner's own
    thread-safe flags, as the mandelbrot loop tests `restart`/`abort` inside its inner loops.

    This QObject itself stays on the GUI thread (it is never moved): its signals, emitted on
    the inference thread, are queued to their GUI receivers, and a signal connected to one of
    its methods runs that method on the GUI thread, where it only records the request.

    Python's threading.Condition rather than QMutex/QWaitCondition: the runner it drives is
    Qt-free and waits on threading.Events, so both sides of the lock use one kind of primitive,
    and `wait_for(predicate)` states the condition the loop waits on in one line.
    """

    results_written = Signal(list)  # content ids with new results (and maybe new flags)
    progress_changed = Signal(object)  # library.analysis.RunProgress
    status_changed = Signal(str)
    analysis_unavailable = Signal(str)  # the runner or its models could not start: why
    finished = Signal()

    def __init__(self, sessions: Sessions, models_dir: Path, settings: Settings,
                 device: str, runner_factory: Callable[..., Any] | None = None,
                 pictures: Any = None) -> None:
        super().__init__()
        self._sessions = sessions
        self._runner_factory = runner_factory
        # What the indexer decoded, for the runner to take (library.handoff.PictureHandoff).
        self._pictures = pictures
        self._handed_on = {"pictures": pictures} if pictures is not None else {}
        # --- requests: written by any thread, read by the inference thread; all under
        # this condition's lock (an RLock: a runner flag set under it may call back into
        # the GUI, e.g. pause() emitting progress, which may read `paused`).
        self._requests = threading.Condition()
        self._config = RunnerConfig(settings, Path(models_dir), device)
        self._restart = False
        self._abort = False
        self._paused = False
        self._can_analyse = True  # until a start fails (then until a restart)
        self._visible: list[int] | None = None  # newest visible set not yet applied
        self._runner: Any = None  # the runner while it runs, for its thread-safe flags
        # The runner's own doorbells (it waits on threading.Events): `stop` ends its run,
        # `wake` ends its idle wait (new work, or a request to read between batches).
        self._stop_runner = threading.Event()
        self._wake = threading.Event()

    # ---- the inference thread ----

    def run(self) -> None:
        """The inference thread's body: build a runner, let it drain the queue (and sleep
        until woken); rebuild on `restart`, return on `stop`."""
        while True:
            with self._requests:
                if self._abort:
                    break
                config, self._restart = self._config, False
                self._stop_runner.clear()
            self._run_runner(config)
            with self._requests:
                self._runner = None
                # Returned for a restart or the end — or it could not start: then nothing
                # happens until one of those is asked for.
                self._requests.wait_for(lambda: self._restart or self._abort)
        self.finished.emit()

    def _run_runner(self, config: RunnerConfig) -> None:
        try:
            factory = self._runner_factory
            if factory is None:
                from library.analysis import AnalysisRunner  # here: it imports torch

                factory = AnalysisRunner
            self.status_changed.emit("Loading models…")
            runner = factory(self._sessions, config.models_dir, config.settings, config.device,
                             on_results=lambda ids: self.results_written.emit(list(ids)),
                             on_progress=self.progress_changed.emit,
                             on_status=lambda status: self.status_changed.emit(str(status)),
                             **self._handed_on)
            runner.load()
            if not runner.ready:
                self._set_can_analyse(False)
                self.analysis_unavailable.emit(
                    f"No analyser ready: no model weights found in {config.models_dir}")
                return
            with self._requests:
                if self._restart or self._abort:
                    return  # asked for while the models loaded
                self._runner = runner
                if self._paused:
                    runner.pause()
            # The pipeline (and torch) loads with the first batch of work: none on an idle library.
            device = getattr(runner, "device", config.device)
            self.status_changed.emit(f"Analysing on {device}: {', '.join(runner.ready)}")
            runner.run(self._stop_runner, self._wake, until_empty=False,
                       between_batches=self._apply_requests)
        except Exception as exc:  # noqa: BLE001 - the window must survive anything here
            log.error("analysis stopped: %s", traceback.format_exc())
            self._set_can_analyse(False)
            self.analysis_unavailable.emit(f"Analysis stopped: {short_error(exc)}")

    def _apply_requests(self) -> None:
        """Between two batches, on the inference thread: what the GUI asked meanwhile."""
        with self._requests:
            visible, self._visible = self._visible, None
            runner = self._runner
        if visible and runner is not None:
            try:
                runner.prioritise(visible)  # a database write: here, never on the GUI thread
            except Exception as exc:  # noqa: BLE001 - an order hint; the analysis goes on
                log.warning("visible images not moved ahead in the queue: %s", exc)

    # ---- requests (any thread; in practice the GUI thread) ----

    def _set_can_analyse(self, can: bool) -> None:
        with self._requests:
            self._can_analyse = can
            self._update_handoff()

    def _update_handoff(self) -> None:
        """Under the lock: pictures are handed on only while they will be taken (a paused
        or failed analysis would leave indexing decoding for nothing)."""
        if self._pictures is not None:
            self._pictures.set_wanted(self._can_analyse and not self._paused)

    def pause(self) -> None:
        with self._requests:
            self._paused = True
            self._update_handoff()
            if self._runner is not None:
                self._runner.pause()

    def resume(self) -> None:
        with self._requests:
            self._paused = False
            self._update_handoff()
            if self._runner is not None:
                self._runner.resume()

    @property
    def paused(self) -> bool:
        with self._requests:
            return self._paused

    def wake(self) -> None:
        """New work was queued (images indexed)."""
        self._wake.set()

    def prioritise(self, content_ids: Collection[int]) -> None:
        """Analyse these (the images on screen) next. A newer call replaces one not yet
        applied: only what is on screen now matters."""
        with self._requests:
            self._visible = list(content_ids)
        self._wake.set()

    def restart(self, settings: Settings, models_dir: Path, device: str) -> None:
        """Rebuild the runner with new settings (enabled analysers, device, models) — also
        after a start that failed."""
        with self._requests:
            self._config = RunnerConfig(settings, Path(models_dir), device)
            self._restart = True
            self._can_analyse = True  # as at the first start: until this one fails
            self._update_handoff()
            self._interrupt_runner()
            self._requests.notify_all()

    def stop(self) -> None:
        """End the thread's loop (shutdown); unfinished work stays queued."""
        with self._requests:
            self._abort = True
            self._interrupt_runner()
            self._requests.notify_all()

    def _interrupt_runner(self) -> None:
        """Under the lock: end the runner's run soon (its batch too)."""
        self._stop_runner.set()
        self._wake.set()
        if self._runner is not None:
            self._runner.cancel()  # also wakes a paused run


class _InferenceThread(QThread):
    """A QThread whose body is the worker's loop (no event loop: nothing is queued to it)."""

    def __init__(self, body: Callable[[], None]) -> None:
        super().__init__()
        self._body = body

    def run(self) -> None:
        self._body()


class AnalysisThread:
    """Owns the long-lived inference QThread that runs the worker's loop."""

    def __init__(self, worker: AnalysisWorker) -> None:
        self.worker = worker
        self.thread = _InferenceThread(worker.run)
        self.thread.setObjectName("gentriage-inference")

    def start(self) -> None:
        self.thread.start(QThread.Priority.LowPriority)

    def stop(self, timeout_ms: int = 10_000) -> bool:
        """Ask the loop to end and wait for the thread. False if it is still running (inside
        a model load, which cannot be interrupted)."""
        self.worker.stop()
        if not self.thread.isRunning():
            return True
        return self.thread.wait(timeout_ms)


class FlagRecomputer(QObject):
    """Recomputes every content's flags (new thresholds or analysers) off the GUI thread.

    One short transaction per db.flags.CHUNK contents, not one for the whole library: SQLite
    has a single write lock, and a 100k-content recompute holding it for its whole run would
    make a review keypress (a write on the GUI thread) wait behind it. Each chunk's changed
    ids are announced as soon as they are committed (`flags_changed`), so the grid repaints
    progressively; `flags_recomputed` follows once with every changed id.

    Requests are coalesced: a newer request replaces one still waiting, and a running pass
    stops at its next chunk boundary in favour of it (the chunks it committed are valid, and
    the newer pass covers the whole library again), so a burst of settings changes costs about
    one pass, not one pass each.
    """

    flags_changed = Signal(list)  # content ids whose flags changed in one committed chunk
    flags_recomputed = Signal(list)  # all content ids whose flags changed, at the end
    recompute_failed = Signal(str)

    def __init__(self, sessions: Sessions, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sessions = sessions
        self._lock = threading.Lock()
        self._pending: tuple[Any, list[str]] | None = None  # the newest request not started
        self._thread: threading.Thread | None = None  # alive while requests remain
        self._stopped = False

    def recompute(self, thresholds: Any, enabled: Collection[str]) -> None:
        with self._lock:
            if self._stopped:
                return
            self._pending = (thresholds, list(enabled))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gentriage-flags",
                                                daemon=True)
                self._thread.start()

    def _take(self) -> tuple[Any, list[str]] | None:
        with self._lock:
            request, self._pending = self._pending, None
            if request is None:
                self._thread = None  # the next recompute() starts a new thread
            return request

    def _interrupted(self) -> bool:
        with self._lock:
            return self._stopped or self._pending is not None

    def _run(self) -> None:
        changed: set[int] = set()  # over passes that a newer request interrupted
        while (request := self._take()) is not None:
            started = time.perf_counter()
            try:
                complete = self._recompute_pass(*request, changed)
            except Exception as exc:
                log.exception("flag recompute failed")
                # Chunks committed before the failure stay: their rows are repainted.
                self.recompute_failed.emit(short_error(exc))
                changed = set()
                continue
            if complete:
                log.info("flags recomputed in %.2fs (%d changed)",
                         time.perf_counter() - started, len(changed))
                self.flags_recomputed.emit(sorted(changed))
                changed = set()

    def _recompute_pass(self, thresholds: Any, enabled: list[str], changed: set[int]) -> bool:
        """Walk the contents by id, one chunk per write transaction, announcing each chunk's
        changed ids. False when a newer request (or stop) interrupted it."""
        from db.flags import recompute_next_chunk
        from db.transaction import pause_for_other_writers, write_transaction

        last = 0
        while not self._interrupted():
            locked_at = time.monotonic()
            with write_transaction(self._sessions) as session:
                step = recompute_next_chunk(session, last, thresholds, enabled)
            if step is None:
                return True
            last, chunk_changed = step
            if chunk_changed:
                changed.update(chunk_changed)
                self.flags_changed.emit(chunk_changed)
            pause_for_other_writers(time.monotonic() - locked_at)
        return False

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait for the requests made so far to be done. False on timeout."""
        with self._lock:
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def stop(self, timeout: float = 10.0) -> bool:
        """Shutdown: drop a waiting request, end a running pass at its next chunk."""
        with self._lock:
            self._stopped = True
            self._pending = None
        return self.wait(timeout)


class ChangeWatcher(QObject):
    """Notices library changes made by anyone — another process (a `gentriage scan` that
    flags an image, `gentriage review`), or this one — by polling the database's change log
    (db.changes) every CHANGE_POLL_S on a thread of its own, and announces them as
    `library_changed` (a db.changes.LibraryChanges) so the window re-reads those rows and
    re-checks the blur. A privacy rule cannot depend on who wrote the flag.

    Polling, because SQLite has no cross-process notification; each poll is one max() on the
    log's primary key when nothing changed. On PostgreSQL the same poll serves: the log's
    ids are commit-ordered there too (db.changes), and LISTEN/NOTIFY would hold one more
    connection open per window for what one indexed max() a second already gives. The token
    is taken when this object is made — before the window reads its first page — so nothing
    committed in between is missed."""

    library_changed = Signal(object)  # db.changes.LibraryChanges
    error_reported = Signal(str)

    def __init__(self, sessions: Sessions, interval_s: float = CHANGE_POLL_S,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        from db.changes import current_token

        self._sessions = sessions
        self._interval_s = interval_s
        with sessions() as session:
            self._token = current_token(session)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="gentriage-changes",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        from db.changes import changes_since

        failing = False
        while not self._stop.wait(self._interval_s):  # a timed wait on the stop request
            try:
                with self._sessions() as session:
                    changes = changes_since(session, self._token)
            except Exception as exc:  # noqa: BLE001 - said once per failing streak
                if not failing:
                    self.error_reported.emit(
                        f"Cannot check the library for changes: {short_error(exc)}")
                failing = True
                continue
            failing = False
            self._token = changes.token
            if changes.any and not self._stop.is_set():
                self.library_changed.emit(changes)
