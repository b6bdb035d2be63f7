"""The main window: folder sidebar, filter bar, thumbnail grid (or the full view), details
pane, status bar, menus built from the action registry.

The window composes its own widgets (sidebar → filter, filter bar → grid model, grid →
details) and exposes slots `_on_<source>_<signal>` for the background services, which the
composition root (desktop.app) connects. It never starts threads itself: what it needs from
the outside world it asks for with `*_requested` signals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from db import queries, store
from db.filters import FilterSyntaxError, ImageFilter, with_semantic
from db.image_details import load_details
from db.transaction import Sessions, is_database_busy, write_transaction
from desktop.actions import ActionRegistry, HoldKeyFilter
from desktop.blur import BlurPolicy
from desktop.details import DetailsPane
from desktop.filter_bar import DEFAULT_FILTER, FilterBar
from desktop.grid.model import GridModel
from desktop.grid.view import GridView
from desktop.help_overlay import HelpOverlay
from desktop.interop import InteropActions
from desktop.preview import FullView, ImagePreview
from desktop.review_controller import QUIT_WAIT_MS, ReviewController
from desktop.safe_text import escaped_rich_text
from desktop.semantic import GridContextMenu
from desktop.settings_dialog import SettingsDialog
from desktop.sidebar import ALL_FOLDERS, FolderEntry, FolderSidebar
from desktop.status_bar import StatusBar
from library.settings import Settings

log = logging.getLogger(__name__)

# Live updates (new files, results) arrive in bursts; the sidebar counts and the choice lists
# are re-read at most this often.
SIDEBAR_REFRESH_MS = 1500
# Folder and saved-filter changes from the window wait at most this long for another
# process's write lock, then say so (the person can try again) instead of freezing.
WINDOW_WRITE_BUSY_TIMEOUT_MS = 1000


class EmptyLibraryPage(QWidget):
    """Shown instead of the grid while no folder is watched: says what to do next."""

    def __init__(self, on_add: Callable[[], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("emptyLibrary")
        heading = QLabel("No folders yet")
        heading.setObjectName("emptyHeading")
        heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text = QLabel(
            "Add the folder your image generator saves to. GenTriage indexes what is "
            "there, follows new images as they are written, and analyses them in the "
            "background. Your files are never changed.")
        text.setObjectName("emptyText")
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.add_button = QPushButton("Add folder…")
        self.add_button.setObjectName("emptyAddButton")
        self.add_button.setDefault(True)
        self.add_button.clicked.connect(on_add)
        hint = QLabel("or press Ctrl+O · from a terminal: gentriage FOLDER")
        hint.setObjectName("emptyHint")
        hint.setWordWrap(True)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # A column of readable width in the middle; its labels wrap inside it (a wrapping
        # label given an alignment in a box layout gets no height-for-width and clips).
        column = QWidget()
        column.setMaximumWidth(460)
        inner = QVBoxLayout(column)
        inner.setContentsMargins(12, 0, 12, 0)
        inner.addWidget(heading)
        inner.addSpacing(6)
        inner.addWidget(text)
        inner.addSpacing(14)
        inner.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignHCenter)
        inner.addSpacing(6)
        inner.addWidget(hint)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(column, 4)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addLayout(row)
        layout.addStretch(3)


class MainWindow(QMainWindow):
    # Asked of the composition root (it owns scanning, watching and the workers).
    folder_added = Signal(str)
    folder_removed = Signal(str)
    rescan_requested = Signal(list)  # folder paths
    settings_changed = Signal(object, object)  # old Settings, new Settings
    analysis_pause_requested = Signal(bool)
    visible_contents_changed = Signal(list)  # content ids on screen: analyse these first
    semantic_requested = Signal(object)  # an ImageFilter whose like:/similar: needs ranking
    first_page_shown = Signal()

    def __init__(self, sessions: Sessions, settings: Settings,
                 model: GridModel, view: GridView, blur: BlurPolicy,
                 preview: ImagePreview | None = None, full_view: FullView | None = None,
                 save_settings: Callable[[Settings], None] | None = None,
                 default_models_dir: str = "",
                 models_in_use: Callable[[], tuple[Path, str]] | None = None) -> None:
        super().__init__()
        self.setWindowTitle("GenTriage")
        self.setObjectName("mainWindow")
        self._fit_to_screen()
        self.sessions = sessions
        self.settings = settings
        self.model = model
        self.view = view
        self.blur = blur
        self.preview = preview
        self.full_view = full_view
        self._save_settings = save_settings or (lambda _s: None)
        self._default_models_dir = default_models_dir
        # The models folder and device the app analyses with (its --models-dir and --device
        # win over the settings): what the Models view's style reference loads.
        self._models_in_use = models_in_use or (lambda: (
            Path(self.settings.models_dir or self._default_models_dir).expanduser(),
            self.settings.device))
        self._first_page_announced = False
        self._thumbnails_pruned = False
        # Tags count from the person's threshold (db.queries), in the grid's `tag:` filters
        # as in the details pane and the tag suggestions.
        self.model.set_tag_threshold(settings.thresholds.tagger)
        self.models_view: Any = None  # desktop.models_view.ModelsView, made when first opened

        # --- widgets ---------------------------------------------------------------------
        self.sidebar = FolderSidebar()
        self.filter_bar = FilterBar()
        self.details = DetailsPane(preview)
        self.status = StatusBar()
        self.setStatusBar(self.status)
        self.view.setModel(model)
        self.view.setObjectName("grid")
        self.stack = QStackedWidget()
        self.stack.addWidget(view)
        if full_view is not None:
            self.stack.addWidget(full_view)
        self.empty_page = EmptyLibraryPage(self.add_folder_dialog)
        self.stack.addWidget(self.empty_page)
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.setSpacing(0)
        centre_layout.addWidget(self.filter_bar)
        centre_layout.addWidget(self.stack, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(centre)
        self.splitter.addWidget(self.details)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setCollapsible(1, False)  # the grid never disappears
        self.splitter.setSizes(self._pane_widths(self.width()))
        self.setCentralWidget(self.splitter)
        self._restore_layout()

        self.controller = ReviewController(sessions, model, view.selectionModel(), settings,
                                           parent=self)
        self.registry = ActionRegistry(self, settings.shortcuts)
        self.interop = InteropActions(sessions, lambda: self.settings, self.current_grid_row,
                                      blur, parent=self)
        self._bind_actions()
        self._build_menus()
        self.context_menu = GridContextMenu(self.view, self.registry, [
            "view.find_similar", None, "view.full", "file.open_folder"])
        self.help_overlay = HelpOverlay(self.registry, self)
        self._hold_filter = HoldKeyFilter(self.registry, self)
        QApplication.instance().installEventFilter(self._hold_filter)

        self._sidebar_timer = QTimer(self)
        self._sidebar_timer.setSingleShot(True)
        self._sidebar_timer.setInterval(SIDEBAR_REFRESH_MS)
        self._sidebar_timer.timeout.connect(self.refresh_library_lists)

        # --- internal wiring -------------------------------------------------------------
        self.sidebar.folder_selected.connect(self._on_sidebar_folder_selected)
        self.sidebar.add_requested.connect(self.add_folder_dialog)
        self.sidebar.remove_requested.connect(self._on_sidebar_remove_requested)
        self.sidebar.rescan_requested.connect(self._on_sidebar_rescan_requested)
        self.sidebar.sensitive_toggled.connect(self._on_sidebar_sensitive_toggled)
        self.filter_bar.filter_changed.connect(self._on_filter_bar_filter_changed)
        self.filter_bar.save_requested.connect(self._on_filter_bar_save_requested)
        self.filter_bar.delete_requested.connect(self._on_filter_bar_delete_requested)
        self.filter_bar.set_tag_suggester(self._suggest_tags)
        self.view.selectionModel().currentChanged.connect(self._on_view_current_changed)
        self.view.visible_range_changed.connect(self._on_view_visible_range_changed)
        self.view.doubleClicked.connect(lambda _index: self.open_full_view())
        self.model.modelReset.connect(self._on_model_reset)
        self.model.rowsInserted.connect(self._on_model_rows_inserted)
        self.model.new_images_pending.connect(self._on_model_new_images_pending)
        self.controller.message_posted.connect(self.status.post)
        self.controller.history_changed.connect(self._on_controller_history_changed)
        self.controller.decisions_written.connect(self._on_controller_decisions_written)
        self.controller.decisions_written.connect(self.interop.on_decisions_written)
        self.interop.message_posted.connect(self.status.post)
        self.status.pause_toggled.connect(self._on_status_pause_toggled)
        if full_view is not None:
            full_view.close_requested.connect(self.back)

    # ================================================================ set-up

    def _fit_to_screen(self) -> None:
        screen = QApplication.primaryScreen()
        available = screen.availableGeometry() if screen is not None else None
        if available is not None and available.width() > 0:
            self.resize(*default_window_size(available.width(), available.height()))
        else:
            self.resize(1400, 880)

    @staticmethod
    def _pane_widths(window_width: int) -> list[int]:
        """Sidebar, grid, details: the side panes take a share of the window within
        sensible bounds, so the grid gets what is left on any screen."""
        sidebar = max(170, min(240, int(window_width * 0.15)))
        details = max(280, min(460, int(window_width * 0.25)))
        return [sidebar, max(200, window_width - sidebar - details), details]

    def _bind_actions(self) -> None:
        r, c = self.registry, self.controller
        r.bind("review.accept", lambda: c.decide("accepted"))
        r.bind("review.reject", lambda: c.decide("rejected"))
        r.bind("review.clear", lambda: c.decide("none"))
        for n in range(6):
            r.bind(f"review.rate_{n}", lambda n=n: c.rate(n))
        r.bind("review.auto_advance", self._on_auto_advance_toggled)
        auto = r.action("review.auto_advance")
        auto.blockSignals(True)  # the controller already has it; no "Auto-advance on" at start
        auto.setChecked(self.settings.auto_advance)
        auto.blockSignals(False)
        r.bind("edit.undo", c.undo)
        r.bind("edit.redo", c.redo)
        r.bind("edit.search", self.filter_bar.focus_search)
        r.bind("nav.previous", lambda: c.move(-1))
        r.bind("nav.next", lambda: c.move(1))
        r.bind("nav.next_unreviewed", c.next_unreviewed)
        r.bind("view.full", self.open_full_view)
        r.bind("view.back", self.back)
        r.bind("view.peek", self.peek)
        r.bind("view.toggle_blur", self._on_toggle_blur_toggled)
        r.bind("view.zoom_in", self.view.zoom_in)
        r.bind("view.zoom_out", self.view.zoom_out)
        r.bind("view.models", self.show_models_view)
        r.bind("view.find_similar", self.find_similar)
        r.bind("help.shortcuts", lambda: self.help_overlay.toggle())
        r.bind("file.add_folder", self.add_folder_dialog)
        r.bind("file.rescan", lambda: self._on_sidebar_rescan_requested(ALL_FOLDERS))
        r.bind("file.open_folder", self.details.open_containing_folder)
        r.bind("file.settings", self.open_settings)
        r.bind("file.quit", self.close)
        r.bind("analysis.pause", self._on_pause_action_toggled)
        r.bind("edit.copy_parameters", self.interop.copy_parameters)
        r.bind("edit.copy_workflow", self.interop.copy_workflow)
        r.bind("file.queue_comfyui", self.interop.queue_in_comfyui)
        r.action("edit.undo").setEnabled(True)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        self.registry.fill_menu(bar.addMenu("&File"), [
            "file.add_folder", "file.rescan", "file.open_folder", "file.queue_comfyui", None,
            "analysis.pause",
            None, "file.settings", None, "file.quit"])
        self.registry.fill_menu(bar.addMenu("&Edit"), ["edit.undo", "edit.redo", None,
                                                      "edit.search", None,
                                                      "edit.copy_parameters",
                                                      "edit.copy_workflow"])
        self.registry.fill_menu(bar.addMenu("&Review"), [
            "review.accept", "review.reject", "review.clear", None,
            *(f"review.rate_{n}" for n in range(6)), None, "review.auto_advance"])
        self.registry.fill_menu(bar.addMenu("&View"), [
            "nav.previous", "nav.next", "nav.next_unreviewed", None, "view.full", "view.back",
            None, "view.peek", "view.toggle_blur", None, "view.zoom_in", "view.zoom_out",
            None, "view.models", "view.find_similar"])
        self.registry.fill_menu(bar.addMenu("&Help"), ["help.shortcuts"])

    def show_models_view(self) -> None:
        """View → Models…: the report's table and charts for the grid's filter; clicking a
        group narrows the grid to it (desktop/models_view.py)."""
        models_dir, device = self._models_in_use()
        if self.models_view is None:
            from desktop.models_view import ModelsView

            self.models_view = ModelsView(self.sessions, models_dir, device, parent=self)
            self.filter_bar.filter_changed.connect(self.models_view.set_filter)
            self.models_view.group_filter_requested.connect(self.filter_bar.set_filter)
        else:
            self.models_view.use_models(models_dir, device)
        self.models_view.set_filter(self.filter_bar.current_filter())
        self.models_view.refresh()
        self.models_view.show()
        self.models_view.raise_()
        self.models_view.activateWindow()

    def start(self, initial_filter: ImageFilter = DEFAULT_FILTER) -> None:
        """Fill the window: folders, choices, and the first page of the grid."""
        self.refresh_library_lists()
        self.filter_bar.set_filter(initial_filter)
        if self.model.filter is None:  # set_filter emitted nothing: same as the default
            self.model.set_filter(initial_filter)
        self.controller.refresh_history()
        # Review keys work at once, without a click: the grid (or, in an empty library,
        # the "Add folder" button) has the keyboard. The filter field only on Ctrl+F.
        self._focus_main_page()

    def _focus_main_page(self) -> None:
        page = self.stack.currentWidget()
        (self.empty_page.add_button if page is self.empty_page else page).setFocus(
            Qt.FocusReason.OtherFocusReason)

    def _update_empty_state(self) -> None:
        """The empty-library page while no folder is watched, the grid otherwise."""
        empty = not self.sidebar.entries()
        showing_empty = self.stack.currentWidget() is self.empty_page
        if empty and not showing_empty:
            self.stack.setCurrentWidget(self.empty_page)
            self._focus_main_page()
        elif not empty and showing_empty:
            self.stack.setCurrentWidget(self.view)
            self._focus_main_page()

    # ================================================================ library lists

    def refresh_library_lists(self) -> None:
        """Folder counts, sensitive folders, generator/model/label choices, saved filters."""
        with self.sessions() as session:
            counts = queries.folder_counts(session)
            folders = store.list_folders(session)
            entries = [FolderEntry(f.id, f.path, counts.get(f.id, 0), f.sensitive,
                                   lost=not Path(f.path).is_dir()) for f in folders]
            generators = queries.distinct_values(session, "generator")
            models = queries.distinct_values(session, "model")
            labels = queries.label_choices(session)
            saved = queries.saved_filters(session)
        self.sidebar.set_folders(entries)
        self._update_empty_state()
        self.blur.set_sensitive_folders({e.id for e in entries if e.sensitive})
        self.filter_bar.set_choices(generators, models)
        self.filter_bar.set_label_choices(labels)
        self.filter_bar.set_saved_filters(saved)
        self._update_counts()

    def schedule_lists_refresh(self) -> None:
        if not self._sidebar_timer.isActive():
            self._sidebar_timer.start()

    def _update_counts(self) -> None:
        total = sum(e.count for e in self.sidebar.entries())
        self.status.show_counts(self.model.total_count() if self.model.filter else 0, total)

    def _suggest_tags(self, prefix: str) -> list[str]:
        with self.sessions() as session:
            return [tag for tag, _count in queries.tag_suggestions(
                session, prefix, tag_threshold=self.model.tag_threshold)]

    def _window_write(self) -> Any:
        """A write transaction for a window action (adding a folder, saving a filter) that
        waits only a moment for another process's lock; `_report_write_error` says what
        failed."""
        return write_transaction(self.sessions, busy_timeout_ms=WINDOW_WRITE_BUSY_TIMEOUT_MS)

    def _report_write_error(self, what: str, exc: Exception) -> None:
        if is_database_busy(exc):
            self.status.post(f"Database busy (another program is writing to the library): "
                             f"could not {what}; try again in a moment")
        else:
            log.exception("could not %s", what)
            self.status.post(f"Could not {what}: {exc}")

    # ================================================================ folders

    def add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Watch a folder of generated images")
        if folder:
            self.add_folder(folder)

    def add_folder(self, path: str) -> None:
        try:
            with self._window_write() as session:
                normalised = store.add_folder(session, path).path
        except Exception as exc:  # noqa: BLE001 - reported; nothing was written
            self._report_write_error(f"add {path}", exc)
            return
        self.refresh_library_lists()
        self.folder_added.emit(normalised)
        self.status.post(f"Watching {normalised}; indexing…")

    def report_missing_folders(self, paths: list[str]) -> None:
        """Folders named on the command line that are not there (typo, unmounted drive)."""
        if not paths:
            return
        listed = "\n".join(paths)
        self.status.post(f"Not found: {', '.join(paths)}")
        QMessageBox.warning(
            self, "Folder not found", escaped_rich_text(
                f"GenTriage cannot find {'this folder' if len(paths) == 1 else 'these folders'}:"
                f"\n\n{listed}\n\nCheck the spelling, or connect the drive it is on. "
                + ("Your other folders are open as usual." if self.sidebar.entries()
                   else "Use Add folder… to choose one.")))

    def _on_sidebar_remove_requested(self, folder_id: int) -> None:
        entry = next((e for e in self.sidebar.entries() if e.id == folder_id), None)
        if entry is None:
            return
        answer = QMessageBox.question(
            self, "Stop watching folder", escaped_rich_text(
                f"Stop watching {entry.path}?\n\nIts {entry.count:,} images leave the library; "
                "the files on disk are not touched, and reviews are kept if you add it again."))
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.remove_folder(folder_id)

    def remove_folder(self, folder_id: int) -> None:
        try:
            with self._window_write() as session:
                path = store.folder_path(session, folder_id)
                if path is None:
                    return
                orphans = store.remove_folder(session, folder_id)
        except Exception as exc:  # noqa: BLE001 - reported; nothing was written
            self._report_write_error("stop watching the folder", exc)
            return
        # Pictures no file shows any more: their thumbnails go (off the GUI thread).
        self.model.thumbnails.discard(orphans)
        self.folder_removed.emit(path)
        self.refresh_library_lists()
        self.model.reload()

    def _on_sidebar_rescan_requested(self, folder_id: int) -> None:
        entries = self.sidebar.entries()
        paths = [e.path for e in entries if folder_id in (ALL_FOLDERS, e.id)]
        if paths:
            self.rescan_requested.emit(paths)
            self.status.post(f"Rescanning {len(paths)} folder(s)…")

    def _on_sidebar_sensitive_toggled(self, folder_id: int, sensitive: bool) -> None:
        try:
            with self._window_write() as session:
                store.set_folder_sensitive(session, folder_id, sensitive)
        except Exception as exc:  # noqa: BLE001 - reported; the list shows the stored state
            self._report_write_error("change the folder's sensitive mark", exc)
        self.refresh_library_lists()

    def _on_sidebar_folder_selected(self, folder_id: int) -> None:
        self.filter_bar.set_folder(None if folder_id == ALL_FOLDERS else folder_id)

    # ================================================================ filter → grid

    def _on_filter_bar_filter_changed(self, f: ImageFilter) -> None:
        """Run the bar's new filter. One the database cannot run (too many terms, numbers
        out of range) leaves the grid as it was and says why under the filter text; a
        like:/similar: term is ranked off the GUI thread first (desktop.semantic)."""
        if f.semantic and f.ranking is None:
            # Ranked off the GUI thread (desktop.semantic); the grid changes when it is done.
            self.status.post("Searching…")
            self.semantic_requested.emit(f)
            return
        self._show_filtered(f)

    def _on_semantic_resolved(self, f: ImageFilter) -> None:
        if f != self.filter_bar.current_filter():
            return  # the user has moved on
        self.filter_bar.semantic_indicator.show_filter(f)
        self._show_filtered(f)
        self.status.post(f"Semantic search: {f.ranking.note}" if f.ranking else "")

    def _on_semantic_failed(self, f: ImageFilter, message: str) -> None:
        if f == self.filter_bar.current_filter():
            self.filter_bar.semantic_indicator.show_failure(f, message)
            self.status.post(message)

    def find_similar(self) -> None:
        """The current image's look-alikes: a similar: term replaces any like:/similar: term;
        the other criteria stay."""
        image_id = self.current_image_id()
        if image_id is not None:
            self.filter_bar.set_filter(with_semantic(self.filter_bar.current_filter(),
                                                     similar_to=image_id))

    def _show_filtered(self, f: ImageFilter) -> None:
        keep = self.current_image_id()
        previous = self.model.filter
        try:
            self.model.set_filter(f)
        except (FilterSyntaxError, queries.FilterQueryError) as exc:
            self.filter_bar.show_error(f"This filter cannot be run: {exc}", previous)
            return
        except Exception as exc:
            log.exception("filter %r failed", f)
            self.filter_bar.show_error(f"This filter could not be run: {exc}", previous)
            return
        self._show_current(keep)
        self._update_counts()

    def _show_current(self, keep: int | None) -> None:
        row = self.model.row_of_image(keep) if keep is not None else None
        self.controller.select_row(row if row is not None else 0)

    def _on_filter_bar_save_requested(self, name: str, text: str) -> None:
        try:
            with self._window_write() as session:
                queries.save_filter(session, name, text)
                saved = queries.saved_filters(session)
        except Exception as exc:  # noqa: BLE001 - reported; nothing was written
            self._report_write_error(f"save the filter “{name}”", exc)
            return
        self.filter_bar.set_saved_filters(saved)
        self.status.post(f"Saved filter “{name}”")

    def _on_filter_bar_delete_requested(self, name: str) -> None:
        try:
            with self._window_write() as session:
                queries.delete_saved_filter(session, name)
                saved = queries.saved_filters(session)
        except Exception as exc:  # noqa: BLE001 - reported; nothing was written
            self._report_write_error(f"delete the filter “{name}”", exc)
            return
        self.filter_bar.set_saved_filters(saved)

    def _on_model_reset(self) -> None:
        # A library that already has images fills the grid by a reset, not by inserted
        # rows: give it a current image too, or the first review key does nothing.
        if not self.view.currentIndex().isValid() and self.model.rowCount():
            self.controller.select_row(0)
        self._refresh_preview()

    def _on_model_rows_inserted(self, _parent: QModelIndex, first: int, _last: int) -> None:
        if not self.view.currentIndex().isValid() and self.model.rowCount():
            self.controller.select_row(0)
        self._update_counts()
        if not self._first_page_announced and self.model.rowCount():
            self._first_page_announced = True
            QTimer.singleShot(0, self.first_page_shown.emit)

    def _on_model_new_images_pending(self, count: int) -> None:
        self.status.post(f"{count} new image(s) arrived further down; press F5 to refresh")

    # ================================================================ current image

    def current_image_id(self) -> int | None:
        index = self.view.currentIndex()
        return self.model.image_id_at(index.row()) if index.isValid() else None

    def current_grid_row(self) -> Any:
        index = self.view.currentIndex()
        return self.model.grid_row(index.row()) if index.isValid() else None

    def _on_view_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.view.scrollTo(current)
        self._refresh_preview()

    def _refresh_preview(self) -> None:
        row = self.current_grid_row()
        details = None
        if row is not None:
            with self.sessions() as session:
                details = load_details(session, row.image_id,
                                       tag_threshold=self.model.tag_threshold)
        self.details.show_details(details)
        if self.preview is not None:
            self.preview.set_row(row)
        if self.is_full_view():
            self.full_view.set_row(row)

    def _on_view_visible_range_changed(self, first: int, last: int) -> None:
        self.model.set_visible_rows(first, last)
        ids = []
        for row in range(max(0, first), last + 1):
            grid_row = self.model.grid_row(row)
            if grid_row is not None and grid_row.content_id is not None \
                    and not grid_row.analysed:
                ids.append(grid_row.content_id)
        if ids:
            self.visible_contents_changed.emit(ids)

    # ================================================================ review side effects

    def _on_controller_history_changed(self, can_undo: bool, can_redo: bool) -> None:
        self.registry.action("edit.undo").setEnabled(True)  # other processes may add history
        self.registry.action("edit.redo").setEnabled(True)
        self.registry.action("edit.undo").setToolTip("Undo" if can_undo else "Nothing to undo")
        self.registry.action("edit.redo").setToolTip("Redo" if can_redo else "Nothing to redo")

    def _on_controller_decisions_written(self, _content_ids: list) -> None:
        self._refresh_preview()
        self.schedule_lists_refresh()

    def _on_auto_advance_toggled(self, enabled: bool) -> None:
        self.controller.set_auto_advance(enabled)
        if self.settings.auto_advance != enabled:
            self.settings.auto_advance = enabled
            self._save_settings(self.settings)
        self.status.post("Auto-advance on" if enabled else "Auto-advance off")

    # ================================================================ view modes

    def open_full_view(self) -> None:
        if self.full_view is None or self.current_grid_row() is None \
                or self.stack.currentWidget() is self.empty_page:
            return
        self.stack.setCurrentWidget(self.full_view)
        self.full_view.set_row(self.current_grid_row())
        self.full_view.setFocus()

    def back(self) -> None:
        if self.help_overlay.isVisible():
            self.help_overlay.hide()
        elif self.is_full_view():
            self.stack.setCurrentWidget(self.view)
            self.view.setFocus()
        elif (focused := QApplication.focusWidget()) is not None and \
                self.filter_bar.isAncestorOf(focused):
            self._focus_main_page()  # Esc leaves any filter field for the grid

    def is_full_view(self) -> bool:
        return self.full_view is not None and self.stack.currentWidget() is self.full_view

    def peek(self, pressed: bool) -> None:
        """Space held: show the current image clear while the key is down."""
        image_id = self.current_image_id()
        if pressed and image_id is not None:
            self.blur.peek(image_id)
        else:
            self.blur.end_peek()

    def _on_toggle_blur_toggled(self, unblurred: bool) -> None:
        if unblurred and not self.blur.session_unblurred:
            answer = QMessageBox.question(
                self, "Show flagged images?",
                "Show flagged and unreviewed images unblurred until GenTriage closes?\n\n"
                "Rejected images stay covered. Press B again to blur them again.")
            if answer != QMessageBox.StandardButton.Yes:
                action = self.registry.action("view.toggle_blur")
                action.blockSignals(True)
                action.setChecked(False)
                action.blockSignals(False)
                return
        self.blur.set_session_unblurred(unblurred)
        self.status.post("Blur off for this session" if unblurred else "Blur on")

    # ================================================================ settings

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self.registry, self._default_models_dir, self)
        if dialog.exec() != SettingsDialog.DialogCode.Accepted:
            return
        new = dialog.result_settings()
        for action_id, shortcuts in dialog.shortcut_choices().items():
            self.registry.rebind(action_id, shortcuts)
        new.shortcuts = self.registry.overrides()
        self.apply_settings(new)

    def apply_settings(self, new: Settings) -> None:
        old = self.settings
        self.settings = new
        self._save_settings(new)
        self.controller.set_settings(new)
        self.blur.apply_settings(new)
        auto = self.registry.action("review.auto_advance")
        if auto.isChecked() != new.auto_advance:
            auto.setChecked(new.auto_advance)
        if old.thresholds.tagger != new.thresholds.tagger:
            # Tags are stored down to a low floor: a new threshold is only a new reading,
            # no model reload and no re-analysis (desktop.app restarts nothing for it).
            keep = self.current_image_id()
            if self.model.set_tag_threshold(new.thresholds.tagger):
                self._show_current(keep)
                self._update_counts()
            self._refresh_preview()
        self.settings_changed.emit(old, new)

    # ================================================================ services (slots)

    def _on_scanner_images_indexed(self, image_ids: list) -> None:
        self._on_new_images(image_ids)

    def _on_watcher_images_indexed(self, image_ids: list) -> None:
        self._on_new_images(image_ids)

    def _on_new_images(self, image_ids: list) -> None:
        if not image_ids:
            return
        self.model.refresh_images(image_ids)  # changed files already shown
        self.model.insert_new_images(image_ids)
        if not self.view.currentIndex().isValid() and self.model.rowCount():
            self.controller.select_row(0)
        self.schedule_lists_refresh()

    def _on_watcher_images_changed(self, image_ids: list) -> None:
        """Missing or moved files: repaint them; a later filter change drops them."""
        self.model.refresh_images(image_ids)
        self.schedule_lists_refresh()

    def _on_watcher_regrouped(self, content_ids: list) -> None:
        """New or vanished files changed near-duplicate groups: rows a `dup:` filter shows."""
        self.model.refresh_contents(content_ids)
        self.schedule_lists_refresh()

    def _on_watcher_folder_lost(self, path: str) -> None:
        self.status.post(f"Folder not available: {path} (its images are kept)")
        self.schedule_lists_refresh()

    def _on_watcher_state_changed(self, text: str) -> None:
        self.status.show_watch_state(text)

    def _on_service_error_reported(self, message: str) -> None:
        log.warning("%s", message)
        self.status.post(message)

    def _on_scanner_scan_started(self, folders: list) -> None:
        self.status.show_scan_started([str(f) for f in folders])

    def _on_scanner_scan_failed(self, message: str) -> None:
        self.status.show_scan_finished()
        self._on_service_error_reported(f"Indexing failed: {message}")

    def _on_scanner_progress_changed(self, done: int, total: int) -> None:
        self.status.show_scan_progress(done, total)

    def _on_scanner_scan_finished(self, summary: Any) -> None:
        self.status.show_scan_finished()
        if not self._thumbnails_pruned:
            # Once per session, after the first scan: thumbnails no file needs any more
            # (left by a crash, or by files gone while GenTriage was closed) are deleted.
            self._thumbnails_pruned = True
            self.model.thumbnails.prune(self._referenced_sha256s)
        indexed = getattr(summary, "indexed", 0)
        errors = getattr(summary, "errors", [])
        self.status.post((f"Indexed {indexed:,} new or changed image(s)" if indexed
                          else "Folders are up to date")
                         + (f"; {len(errors)} problem(s): {errors[0]}" if errors else ""))
        self.refresh_library_lists()

    def _on_analysis_results_written(self, content_ids: list) -> None:
        self.model.refresh_contents(content_ids)
        current = self.current_grid_row()
        if current is not None and current.content_id in set(content_ids):
            self._refresh_preview()
        self.schedule_lists_refresh()

    def _on_analysis_progress_changed(self, progress: Any) -> None:
        self.status.show_progress(progress)
        paused = bool(getattr(progress, "paused", False))
        action = self.registry.action("analysis.pause")
        action.setEnabled(True)  # running again after "unavailable" (a restart)
        if action.isChecked() != paused:
            action.blockSignals(True)
            action.setChecked(paused)
            action.blockSignals(False)

    def _on_analysis_status_changed(self, text: str) -> None:
        self.status.show_analysis_status(text)

    def _on_analysis_unavailable(self, reason: str) -> None:
        self.status.show_analysis_unavailable(reason)
        self.registry.action("analysis.pause").setEnabled(False)

    def _on_flags_changed(self, content_ids: list) -> None:
        """One chunk of a flag recompute committed: repaint its rows now, and the preview
        too when it shows one of them — a newly flagged image must not stay clear there
        until the whole library has been recomputed."""
        self.model.refresh_contents(content_ids)
        current = self.current_grid_row()
        if current is not None and current.content_id in set(content_ids):
            self._refresh_preview()

    def _on_flags_recomputed(self, content_ids: list) -> None:
        # The grid already repainted chunk by chunk (FlagRecomputer.flags_changed).
        self._refresh_preview()
        self.status.post(f"Flags recomputed: {len(content_ids):,} image(s) changed")

    def _on_library_changed(self, changes: Any) -> None:
        """Someone — another process too — changed flags, decisions or files
        (db.changes.LibraryChanges): re-read the loaded rows concerned, and the preview, full
        view and details, so the blur follows a flag whoever wrote it."""
        if changes.everything:
            self.model.forget_loaded_rows()
        else:
            self.model.refresh_contents(changes.content_ids)
        if changes.image_ids:
            self._on_new_images(sorted(changes.image_ids))
        current = self.current_grid_row()
        if current is not None and (changes.everything or current.content_id in
                                    changes.content_ids or current.image_id in changes.image_ids):
            self._refresh_preview()

    def _on_status_pause_toggled(self, paused: bool) -> None:
        self.registry.action("analysis.pause").setChecked(paused)

    def _on_pause_action_toggled(self, paused: bool) -> None:
        self.status.set_paused(paused)
        self.analysis_pause_requested.emit(paused)

    # ================================================================ closing

    def _referenced_sha256s(self) -> set[str]:
        """What the thumbnail cache keeps (called on the thumbnail pool's thread)."""
        with self.sessions() as session:
            return store.referenced_sha256s(session)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._review_changes_saved():
            event.ignore()
            return
        QApplication.instance().removeEventFilter(self._hold_filter)
        if self.models_view is not None:
            self.models_view.shutdown()
        self._remember_layout()
        super().closeEvent(event)

    def _review_changes_saved(self) -> bool:
        """Before closing: review changes still waiting for a busy database get one last,
        longer wait; if they still cannot be written, the person chooses between waiting
        (the window stays open and keeps retrying) and quitting without them."""
        controller = self.controller
        if not controller.has_pending() or controller.flush_before_quit(QUIT_WAIT_MS):
            return True
        count = controller.pending_count()
        answer = QMessageBox.warning(
            self, "Review changes not saved yet", escaped_rich_text(
                f"{count} review change{'s are' if count != 1 else ' is'} not saved: another "
                "program has been writing to the library database for a long time.\n\n"
                "Keep the window open and GenTriage keeps trying, or quit without "
                f"{'them' if count != 1 else 'it'}."),
            QMessageBox.StandardButton.Retry | QMessageBox.StandardButton.Discard,
            QMessageBox.StandardButton.Retry)
        if answer != QMessageBox.StandardButton.Discard:
            return False
        controller.discard_pending()
        return True

    def _remember_layout(self) -> None:
        """Window geometry and pane widths, kept in the settings file for the next start."""
        self.settings.window = {
            "geometry": bytes(self.saveGeometry().toBase64().data()).decode("ascii"),
            "panes": self.splitter.sizes(),
        }
        self._save_settings(self.settings)

    def _restore_layout(self) -> None:
        layout = self.settings.window
        if not layout:
            return  # first start: the screen-fitted default
        geometry = layout.get("geometry")
        if isinstance(geometry, str):
            # restoreGeometry also pulls a window saved on a now-missing screen back on-screen.
            self.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
        panes = layout.get("panes")
        if (isinstance(panes, list) and len(panes) == self.splitter.count()
                and all(isinstance(w, int) and w >= 0 for w in panes) and panes[1] > 0):
            self.splitter.setSizes(panes)



def default_window_size(available_width: int, available_height: int) -> tuple[int, int]:
    """Most of a small screen (a 1280x800 laptop gets 1216x736), about 80 % of a large
    one: room for four or five thumbnail columns beside the side panes, without starting
    as a full-screen slab."""
    width = min(int(available_width * 0.95), max(1400, int(available_width * 0.8)))
    height = min(int(available_height * 0.92), max(880, int(available_height * 0.85)))
    return width, height


