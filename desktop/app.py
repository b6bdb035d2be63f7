"""The composition root: the only place that creates the app's components and connects them.

Start-up order is chosen so the window is usable fast: open the database (migrations), build
the window, show the first page of the grid, *then* start the services — the folder scan
(a background thread; new files appear as they are recorded), the folder watcher, and the
inference QThread, which imports the analysis runner and with it torch — and the change
poller, which notices what other processes write. Nothing on the GUI path imports torch. If
the runner or its models cannot start, the status bar says so and everything else works.

Errors: one ErrorSink (desktop.error_sink) receives every error nothing else handles — an
exception escaping a slot (sys.excepthook), a Python thread that died (threading.excepthook;
both hooks installed by `start`, removed by `shutdown`), the workers' failure reports — logs
it and shows it in the status bar through an ErrorBridge, which brings reports from any
thread to the GUI thread.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from db import store
from db.engine import (
    DatabaseError,
    LibraryEngine,
    describe_target,
    open_library,
    session_factory,
    set_reviewer,
)
from db.transaction import Sessions, write_transaction
from desktop.blur import BlurPolicy
from desktop.error_sink import ErrorSink
from desktop.families.hooks import install_family_views
from desktop.grid.gc_policy import settle_after_startup
from desktop.grid.model import GridModel
from desktop.grid.thumbnail_loader import ThumbnailLoader
from desktop.grid.view import GridView
from desktop.main_window import MainWindow
from desktop.preview import FullView, ImagePreview
from desktop.safe_text import escaped_rich_text
from desktop.semantic import SemanticResolver
from desktop.theme import apply_theme
from desktop.workers import (
    AnalysisThread,
    AnalysisWorker,
    ChangeWatcher,
    ErrorBridge,
    FlagRecomputer,
    ScanBridge,
    WatcherBridge,
)
from inference.decoding import import_numpy
from library.handoff import PictureHandoff
from library.paths import Locations
from library.scan import ExecutorKind
from library.settings import Settings
from library.thumbnails import ThumbnailCache

log = logging.getLogger(__name__)


class GenTriageApp(QObject):
    """Everything one window needs, created and connected. Tests build this directly (with
    `analysis=False` or a fake runner) and drive the real window."""

    def __init__(self, engine: LibraryEngine, locations: Locations, settings: Settings,
                 folders: list[str] | None = None, device: str | None = None,
                 models_dir: str | None = None, *, analysis: bool = True,
                 watch: bool = True, scan_executor: ExecutorKind = "thread",
                 runner_factory: Any = None, reviewer: str | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.locations = locations
        self.settings = settings
        # Who this window's decisions are logged for: `--user`, else the setting, else the
        # OS user name (db.review). Undo and redo walk this reviewer's steps only.
        self._reviewer_override = reviewer
        self.sessions: Sessions = session_factory(engine,
                                                  reviewer=reviewer or settings.reviewer)
        self.device = device or settings.device
        self._explicit_models = models_dir
        self.errors = ErrorSink()
        self.folders = self._register_folders(folders or [])
        # Before the first page is read: a change committed from here on is noticed.
        self.changes = ChangeWatcher(self.sessions, parent=self)

        # --- the window ------------------------------------------------------------------
        self.thumbnail_cache = ThumbnailCache(locations.thumbnails)
        self.thumbnails = ThumbnailLoader(self.thumbnail_cache)
        self.blur = BlurPolicy.from_settings(settings)
        self.model = GridModel(self.sessions, self.thumbnails, self.blur)
        self.view = GridView(thumbnail_size=settings.thumbnail_size)
        self.preview = ImagePreview(self.blur, self.thumbnails)
        self.full_view = FullView(self.blur, self.thumbnails)
        self.window = MainWindow(self.sessions, settings, self.model, self.view, self.blur,
                                 self.preview, self.full_view, save_settings=self.save_settings,
                                 default_models_dir=str(locations.models),
                                 models_in_use=lambda: (self.models_dir(self.settings),
                                                        self.device))
        self.families = install_family_views(self.window, self.thumbnails)

        # --- services --------------------------------------------------------------------
        # numpy in, once, before the scan, analysis and search threads start: its first
        # import is not thread-safe (inference.decoding.import_numpy).
        import_numpy()
        # Threads, not worker processes: measured faster for ingest on 2 cores (decoding and
        # hashing release the GIL), and a process pool's start-up kept the first new images
        # off the grid for seconds on a fresh library.
        self._scan_executor = scan_executor
        # The analysis takes the pictures the indexer decoded instead of decoding each new
        # file again (library.handoff); only the app's own runner knows how.
        self.pictures = PictureHandoff() if analysis and runner_factory is None else None
        self.scanner = ScanBridge(self.sessions, self.thumbnail_cache, scan_executor, self,
                                  pictures=self.pictures)
        self.watcher = WatcherBridge(self) if watch else None
        self.flags = FlagRecomputer(self.sessions, self)
        self.error_bridge = ErrorBridge(self.errors, self)
        self.semantic = SemanticResolver(self.sessions, self.models_dir(settings), self)
        self.analysis: AnalysisThread | None = None
        if analysis:
            worker = AnalysisWorker(self.sessions, self.models_dir(settings), settings,
                                    self.device, runner_factory=runner_factory,
                                    pictures=self.pictures)
            self.analysis = AnalysisThread(worker)
        self._connect()

    # ---------------------------------------------------------------- set-up

    def models_dir(self, settings: Settings) -> Path:
        """--models-dir, else the settings' choice, else $GENTRIAGE_MODELS_DIR / default."""
        if self._explicit_models:
            return Path(self._explicit_models).expanduser()
        if settings.models_dir:
            return Path(settings.models_dir).expanduser()
        return self.locations.models

    def _register_folders(self, folders: list[str]) -> list[str]:
        """Folders from the command line join the library; none = the remembered ones."""
        with write_transaction(self.sessions) as session:
            for folder in folders:
                store.add_folder(session, folder)
            return [f.path for f in store.list_folders(session)]

    def _connect(self) -> None:
        w = self.window
        report = self.errors.report_message
        self.error_bridge.error_reported.connect(w.status.show_error)
        self.changes.library_changed.connect(w._on_library_changed)
        self.changes.error_reported.connect(report)
        w.folder_added.connect(self._on_window_folder_added)
        w.folder_removed.connect(self._on_window_folder_removed)
        w.rescan_requested.connect(self.scanner.scan)
        w.settings_changed.connect(self._on_window_settings_changed)
        self.scanner.images_indexed.connect(w._on_scanner_images_indexed)
        self.scanner.scan_started.connect(w._on_scanner_scan_started)
        self.scanner.progress_changed.connect(w._on_scanner_progress_changed)
        self.scanner.scan_finished.connect(w._on_scanner_scan_finished)
        self.scanner.scan_failed.connect(w._on_scanner_scan_failed)
        self.scanner.images_indexed.connect(self._on_scanner_images_indexed)
        self.flags.flags_changed.connect(w._on_flags_changed)  # per committed chunk
        self.flags.flags_recomputed.connect(w._on_flags_recomputed)
        self.flags.recompute_failed.connect(report)
        w.semantic_requested.connect(self.semantic.resolve)
        self.semantic.resolved.connect(w._on_semantic_resolved)
        self.semantic.failed.connect(w._on_semantic_failed)
        if self.watcher is not None:
            self.watcher.images_indexed.connect(w._on_watcher_images_indexed)
            self.watcher.images_indexed.connect(self._on_scanner_images_indexed)
            self.watcher.images_missing.connect(w._on_watcher_images_changed)
            self.watcher.images_moved.connect(w._on_watcher_images_changed)
            self.watcher.folder_lost.connect(w._on_watcher_folder_lost)
            self.watcher.error_reported.connect(report)
            self.watcher.state_changed.connect(w._on_watcher_state_changed)
            self.watcher.regrouped.connect(w._on_watcher_regrouped)
        else:
            w.status.show_watch_state("Not watching (disabled)")
        if self.analysis is not None:
            worker = self.analysis.worker
            worker.results_written.connect(w._on_analysis_results_written)
            worker.results_written.connect(self.semantic._on_results_written)
            worker.progress_changed.connect(w._on_analysis_progress_changed)
            worker.status_changed.connect(w._on_analysis_status_changed)
            worker.analysis_unavailable.connect(w._on_analysis_unavailable)
            w.analysis_pause_requested.connect(self._on_window_analysis_pause_requested)
            # The worker lives on the GUI thread and only records the request; its thread
            # applies it between batches (see AnalysisWorker).
            w.visible_contents_changed.connect(worker.prioritise)
        else:
            w._on_analysis_unavailable("Analysis is off for this window")

    def start(self) -> None:
        """Show the first page now; start scanning, watching and analysing right after."""
        self.errors.install()  # from here on, no exception escapes a slot or a thread unseen
        self.window.start()
        QTimer.singleShot(0, self.start_services)

    def start_services(self) -> None:
        self.changes.start()
        if self.folders:
            self.scanner.scan(self.folders)
        if self.watcher is not None:
            self.watcher.start(self._create_watcher, len(self.folders))
        if self.analysis is not None:
            # The worker imports torch and loads models: started once the grid has painted,
            # so that import never competes with the first frame for the interpreter.
            _after_first_paint(self.view.viewport(), self.analysis.start)

    def _create_watcher(self, **callbacks: Any) -> Any:
        from library.watch import FolderWatcher

        # The scan bridge does the initial scan (showing images as they are recorded), so
        # the watcher only follows changes from now on.
        return FolderWatcher(self.sessions, self.thumbnail_cache, list(self.folders),
                             initial_scan=False, executor=self._scan_executor,
                             pictures=self.pictures, **callbacks)

    # ---------------------------------------------------------------- reactions

    def _on_window_folder_added(self, path: str) -> None:
        if path not in self.folders:
            self.folders.append(path)
        self.scanner.scan([path])
        if self.watcher is not None:
            self.watcher.add_folder(path, len(self.folders))

    def _on_window_folder_removed(self, path: str) -> None:
        if path in self.folders:
            self.folders.remove(path)
        if self.watcher is not None:
            self.watcher.remove_folder(path, len(self.folders))

    def _on_scanner_images_indexed(self, _ids: list) -> None:
        if self.analysis is not None:
            self.analysis.worker.wake()  # new work may be queued

    def _on_window_analysis_pause_requested(self, paused: bool) -> None:
        if self.analysis is None:
            return
        worker = self.analysis.worker
        worker.pause() if paused else worker.resume()

    def _on_window_settings_changed(self, old: Settings, new: Settings) -> None:
        app = QApplication.instance()
        if old.theme != new.theme and isinstance(app, QApplication):
            apply_theme(app, new.theme)
        # The tag threshold is applied when tags are read (db.queries), not by the flag rule.
        flag_thresholds_changed = (replace(old.thresholds, tagger=0.0)
                                   != replace(new.thresholds, tagger=0.0))
        if flag_thresholds_changed or old.enabled_analysers != new.enabled_analysers:
            self.flags.recompute(new.thresholds, new.enabled_analysers)
        if self.analysis is not None and (
                old.enabled_analysers != new.enabled_analysers or old.device != new.device
                or old.models_dir != new.models_dir):
            self.device = new.device
            self.analysis.worker.restart(new, self.models_dir(new), new.device)
        self.semantic.set_models_dir(self.models_dir(new))
        if old.reviewer != new.reviewer and self._reviewer_override is None:
            set_reviewer(self.sessions, new.reviewer or None)
            self.window.controller.refresh_history()
        self.settings = new

    def save_settings(self, settings: Settings) -> None:
        self.settings = settings
        try:
            settings.save(self.locations.settings)
        except OSError as exc:
            self.window.status.post(f"Settings not saved: {exc}")

    # ---------------------------------------------------------------- shutdown

    def shutdown(self) -> bool:
        """Stop every service; the database stays consistent whatever was running. False
        when a worker thread is still running (inside a model load or a huge folder walk)."""
        stopped = True
        self.errors.uninstall()
        self.error_bridge.close()
        self.changes.stop()
        if self.watcher is not None:
            self.watcher.stop()
        if self.analysis is not None and not self.analysis.stop():
            log.warning("the analysis thread did not stop in time")
            stopped = False
        if not self.scanner.stop(10):
            log.warning("the folder scan did not stop in time")
            stopped = False
        if not self.flags.stop():
            log.warning("the flag recompute did not stop in time")
            stopped = False
        self.semantic.shutdown()
        self.preview.shutdown()
        self.full_view.shutdown()
        self.families.shutdown()
        self.thumbnails.shutdown()
        return stopped


class _FirstPaint(QObject):
    """Calls back once, on the event-loop turn after `widget` first paints (or after
    FIRST_PAINT_FALLBACK_MS, should it never be painted — a minimised window)."""

    def __init__(self, widget: QWidget, callback: Callable[[], None]) -> None:
        super().__init__(widget)
        self._widget = widget
        self._callback: Callable[[], None] | None = callback
        widget.installEventFilter(self)
        # An owned timer, stopped once the callback ran: nothing stays scheduled.
        self._fallback = QTimer(self)
        self._fallback.setSingleShot(True)
        self._fallback.timeout.connect(self._fire)
        self._fallback.start(FIRST_PAINT_FALLBACK_MS)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            QTimer.singleShot(0, self._fire)
        return False

    def _fire(self) -> None:
        if self._callback is None:
            return
        callback, self._callback = self._callback, None
        self._fallback.stop()
        self._widget.removeEventFilter(self)
        callback()


FIRST_PAINT_FALLBACK_MS = 2000


def _after_first_paint(widget: QWidget, callback: Callable[[], None]) -> None:
    _FirstPaint(widget, callback)


def run_app(args: argparse.Namespace) -> int:
    """`gentriage [FOLDER…]`: open the window. Returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its per-plugin chatter on open
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("GenTriage")
    app.setOrganizationName("GenTriage")
    locations = Locations.resolve(getattr(args, "db", None), getattr(args, "models_dir", None))
    settings = Settings.load(locations.settings)
    apply_theme(app, settings.theme)
    try:
        if locations.database_error is not None:
            raise DatabaseError(locations.database_error)
        engine = open_library(locations.database)
    except DatabaseError as exc:
        advice = ("Check that the PostgreSQL server is running and the URL is right (use "
                  "--db to choose another library)." if not isinstance(locations.database, Path)
                  else "If another program holds the database, close it; if the file is "
                  "damaged, move it away and GenTriage starts a new one (use --db to choose "
                  "another file).")
        QMessageBox.critical(None, "GenTriage cannot open its library",
                             escaped_rich_text(f"{exc}\n\n{advice}"))
        return 2
    log.info("library: %s", describe_target(locations.database))
    folders = [str(Path(f).expanduser().resolve()) for f in getattr(args, "folders", []) or []]
    missing = [f for f in folders if not Path(f).is_dir()]
    folders = [f for f in folders if f not in missing]
    gentriage = GenTriageApp(engine, locations, settings, folders,
                             device=getattr(args, "device", None),
                             models_dir=getattr(args, "models_dir", None),
                             reviewer=getattr(args, "user", None))
    gentriage.window.show()
    gentriage.start()
    # Start-up objects (Qt, SQLAlchemy, Pillow: ~100k) leave the garbage collector's view,
    # so full collections stay short while scrolling (benchmarks/bench_scroll.py).
    QTimer.singleShot(0, settle_after_startup)
    if missing:  # said over the open window, not in a bare box before it appears
        QTimer.singleShot(0, lambda: gentriage.window.report_missing_folders(missing))
    status = 1
    try:
        status = app.exec()
    finally:
        stopped = gentriage.shutdown()
        engine.dispose()
    if not stopped:
        # Every decision is already committed. Waiting longer only delays the exit, and
        # letting Qt destroy a QThread that is still running aborts the process; leave now.
        log.warning("exiting without waiting for a busy worker thread; nothing is lost")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
