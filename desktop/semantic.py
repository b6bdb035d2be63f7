"""The app's side of semantic search: like:"text" and similar:ID filter terms, "Find similar".

* `SemanticResolver` ranks a like:/similar: filter off the GUI thread (the first search loads
  the embeddings and CLIP's text tower: seconds) with library.search, and hands back the same
  filter with its ranking attached; the grid then pages through it like any other filter, so
  the blur rule and keyset paging apply unchanged. Only the latest request is answered.
* `SemanticIndicator` is the filter bar's line saying that a semantic term is active, what it
  ranked, or why it could not.
* `GridContextMenu` is the grid's right-click menu (Find similar and friends), built from the
  action registry so its entries share the rebindable shortcuts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QPoint, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QToolButton, QWidget

from db.filters import ImageFilter
from db.transaction import Sessions
from desktop.actions import ActionRegistry

log = logging.getLogger(__name__)

# New embeddings arrive with every analysis batch: the loaded index catches up at most this
# often (a query reads only rows written since the last one).
REFRESH_DEBOUNCE_MS = 3000


class SemanticResolver(QObject):
    """Attaches rankings to like:/similar: filters in one background thread."""

    resolved = Signal(object)  # the ImageFilter, ranking attached
    failed = Signal(object, str)  # the ImageFilter, why it could not be ranked

    def __init__(self, sessions: Sessions, models_dir: Path | str,
                 parent: QObject | None = None,
                 search_factory: Callable[..., Any] | None = None) -> None:
        super().__init__(parent)
        self._sessions = sessions
        self._models_dir = Path(models_dir)
        self._factory = search_factory or _default_search
        self._search: Any = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="gentriage-semantic")
        self._latest = 0
        self._lock = threading.Lock()
        self._pending: list[Future[Any]] = []
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_DEBOUNCE_MS)
        self._refresh_timer.timeout.connect(self._refresh_now)

    def set_models_dir(self, models_dir: Path | str) -> None:
        if Path(models_dir) != self._models_dir:
            self._models_dir = Path(models_dir)
            self._submit(lambda: setattr(self, "_search", None))

    def resolve(self, f: ImageFilter) -> None:
        """Rank `f`'s semantic term; `resolved` or `failed` follows (unless a newer request
        came first: only the latest is answered)."""
        with self._lock:
            self._latest += 1
            ticket = self._latest
        self._submit(lambda: self._resolve(f, ticket))

    def _resolve(self, f: ImageFilter, ticket: int) -> None:
        from library.search import SearchUnavailable

        if ticket != self._latest:
            return  # superseded while waiting
        try:
            ranked = self._searcher().resolve(f)
        except SearchUnavailable as exc:
            message = str(exc)
        except Exception as exc:
            log.exception("semantic search failed")
            message = f"search failed: {type(exc).__name__}: {exc}"
        else:
            if ticket == self._latest:
                self.resolved.emit(ranked)
            return
        if ticket == self._latest:
            self.failed.emit(f, message)

    def _searcher(self) -> Any:
        if self._search is None:
            self._search = self._factory(self._sessions, self._models_dir)
        return self._search

    def _on_results_written(self, _content_ids: list) -> None:
        """New analysis results: the loaded index catches up soon (only once loaded: a
        library nobody searches never holds its vectors in memory)."""
        if self._search is not None and not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def _refresh_now(self) -> None:
        def refresh() -> None:
            from library.search import SearchUnavailable

            try:
                if self._search is not None:
                    self._search.refresh()
            except SearchUnavailable:
                pass  # said when someone searches
        self._submit(refresh)

    def _submit(self, job: Callable[[], None]) -> None:
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(job))

    def wait(self, timeout: float | None = None) -> None:
        """Until the queued work is done (tests, shutdown)."""
        for future in list(self._pending):
            future.result(timeout)

    def shutdown(self) -> None:
        self._refresh_timer.stop()
        with self._lock:
            self._latest += 1  # nothing still queued is answered
        self._pool.shutdown(wait=True, cancel_futures=True)


def _default_search(sessions: Sessions, models_dir: Path) -> Any:
    from library.search import SemanticSearch

    return SemanticSearch(sessions, models_dir)


class SemanticIndicator(QWidget):
    """One line under the filter field while a like:/similar: term is active."""

    clear_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("semanticIndicator")
        self.label = QLabel()
        self.label.setObjectName("semanticText")
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # the user's words, never markup
        self.label.setWordWrap(True)
        self.clear_button = QToolButton()
        self.clear_button.setText("✕")
        self.clear_button.setToolTip("Drop the semantic term (keep the other criteria)")
        self.clear_button.clicked.connect(self.clear_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.clear_button)
        self.hide()

    def show_filter(self, f: ImageFilter) -> None:
        if not f.semantic:
            self.hide()
            return
        what = f"like “{f.like}”" if f.like is not None else f"similar to image {f.similar_to}"
        if f.ranking is None:
            self.label.setText(f"Semantic search: {what} — searching…")
        else:
            order = ("most similar first" if f.sort.field == "similarity"
                     else "in the chosen sort order")
            self.label.setText(f"Semantic search: {what} — the {len(f.ranking):,} closest "
                               f"pictures the other criteria allow (at most "
                               f"{f.ranking.limit:,}), {order}")
        self.show()

    def show_failure(self, f: ImageFilter, message: str) -> None:
        what = f"like “{f.like}”" if f.like is not None else f"similar to image {f.similar_to}"
        self.label.setText(f"Semantic search ({what}) unavailable: {message}")
        self.show()


class GridContextMenu(QObject):
    """The grid's right-click menu: registry actions (Find similar, …) for the clicked image.
    Qt makes the clicked cell current on the right-button press, so the actions apply to it."""

    def __init__(self, view: Any, registry: ActionRegistry,
                 action_ids: Iterable[str | None]) -> None:
        super().__init__(view)
        self._view = view
        self._registry = registry
        self._action_ids = list(action_ids)
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self._on_view_context_menu_requested)

    def build(self) -> QMenu:
        menu = QMenu(self._view)
        menu.setObjectName("gridContextMenu")
        self._registry.fill_menu(menu, self._action_ids)
        return menu

    def _on_view_context_menu_requested(self, position: QPoint) -> None:
        if not self._view.indexAt(position).isValid():
            return
        menu = self.build()
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self._view.viewport().mapToGlobal(position))
