"""Keyboard review: decisions, ratings, undo/redo and the cursor that moves after them.

Ordering guarantee: a decision is committed to the database *before* the cursor moves, so
what the person saw when they pressed the key is what got decided, and a crash right after
the keypress loses nothing. The write is a few rows in one short WAL transaction (about a
millisecond), which is why it runs synchronously here rather than on the writer thread: an
asynchronous write would need the cursor to wait for it anyway, and keypresses arriving in
the meantime would have to be queued against rows that have not moved yet.

When another process holds the write lock (a long `gentriage scan` chunk, `gentriage review`,
a second window) the write waits at most GUI_WRITE_BUSY_TIMEOUT_MS instead of the engine's
15 s. The change then stays queued, in order, behind any earlier ones: the grid shows it as
pending (never as saved), the status bar says "database busy", a timer retries, and the
cursor moves on as usual. Nothing is lost; quitting with changes still queued waits a moment
more and then asks (desktop.main_window).

Undo and redo come from db.review, whose stacks are derived from the persisted log, so
decisions made by `gentriage review` are undoable here too and history survives restarts.
File moves for rejected images (settings: move to a folder / send to the trash) join the
decision's log group, so one undo restores both.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QObject, QTimer, Signal

from db import review, store
from db.schema import Decision
from db.transaction import Sessions, is_database_busy, write_transaction
from library.file_actions import apply_rejected_action, is_trash_marker, replay_path_changes
from library.settings import Settings

log = logging.getLogger(__name__)

# How long a review keypress may wait for another process's write lock before its change
# is queued: long enough to slip between the chunks of a scan in another process (each
# leaves a gap as long as it held the lock), short enough not to be felt as a freeze.
GUI_WRITE_BUSY_TIMEOUT_MS = 150
RETRY_INTERVAL_MS = 500
# Quitting with changes still queued: one last wait this long before asking.
QUIT_WAIT_MS = 3000


class ReviewModel(Protocol):
    """What the controller needs from desktop.grid.model.GridModel."""

    def rowCount(self, parent: QModelIndex = ...) -> int: ...
    def index(self, row: int, column: int = 0, parent: QModelIndex = ...) -> QModelIndex: ...
    def image_id_at(self, row: int) -> int | None: ...
    def row_of_image(self, image_id: int) -> int | None: ...
    def grid_row(self, row: int) -> Any: ...
    def anchor_at(self, row: int) -> Any: ...
    def next_unreviewed_row(self, after_row: int | None, anchor: Any = None,
                            skip_contents: Collection[int] = ()) -> int | None: ...
    def set_pending(self, pending: dict[int, str]) -> None: ...
    def refresh_contents(self, content_ids: Iterable[int]) -> object: ...
    def refresh_images(self, image_ids: Iterable[int]) -> object: ...


@dataclass(frozen=True)
class _Change:
    """One review change waiting to be written, in keypress order."""

    kind: str  # "decide", "move_rejected", "rate", "undo", "redo"
    content_ids: tuple[int, ...] = ()
    value: Any = None  # the decision, the rating, or the log group whose files to move

    def describe(self) -> str:
        count = len(self.content_ids)
        images = f"{count} image{'s' if count != 1 else ''}"
        if self.kind == "decide":
            verb = {"accepted": "accept", "rejected": "reject", "none": "clear"}[self.value]
            return f"{verb} {images}"
        if self.kind == "move_rejected":
            return f"move the files of {images}"
        if self.kind == "rate":
            return f"rate {images} {self.value}"
        return self.kind


class ReviewController(QObject):
    """Applies review keys to the current image (or the whole multi-selection)."""

    decisions_written = Signal(list)  # content ids whose review state changed (committed)
    files_moved = Signal(list)  # image ids whose file moved (rejected-file action or undo)
    message_posted = Signal(str)  # one line for the status bar
    history_changed = Signal(bool, bool)  # can undo, can redo
    cursor_moved = Signal(int)  # the new current row

    def __init__(self, sessions: Sessions, model: ReviewModel,
                 selection: QItemSelectionModel, settings: Settings,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sessions = sessions
        self._model = model
        self._selection = selection
        self._settings = settings
        self._auto_advance = settings.auto_advance
        self._queue: deque[_Change] = deque()
        self._last_result = False  # whether the change written last changed anything
        self._was_busy = False  # a change had to wait: say so when all are written
        self._retry = QTimer(self)
        self._retry.setSingleShot(True)
        self._retry.setInterval(RETRY_INTERVAL_MS)
        self._retry.timeout.connect(self._on_retry_timeout)

    # ---------------------------------------------------------------- state

    @property
    def auto_advance(self) -> bool:
        return self._auto_advance

    def set_auto_advance(self, enabled: bool) -> None:
        self._auto_advance = bool(enabled)

    def set_settings(self, settings: Settings) -> None:
        self._settings = settings

    def current_row(self) -> int | None:
        index = self._selection.currentIndex()
        return index.row() if index.isValid() else None

    def target_rows(self) -> list[int]:
        """The multi-selection when there is one, else the current row."""
        rows = sorted({i.row() for i in self._selection.selectedIndexes()})
        current = self.current_row()
        if len(rows) > 1:
            return rows
        return [current] if current is not None else rows

    def _content_ids(self, rows: Sequence[int]) -> list[int]:
        ids = []
        for row in rows:
            grid_row = self._model.grid_row(row)
            if grid_row is not None and grid_row.content_id is not None:
                ids.append(grid_row.content_id)
        return ids

    # ---------------------------------------------------------------- review keys

    def decide(self, decision: str) -> bool:
        """Accept / reject / clear the target images; then auto-advance. Returns whether
        anything changed (a change queued for a busy database counts)."""
        rows = self.target_rows()
        content_ids = self._content_ids(rows)
        if not content_ids:
            self.message_posted.emit("Nothing selected to review")
            return False
        advancing = self._auto_advance and decision != Decision.NONE.value
        current = self.current_row()
        after = current if current is not None else max(rows)
        # Where the current image sits is taken before its decision moves it (a filter or
        # "unreviewed first" may no longer show it there).
        anchor = self._model.anchor_at(after) if advancing else None
        written = self._submit(_Change("decide", tuple(content_ids), decision))
        if written is False:
            self.message_posted.emit(f"Already {decision}")
        if advancing:
            target = self._model.next_unreviewed_row(after, anchor, self._pending_decided())
            if target is not None:
                self.select_row(target)
            elif len(rows) == 1:
                self.message_posted.emit("All images in this view are reviewed")
        return written is not False

    def rate(self, rating: int) -> bool:
        content_ids = self._content_ids(self.target_rows())
        if not content_ids:
            return False
        return self._submit(_Change("rate", tuple(content_ids), rating)) is not False

    def undo(self) -> bool:
        return self._submit(_Change("undo")) is not False

    def redo(self) -> bool:
        return self._submit(_Change("redo")) is not False

    def refresh_history(self) -> None:
        with self._sessions() as session:
            self.history_changed.emit(review.can_undo(session), review.can_redo(session))

    # ---------------------------------------------------------------- the write queue

    def has_pending(self) -> bool:
        return bool(self._queue)

    def pending_count(self) -> int:
        return len(self._queue)

    def _submit(self, change: _Change) -> bool | None:
        """Queue `change` behind any waiting ones and write what can be written now.
        Returns True/False (it changed something / nothing) when it was written now, None
        when it waits for the database."""
        self._queue.append(change)
        if len(self._queue) > 1:  # earlier changes wait for the lock: keep the order
            self._show_waiting()
            return None
        self._flush(interactive=True)
        if self._queue and self._queue[0] is change:
            return None
        return self._last_result

    def _on_retry_timeout(self) -> None:
        self._flush(interactive=False)

    def flush_before_quit(self, wait_ms: int = QUIT_WAIT_MS) -> bool:
        """Write what is queued, waiting up to `wait_ms` for the lock. True when nothing is
        left waiting."""
        if self._queue:
            self._flush(interactive=False, busy_timeout_ms=wait_ms)
        return not self._queue

    def discard_pending(self) -> list[str]:
        """Drop the queued changes (the person chose to quit without them); returns what
        they were, for the log."""
        dropped = [change.describe() for change in self._queue]
        if dropped:
            log.warning("quit with review changes not written (database busy): %s",
                        "; ".join(dropped))
        self._queue.clear()
        self._retry.stop()
        self._was_busy = False
        self._show_waiting()
        return dropped

    def _flush(self, *, interactive: bool,
               busy_timeout_ms: int = GUI_WRITE_BUSY_TIMEOUT_MS) -> None:
        """Write the queue in order, stopping at the first change the lock keeps out (the
        retry timer tries again). A change that fails for any other reason is reported and
        dropped, so one bad change cannot hold the others back."""
        self._last_result = False
        while self._queue:
            change = self._queue[0]
            try:
                follow_up = self._write(change, interactive, busy_timeout_ms)
            except Exception as exc:
                if is_database_busy(exc):
                    self._was_busy = True
                    self._show_waiting()
                    self._retry.start()
                    return
                self._queue.popleft()
                log.exception("review change failed: %s", change.describe())
                self.message_posted.emit(f"Could not {change.describe()}: {exc}")
                continue
            if follow_up is not None:  # the decision is durable; its files move next
                self._queue[0] = follow_up
            else:
                self._queue.popleft()
        self._retry.stop()
        self._show_waiting()
        if self._was_busy:
            self._was_busy = False
            self.message_posted.emit("The database is free again: every waiting review "
                                     "change is saved")

    def _show_waiting(self) -> None:
        self._model.set_pending(self._pending_decisions())
        if self._queue:
            count = len(self._queue)
            self.message_posted.emit(
                f"Database busy (another program is writing to the library): {count} review "
                f"change{'s' if count != 1 else ''} waiting, retrying…")

    def _pending_decisions(self) -> dict[int, str]:
        pending: dict[int, str] = {}
        for change in self._queue:
            if change.kind == "decide":
                pending.update(dict.fromkeys(change.content_ids, change.value))
        return pending

    def _pending_decided(self) -> list[int]:
        """Pictures a queued decision will decide: auto-advance passes over them."""
        return [cid for cid, decision in self._pending_decisions().items()
                if decision != Decision.NONE.value]

    # ---------------------------------------------------------------- writing one change

    def _write(self, change: _Change, interactive: bool,
               busy_timeout_ms: int) -> _Change | None:
        """Write one change in its own transaction and show its effect. Returns the change
        that must follow it (moving a rejected image's file), if any."""
        write = write_transaction(self._sessions, busy_timeout_ms=busy_timeout_ms)
        ids = list(change.content_ids)
        if change.kind == "decide":
            with write as session:
                group = review.set_decision(session, ids, change.value)
                can = review.can_undo(session), review.can_redo(session)
            # The decision is durable now, before any file is touched.
            self._last_result = group is not None
            self._after_write(ids, [], [], can)
            if group is not None:
                self.message_posted.emit(self._describe(change.value, len(ids)))
                if change.value == Decision.REJECTED.value \
                        and self._settings.rejected_action != "mark":
                    return _Change("move_rejected", change.content_ids, group)
            return None
        if change.kind == "move_rejected":
            with write as session:
                outcome = apply_rejected_action(session, change.value, ids,
                                                self._settings.rejected_action,
                                                self._settings.rejected_folder)
                moved = store.image_ids_for_paths(session, _real_paths(outcome.moves))
                can = review.can_undo(session), review.can_redo(session)
            self._after_write(ids, moved, outcome.errors, can)
            return None
        if change.kind == "rate":
            with write as session:
                group = review.set_rating(session, ids, change.value)
                can = review.can_undo(session), review.can_redo(session)
            self._last_result = group is not None
            self._after_write(ids, [], [], can)
            self.message_posted.emit(f"Rated {change.value}" if change.value
                                     else "Rating cleared")
            return None
        self._step(change.kind, write, interactive)
        return None

    def _step(self, kind: str, write: Any, interactive: bool) -> None:
        operation = review.undo if kind == "undo" else review.redo
        verb = "Undone" if kind == "undo" else "Redone"
        with write as session:
            changes = operation(session)
            if not changes:
                self._last_result = False
                self.message_posted.emit(f"Nothing to {kind}")
                return
            # Files first: the log rows and Image rows then commit together.
            outcome = replay_path_changes(session, changes)
            content_ids = sorted({c.content_id for c in changes if c.content_id is not None})
            moved = store.image_ids_for_paths(session, _real_paths(outcome.moves))
            first_image = store.first_image_of(session, content_ids)
            can = review.can_undo(session), review.can_redo(session)
        self._last_result = True
        self._after_write(content_ids, moved, outcome.errors, can)
        fields = sorted({c.field for c in changes})
        count = len(content_ids)
        self.message_posted.emit(f"{verb}: {' and '.join(fields)} of {count} "
                                 f"image{'s' if count != 1 else ''}")
        # Show what changed, unless this ran later from the retry timer: the cursor is the
        # person's by then.
        if first_image is not None and interactive:
            self.select_image(first_image)

    def _after_write(self, content_ids: list[int], moved_images: list[int],
                     errors: list[str], can: tuple[bool, bool]) -> None:
        self._model.refresh_contents(content_ids)
        if moved_images:
            self._model.refresh_images(moved_images)
            self.files_moved.emit(moved_images)
        self.decisions_written.emit(content_ids)
        self.history_changed.emit(*can)
        for error in errors:
            self.message_posted.emit(error)

    @staticmethod
    def _describe(decision: str, count: int) -> str:
        verb = {"accepted": "Accepted", "rejected": "Rejected", "none": "Cleared"}[decision]
        return f"{verb} {count} image{'s' if count != 1 else ''}"

    # ---------------------------------------------------------------- cursor

    def select_image(self, image_id: int) -> bool:
        row = self._model.row_of_image(image_id)
        if row is None:
            return False
        self.select_row(row)
        return True

    def select_row(self, row: int) -> None:
        count = self._model.rowCount()
        if count == 0:
            return
        row = max(0, min(count - 1, row))
        index = self._model.index(row, 0)
        self._selection.setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.cursor_moved.emit(row)

    def move(self, delta: int) -> None:
        current = self.current_row()
        self.select_row(0 if current is None else current + delta)

    def next_unreviewed(self) -> None:
        """N: the next unreviewed image after the current one (wrapping round)."""
        target = self._model.next_unreviewed_row(self.current_row(),
                                                 skip_contents=self._pending_decided())
        if target is None:
            self.message_posted.emit("No unreviewed image in this view")
        else:
            self.select_row(target)


def _real_paths(moves: Sequence[tuple[int | None, str, str]]) -> list[str]:
    """Both ends of each file move, except trash markers (no image row has those)."""
    return [p for _, old, new in moves for p in (old, new) if not is_trash_marker(p)]
