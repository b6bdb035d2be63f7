"""The grid's item model: keyset pages from the database, never all rows in memory.

What is kept per loaded row is its image id (a list in display order, plus an id -> row map);
the full `GridRow`s live in a bounded LRU keyed by image id. Rows scrolled far away are
evicted and re-read by id (one query per block of `page_size`) when they come back into
view, so memory stays flat however far the user scrolls. Reading a 200-row page on the GUI
thread is allowed (a few ms on an indexed keyset query); file I/O and decoding never happen
here — thumbnails come from ThumbnailLoader, pixels from BlurPolicy.safe_image.

Lazy loading follows Qt's C++ fetchMore example: `beginInsertRows(parent, start,
start + count - 1)` — the Python port's `start + count` announces one row too many.

Live updates:
* `refresh_images` / `refresh_contents` re-read those rows and emit `dataChanged` for just
  them. Rows stay where they are even when they no longer match the filter (an image
  accepted under `is:unreviewed` does not vanish from under the cursor); the next
  `set_filter` / `reload` drops them.
* `insert_new_images`: new files that sort before the first loaded row (the common case:
  newest first, a generator writing new images) are inserted at the top without a reset,
  found with one small query from the top of the result. Rows that sort after the loaded
  part arrive through fetchMore anyway (the keyset cursor continues past them). Rows that
  would land inside the loaded part are not spliced in — that needs their neighbours' keys;
  instead `new_images_pending(count)` tells the window, which can call `reload(image_id)`
  to re-read and keep the current image where it is.

Review: `next_unreviewed_row` finds the next undecided image with one keyset query
(db.queries.next_unreviewed) and, when it lies far below what is loaded, appends the ids up
to it in one read (`image_ids_through`): auto-advance never walks pages. Decisions the
controller could not write yet (another process holds the database) are shown as pending
(`set_pending`): a badge and a tooltip line, and a pending rejection is covered at once.
"""

from __future__ import annotations

import dataclasses
import html
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QUrl,
    Signal,
)

from db import queries
from db.filters import ImageFilter
from desktop.blur import BlurPolicy
from desktop.grid.thumbnail_loader import ThumbnailLoader
from desktop.roles import Role

log = logging.getLogger(__name__)

Index = QModelIndex | QPersistentModelIndex
SessionFactory = Callable[[], AbstractContextManager[Any]]
GridRow = Any  # db.queries.GridRow

DEFAULT_PAGE_SIZE = 200
# GridRows kept in memory: several screens of the smallest thumbnails on a 4K display.
ROW_CACHE_ROWS = 4_000
# How many rows past the visible ones get their thumbnails prefetched, as screens.
PREFETCH_SCREENS = 1
# New images found at the top in one go; beyond this the model asks for a reload instead.
MAX_TOP_INSERT = 2_000
# New images whose place is checked one by one (position_of) before offering a reload.
MAX_POSITION_CHECKS = 50
# Auto-advance: unreviewed images the view does not show that are passed over before giving
# up, and rows after the current one tried as the starting point when the current image has
# left the filter.
MAX_UNPLACED_SKIPS = 20
MAX_ANCHOR_PROBES = 20
PENDING_TEXT = {"accepted": "Accept", "rejected": "Reject", "none": "Clear decision"}
_ROW_ROLES = {
    Role.ImageId: "image_id", Role.ContentId: "content_id", Role.Path: "path",
    Role.Sha256: "sha256", Role.Decision: "decision", Role.Rating: "rating",
    Role.Flagged: "flagged", Role.FlagNsfw: "flag_nsfw", Role.FlagIncoherent: "flag_incoherent",
    Role.Analysed: "analysed", Role.Status: "status", Role.Error: "error",
}
_MISSING = object()


class GridModel(QAbstractListModel):
    """Images matching an ImageFilter, in its sort order, loaded page by page."""

    # Matching images that exist but were not placed (see module docstring).
    new_images_pending = Signal(int)
    # After set_filter / reload / live inserts: the first page is in.
    filter_applied = Signal()

    def __init__(self, session_factory: SessionFactory, thumbnails: ThumbnailLoader,
                 blur: BlurPolicy, page_size: int = DEFAULT_PAGE_SIZE,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self._session_factory = session_factory
        self._thumbnails = thumbnails
        self._blur = blur
        self._page_size = page_size
        self._filter: ImageFilter | None = None
        self._ids: list[int] = []
        # image id -> position; row = position + self._front (top inserts shift everything
        # by changing one number instead of rewriting 100,000 entries).
        self._position: dict[int, int] = {}
        self._front = 0
        self._cache: OrderedDict[int, GridRow | None] = OrderedDict()
        self._cursor: Any = None
        self._has_more = False
        # The cursor the last page was read with: re-reading from it finds rows that were
        # added after the end of the result had been reached.
        self._page_start_cursor: Any = None
        self._total: int | None = None
        self._waiting: dict[str, set[int]] = {}  # sha256 -> image ids painted without it
        self._visible: tuple[int, int] = (0, -1)
        self._tag_threshold: float | None = None
        self._pending: dict[int, str] = {}  # content id -> decision not written yet
        thumbnails.thumbnails_ready.connect(self._on_thumbnails_ready)
        thumbnails.thumbnail_failed.connect(self._on_thumbnail_failed)
        blur.changed.connect(self._on_blur_changed)

    # --- Qt model interface ---------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self._ids)

    def canFetchMore(self, parent: Index) -> bool:
        return not parent.isValid() and self._has_more and self._filter is not None

    def fetchMore(self, parent: Index) -> None:
        if parent.isValid() or not self._has_more or self._filter is None:
            return
        fresh = self._read_next_page()
        if not fresh:
            return
        start = len(self._ids)
        # Qt's C++ example: the last new row is start + count - 1.
        self.beginInsertRows(QModelIndex(), start, start + len(fresh) - 1)
        self._append(fresh)
        self.endInsertRows()

    def _active_filter(self) -> ImageFilter:
        """The filter of the rows shown (pages are read only once set_filter has run)."""
        assert self._filter is not None, "set_filter() comes before any page is read"
        return self._filter

    def _read_next_page(self) -> list[GridRow]:
        after = self._cursor
        with self._session_factory() as session:
            rows, cursor = queries.fetch_page(session, self._active_filter(), after=after,
                                              limit=self._page_size,
                                              tag_threshold=self._tag_threshold)
        self._page_start_cursor = after
        self._cursor = cursor
        self._has_more = cursor is not None
        # Only rows after the last one already shown are appended. A normal page has no
        # known rows; a page re-read after `_rearm_tail` starts with known ones, and new rows
        # among those belong inside the loaded part, not at the end.
        last_known = max((k for k, row in enumerate(rows) if row.image_id in self._position),
                         default=-1)
        return rows[last_known + 1:]

    def _append(self, rows: Sequence[GridRow]) -> None:
        for row in rows:
            self._position[row.image_id] = len(self._ids) - self._front
            self._ids.append(row.image_id)
            self._cache_put(row)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not self._valid(index):
            return None
        row = self._row_at(index.row())
        if row is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return row.name
        if role == Qt.ItemDataRole.DecorationRole:
            return self._decoration(row)
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip_text(row, self._pending.get(row.content_id)
                                if row.content_id is not None else None)
        if role == Role.Row:
            return row
        if role == Role.NeedsBlur:
            return self._blur.needs_cover(self._as_painted(row))
        if role == Role.PendingDecision:
            return self._pending.get(row.content_id) if row.content_id is not None else None
        if role == Role.ThumbnailError:
            return self._thumbnails.failure(row.sha256) if row.sha256 else None
        attr = _ROW_ROLES.get(Role(role)) if role in _ROW_ROLES else None
        if attr is not None:
            return getattr(row, attr, None)
        return None

    def roleNames(self) -> dict[int, QByteArray]:
        names = dict(super().roleNames())
        for role in Role:
            names[int(role)] = QByteArray(role.name[0].lower().encode() + role.name[1:].encode())
        return names

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not self._valid(index):
            return Qt.ItemFlag.NoItemFlags
        return (Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                | Qt.ItemFlag.ItemIsDragEnabled | Qt.ItemFlag.ItemNeverHasChildren)

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        """File URLs only — never pixels — and only of files the blur rule lets out
        (BlurPolicy.file_may_leave): a flagged unreviewed file is not dragged out."""
        mime = QMimeData()
        urls = []
        for index in indexes:
            row = self._row_at(index.row()) if self._valid(index) else None
            if row is not None and row.path and self._blur.file_may_leave(row):
                urls.append(QUrl.fromLocalFile(row.path))
        mime.setUrls(urls)
        return mime

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    # --- filter and loading -----------------------------------------------------------------

    @property
    def filter(self) -> ImageFilter | None:
        return self._filter

    @property
    def page_size(self) -> int:
        return self._page_size

    @property
    def thumbnails(self) -> ThumbnailLoader:
        return self._thumbnails

    @property
    def tag_threshold(self) -> float | None:
        return self._tag_threshold

    def set_tag_threshold(self, threshold: float | None) -> bool:
        """The tagger threshold the person chose: tags below it do not count in `tag:`
        filters. A filter with tag terms is run again; returns whether it was."""
        if threshold == self._tag_threshold:
            return False
        self._tag_threshold = threshold
        f = self._filter
        if f is None or not (f.tags_all or f.tags_any or f.tags_none):
            return False
        self.set_filter(f)
        return True

    def set_filter(self, f: ImageFilter) -> None:
        """Show the images matching `f`: reset, then load the first page.

        The first page is read before anything changes: a filter the database refuses
        (db.queries.FilterQueryError) raises here and the model keeps showing what it
        showed."""
        with self._session_factory() as session:
            first, cursor = queries.fetch_page(session, f, limit=self._page_size,
                                               tag_threshold=self._tag_threshold)
        self.beginResetModel()
        self._filter = f
        self._ids = []
        self._position = {}
        self._front = 0
        self._cache.clear()
        self._cursor = None
        self._has_more = True
        self._page_start_cursor = None
        self._total = None
        self._waiting.clear()
        self._visible = (0, -1)
        self._thumbnails.cancel_all()
        # The first page goes in inside the reset, so views (and item-model testers) never
        # see an empty model followed by an insert.
        self._cursor = cursor
        self._has_more = cursor is not None
        self._append(first)
        self.endResetModel()
        self.filter_applied.emit()

    def reload(self, keep_image_id: int | None = None, max_pages: int = 50) -> int | None:
        """Re-read from the top with the same filter; with `keep_image_id`, keep loading
        pages until that image is in (at most `max_pages`). Returns its row, if found."""
        if self._filter is None:
            return None
        self.set_filter(self._filter)
        if keep_image_id is None:
            return None
        pages = 0
        while keep_image_id not in self._position and self.canFetchMore(QModelIndex()) \
                and pages < max_pages:
            self.fetchMore(QModelIndex())
            pages += 1
        return self.row_of_image(keep_image_id)

    def fetch_all_to(self, row: int) -> bool:
        """Load pages until `row` exists (e.g. jump-to-row). False if the result is shorter."""
        while row >= len(self._ids) and self.canFetchMore(QModelIndex()):
            self.fetchMore(QModelIndex())
        return row < len(self._ids)

    def total_count(self) -> int:
        """How many images match the filter (counted on first use, then kept up to date by
        live inserts; a reset counts again)."""
        if self._filter is None:
            return 0
        if self._total is None:
            if not self._has_more:
                self._total = len(self._ids)
            else:
                with self._session_factory() as session:
                    self._total = queries.count_images(session, self._filter,
                                                       tag_threshold=self._tag_threshold)
        return self._total

    def loaded_count(self) -> int:
        return len(self._ids)

    # --- lookups -------------------------------------------------------------------------------

    def image_id_at(self, row: int) -> int | None:
        return self._ids[row] if 0 <= row < len(self._ids) else None

    def row_of_image(self, image_id: int) -> int | None:
        position = self._position.get(image_id)
        return None if position is None else position + self._front

    def grid_row(self, row: int) -> GridRow | None:
        """The GridRow shown at `row` (read from the database if it was evicted)."""
        return self._row_at(row) if 0 <= row < len(self._ids) else None

    def anchor_at(self, row: int) -> Any:
        """Where the image at `row` sits in the filter's order now (an opaque cursor for
        `next_unreviewed_row`), or None when the filter no longer shows it (decided under
        `is:unreviewed`, say: rows stay put until the next reload)."""
        image_id = self.image_id_at(row)
        if image_id is None or self._filter is None:
            return None
        with self._session_factory() as session:
            return queries.locate(session, self._filter, image_id,
                                  tag_threshold=self._tag_threshold)

    def next_unreviewed_row(self, after_row: int | None, anchor: Any = None,
                            skip_contents: Collection[int] = ()) -> int | None:
        """The row of the first unreviewed image after `after_row` in the filter's order,
        wrapping round to the top (None: there is none). `anchor`: the position of
        `after_row` taken earlier (`anchor_at`), e.g. before its decision moved it;
        `skip_contents`: pictures to treat as reviewed (decisions not written yet).

        One keyset query finds the image (db.queries.next_unreviewed); one more appends the
        ids up to it when it lies below the loaded rows. Images the model has not placed
        (new files that sort inside the loaded part) are passed over."""
        f = self._filter
        if f is None:
            return None
        skip = set(skip_contents)
        start = anchor
        if start is None and after_row is not None and after_row >= 0:
            start = self.anchor_at(after_row)
            if start is None:  # the current image left the filter: start from a neighbour
                for candidate in range(after_row + 1,
                                       min(len(self._ids), after_row + 1 + MAX_ANCHOR_PROBES)):
                    start = self.anchor_at(candidate)
                    if start is not None:
                        row = self.grid_row(candidate)
                        if row is not None and row.decision == "none" \
                                and row.content_id not in skip:
                            return candidate
                        break
                else:
                    start = self._cursor  # past the loaded rows (None: all loaded, wrap)
        for begin in ([start, None] if start is not None else [None]):
            for _ in range(MAX_UNPLACED_SKIPS):
                with self._session_factory() as session:
                    found = queries.next_unreviewed(session, f, begin,
                                                    skip_contents=skip,
                                                    tag_threshold=self._tag_threshold)
                if found is None:
                    break
                row = self._place(found)
                if row is not None:
                    return row
                begin = found  # not shown in this view: look past it
        return None

    def _place(self, cursor: Any) -> int | None:
        """The row of the image at `cursor`, appending the ids up to it when it lies below
        the loaded rows. None when this model does not show it."""
        row = self.row_of_image(cursor.image_id)
        if row is not None or not self._has_more or self._filter is None:
            return row
        with self._session_factory() as session:
            ids = queries.image_ids_through(session, self._filter, self._cursor, cursor,
                                            tag_threshold=self._tag_threshold)
        position = self._position
        if not position.keys().isdisjoint(ids):  # rows inserted live at the top meanwhile
            ids = [i for i in ids if i not in position]
        if not ids or ids[-1] != cursor.image_id:
            return None
        start = len(self._ids)
        self.beginInsertRows(QModelIndex(), start, start + len(ids) - 1)
        # Ids only: their GridRows are read when shown (_load_block). Bulk operations, as
        # this may be 100,000 rows.
        position.update(zip(ids, range(start - self._front, start - self._front + len(ids)),
                            strict=True))
        self._ids.extend(ids)
        self.endInsertRows()
        self._page_start_cursor = self._cursor
        self._cursor = cursor
        self._has_more = True  # the next fetchMore finds out whether rows follow
        return self.row_of_image(cursor.image_id)

    # --- pending decisions (written when the database is free) -------------------------------

    def set_pending(self, pending: Mapping[int, str]) -> None:
        """Decisions (content id -> decision) the controller queued but could not write yet:
        their rows show them as pending. An empty mapping clears them."""
        changed = set(self._pending) ^ set(pending) | {
            cid for cid in pending if self._pending.get(cid) != pending[cid]}
        self._pending = dict(pending)
        if changed:
            rows = [r for cid in changed for r in self._rows_of_content(cid)]
            self._emit_rows_changed(rows)

    def pending(self) -> dict[int, str]:
        return dict(self._pending)

    def _rows_of_content(self, content_id: int) -> list[int]:
        return [self._position[image_id] + self._front
                for image_id, row in self._cache.items()
                if row is not None and row.content_id == content_id]

    def _as_painted(self, row: GridRow) -> GridRow:
        """The row as the blur rule should see it: a rejection not written yet covers the
        picture already (the safe direction); a pending acceptance uncovers nothing until
        it is written."""
        if row.content_id is not None and self._pending.get(row.content_id) == "rejected":
            return dataclasses.replace(row, decision="rejected")
        return row

    # --- live updates -------------------------------------------------------------------------

    def refresh_images(self, image_ids: Iterable[int]) -> list[int]:
        """Re-read these images (decision, flags, status changed) and repaint their rows.
        Returns the rows that changed."""
        ids = [i for i in dict.fromkeys(image_ids) if i in self._position]
        if not ids:
            return []
        with self._session_factory() as session:
            fresh = {row.image_id: row
                     for row in queries.rows_by_image_ids(session, ids, self._filter)}
        rows = []
        for image_id in ids:
            row = fresh.get(image_id)
            if row is not None:  # (gone from the database: what we knew shows until a reload)
                self._cache_put(row)
            rows.append(self._position[image_id] + self._front)
        self._emit_rows_changed(rows)
        return sorted(rows)

    def refresh_contents(self, content_ids: Iterable[int]) -> list[int]:
        """Re-read every loaded image showing these contents (a decision or flag changed).
        Only rows held in memory can be stale: evicted rows are read fresh when shown."""
        wanted = set(content_ids)
        if not wanted:
            return []
        ids = [image_id for image_id, row in self._cache.items()
               if row is not None and row.content_id in wanted]
        return self.refresh_images(ids)

    def forget_loaded_rows(self) -> None:
        """Too much changed to list (db.changes): drop every row held, so each is read
        fresh when shown, and repaint."""
        self._cache.clear()
        if self._ids:
            self.dataChanged.emit(self.index(0), self.index(len(self._ids) - 1), [])

    def insert_new_images(self, image_ids: Iterable[int]) -> int:
        """New files were indexed. Those that match the filter and sort before the first
        loaded row are inserted at the top; see the module docstring for the rest. Returns
        how many rows were inserted."""
        new_ids = [i for i in dict.fromkeys(image_ids) if i not in self._position]
        if not new_ids or self._filter is None:
            return 0
        self._total = None
        inserted = self._insert_at_top(len(new_ids))
        self._rearm_tail()
        unplaced = [i for i in new_ids if i not in self._position]
        pending = self._count_inside_loaded(unplaced)
        if pending:
            self.new_images_pending.emit(pending)
        return inserted

    # --- visibility (the view reports what is on screen) ---------------------------------

    def set_visible_rows(self, first: int, last: int) -> None:
        """Rows `first..last` are on screen: their thumbnails go first, a screen ahead is
        prefetched, and queued work for rows scrolled past is dropped."""
        count = len(self._ids)
        if count == 0 or last < first:
            self._visible = (0, -1)
            self._thumbnails.set_visible(())
            return
        first, last = max(0, first), min(count - 1, last)
        self._visible = (first, last)
        visible = [r for r in (self._row_at(i) for i in range(first, last + 1)) if r is not None]
        span = (last - first + 1) * PREFETCH_SCREENS
        ahead_end = min(count - 1, last + span)
        ahead = [r for r in (self._row_at(i) for i in range(last + 1, ahead_end + 1))
                 if r is not None]
        self._thumbnails.set_visible([r.sha256 for r in visible if r.sha256],
                                     keep=[r.sha256 for r in ahead if r.sha256])
        # Requests for rows scrolled past were just dropped: forget who waited for them.
        # Otherwise this map grows by a set per row ever painted (100,000 after one scroll
        # to the bottom), and every full garbage collection walks them all.
        self._waiting = {sha: ids for sha, ids in self._waiting.items()
                         if self._thumbnails.is_pending(sha)}
        for rank, row in enumerate(visible):
            if row.sha256 and not self._thumbnails.fits(row.sha256):
                self._request(row, priority=len(visible) - rank)
        for row in ahead:
            if row.sha256 and not self._thumbnails.fits(row.sha256):
                self._request(row, priority=-1)

    def set_thumbnail_target(self, pixels: int) -> None:
        """The view's cell size in device pixels: thumbnails are decoded at that size."""
        self._thumbnails.set_target_size(pixels)

    @property
    def visible_rows(self) -> tuple[int, int]:
        return self._visible

    # --- internals ------------------------------------------------------------------------------

    def _valid(self, index: Index) -> bool:
        return (index.isValid() and index.model() is self and not index.parent().isValid()
                and 0 <= index.row() < len(self._ids) and index.column() == 0)

    def _cache_put(self, row: GridRow) -> None:
        self._cache[row.image_id] = row
        self._cache.move_to_end(row.image_id)
        while len(self._cache) > ROW_CACHE_ROWS:
            self._cache.popitem(last=False)

    def _row_at(self, row_number: int) -> GridRow | None:
        image_id = self._ids[row_number]
        cached = self._cache.get(image_id, _MISSING)
        if cached is not _MISSING:
            self._cache.move_to_end(image_id)
            return cached
        self._load_block(row_number)
        return self._cache.get(image_id)

    def _load_block(self, row_number: int) -> None:
        """Re-read the page-aligned block of evicted rows around `row_number` by id."""
        start = row_number - row_number % self._page_size
        block = [i for i in self._ids[start:start + self._page_size] if i not in self._cache]
        with self._session_factory() as session:
            rows = {row.image_id: row
                    for row in queries.rows_by_image_ids(session, block, self._filter)}
        for image_id in block:
            row = rows.get(image_id)
            if row is None:  # deleted since it was listed: remembered as unknown
                self._cache[image_id] = None
            else:
                self._cache_put(row)

    def _decoration(self, row: GridRow) -> Any:
        sha = row.sha256
        if not sha:
            return None
        image = self._thumbnails.get(sha)
        # Missing, or smaller than the zoomed-in cell: ask (cheap when already queued) and
        # show what there is meanwhile.
        missing = image is None or not self._thumbnails.fits(sha)
        if missing and self._thumbnails.failure(sha) is None:
            self._request(row, priority=0)
        if image is None:
            return None
        return self._blur.safe_image(self._as_painted(row), image)

    def _request(self, row: GridRow, priority: int) -> None:
        self._waiting.setdefault(row.sha256, set()).add(row.image_id)
        self._thumbnails.request(row.sha256, row.path, priority)

    def _insert_at_top(self, expected: int) -> int:
        """Read the head of the result up to the first row already shown; what comes before
        it is new and goes in at row 0."""
        if not self._ids:
            # Nothing loaded yet (empty result so far): the first page shows them.
            if not self._has_more:
                self._has_more = True
                self._cursor = None
            self.fetchMore(QModelIndex())
            return len(self._ids)
        limit = min(MAX_TOP_INSERT, expected + 1)
        with self._session_factory() as session:
            rows, _ = queries.fetch_page(session, self._active_filter(), after=None, limit=limit,
                                         tag_threshold=self._tag_threshold)
        head = []
        for row in rows:
            if row.image_id in self._position:
                break
            head.append(row)
        else:
            if len(rows) == limit:  # more new rows than we looked for: too many to splice
                return 0
        if not head:
            return 0
        count = len(head)
        self.beginInsertRows(QModelIndex(), 0, count - 1)
        self._front += count
        for offset, row in enumerate(head):
            self._position[row.image_id] = offset - self._front
            self._cache_put(row)
        self._ids[0:0] = [row.image_id for row in head]
        self.endInsertRows()
        return count

    def _rearm_tail(self) -> None:
        """The end of the result had been reached: read the last page again on the next
        fetchMore, so rows added after it are appended (known rows are skipped)."""
        if not self._has_more and self._ids:
            self._cursor = self._page_start_cursor
            self._has_more = True

    def _count_inside_loaded(self, image_ids: Sequence[int]) -> int:
        """How many of these images match the filter and sort inside the loaded part (the
        ones fetchMore will not bring). Checks at most MAX_POSITION_CHECKS images one by one;
        beyond that every one is counted, which errs towards offering a reload."""
        if not image_ids or not self._ids:
            return 0
        if len(image_ids) > MAX_POSITION_CHECKS:
            return len(image_ids)
        loaded = len(self._ids)
        inside = 0
        with self._session_factory() as session:
            for image_id in image_ids:
                position = queries.position_of(session, self._active_filter(), image_id,
                                               tag_threshold=self._tag_threshold)
                if position is not None and position < loaded:
                    inside += 1
        return inside

    def _emit_rows_changed(self, rows: Iterable[int],
                           roles: Sequence[int] = ()) -> None:
        """One dataChanged per run of consecutive rows."""
        ordered = sorted(set(rows))
        if not ordered:
            return
        start = prev = ordered[0]
        for row in [*ordered[1:], None]:
            if row is not None and row == prev + 1:
                prev = row
                continue
            self.dataChanged.emit(self.index(start), self.index(prev), list(roles))
            if row is not None:
                start = prev = row

    def _on_thumbnails_ready(self, sha256s: list[str]) -> None:
        rows = []
        for sha in sha256s:
            for image_id in self._waiting.pop(sha, ()):
                row = self.row_of_image(image_id)
                if row is not None:
                    rows.append(row)
        self._emit_rows_changed(rows, [Qt.ItemDataRole.DecorationRole])

    def _on_thumbnail_failed(self, sha256: str, _message: str) -> None:
        self._on_thumbnails_ready([sha256])

    def _on_blur_changed(self) -> None:
        if self._ids:
            self.dataChanged.emit(self.index(0), self.index(len(self._ids) - 1),
                                  [Qt.ItemDataRole.DecorationRole, int(Role.NeedsBlur)])


def tooltip_text(row: GridRow, pending: str | None = None) -> str:
    """File facts as escaped rich text. Never an image: a tooltip cannot be routed through
    BlurPolicy, so it carries no pixels at all — and the escaping matters, because Qt treats
    tooltip strings that look like HTML as rich text: a file named `<img src="x.png">.png`
    would otherwise make the tooltip load and paint that file unblurred."""
    lines = [row.name, row.path]
    if row.width and row.height:
        lines.append(f"{row.width} \u00d7 {row.height} {row.format or ''}".rstrip())
    review = {"accepted": "Accepted", "rejected": "Rejected"}.get(row.decision, "Not reviewed")
    if row.rating:
        review += " \u00b7 " + "\u2605" * row.rating
    lines.append(review)
    if pending is not None:
        lines.append(f"{PENDING_TEXT.get(pending, pending)}: not saved yet (the library is "
                     "busy; retrying)")
    flags = [name for name, on in (("NSFW", row.flag_nsfw), ("incoherent", row.flag_incoherent))
             if on]
    if flags:
        lines.append("Flagged: " + ", ".join(flags))
    elif not row.analysed:
        lines.append("Not analysed yet")
    if row.status != "ok":
        lines.append(f"File {row.status}" + (f": {row.error}" if row.error else ""))
    return "<qt>" + "<br>".join(html.escape(line) for line in lines) + "</qt>"
