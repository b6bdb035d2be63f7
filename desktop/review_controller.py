"""Keyboard review: decisions, ratings, undo/redo and the cursor that moves after them.

Ordering guarantee: a decision is committed to the database *before* the cursor moves, so
what the person saw when they pressed the key is what got decided, and a crash right after
the keypress loses nothing. The write is a few rows in one short WAL transaction (about a
millisecond), which is why it runs synchronously here rather than on the writer thread: an
asynchronous write would need the cursor to wait for it anyway, and keypresses arriving in
the meantime would have to be queued against rows that have not moved yet.

Undo and redo come from db.review, whose stacks are derived from the persisted log, so
decisions made by `gentriage review` are undoable here too and history survives restarts.
File moves for rejected images (settings: move to a folder / send to the trash) join the
decision's log group, so one undo restores both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QObject, Signal
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db import review
from db.schema import Decision, Image
from db.transaction import write_transaction
from library.file_actions import apply_rejected_action, replay_path_changes
from library.settings import Settings

log = logging.getLogger(__name__)


class ReviewModel(Protocol):
    """What the controller needs from desktop.grid.model.GridModel."""

    def rowCount(self, parent: QModelIndex = ...) -> int: ...
    def index(self, row: int, column: int = 0, parent: QModelIndex = ...) -> QModelIndex: ...
    def image_id_at(self, row: int) -> int | None: ...
    def row_of_image(self, image_id: int) -> int | None: ...
    def grid_row(self, row: int) -> Any: ...
    def next_row_matching(self, start_row: int,
                          predicate: Callable[[Any], bool]) -> int | None: ...  # > start_row
    def refresh_contents(self, content_ids: Sequence[int]) -> object: ...
    def refresh_images(self, image_ids: Sequence[int]) -> object: ...


class ReviewController(QObject):
    """Applies review keys to the current image (or the whole multi-selection)."""

    decisions_written = Signal(list)  # content ids whose review state changed
    files_moved = Signal(list)  # image ids whose file moved (rejected-file action or undo)
    message_posted = Signal(str)  # one line for the status bar
    history_changed = Signal(bool, bool)  # can undo, can redo
    cursor_moved = Signal(int)  # the new current row

    def __init__(self, sessions: sessionmaker[Session], model: ReviewModel,
                 selection: QItemSelectionModel, settings: Settings,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sessions = sessions
        self._model = model
        self._selection = selection
        self._settings = settings
        self._auto_advance = settings.auto_advance

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
        anything changed."""
        rows = self.target_rows()
        content_ids = self._content_ids(rows)
        if not content_ids:
            self.message_posted.emit("Nothing selected to review")
            return False
        # Where to go next is decided before the rows change (a filter may hide them).
        advance_to = self._next_unreviewed_image(rows, set(content_ids)) \
            if self._auto_advance and decision != Decision.NONE.value else None
        moved: list[int] = []
        errors: list[str] = []
        with write_transaction(self._sessions) as session:
            group = review.set_decision(session, content_ids, decision)
        # The decision is durable now, before any file is touched.
        if group is not None and decision == Decision.REJECTED.value:
            with write_transaction(self._sessions) as session:
                outcome = apply_rejected_action(session, group, content_ids,
                                                self._settings.rejected_action,
                                                self._settings.rejected_folder)
                errors = outcome.errors
                moved = self._image_ids_for_paths(session, [new for _, _, new in outcome.moves]
                                                  + [old for _, old, _ in outcome.moves])
        with self._sessions() as session:
            can = review.can_undo(session), review.can_redo(session)
        self._after_write(content_ids, moved, errors, can)
        if group is None:
            self.message_posted.emit(f"Already {decision}")
        else:
            self.message_posted.emit(self._describe(decision, len(content_ids)))
        if advance_to is not None:
            self.select_image(advance_to)
        elif self._auto_advance and decision != Decision.NONE.value and len(rows) == 1:
            self.message_posted.emit("All images in this view are reviewed")
        return group is not None

    def rate(self, rating: int) -> bool:
        content_ids = self._content_ids(self.target_rows())
        if not content_ids:
            return False
        with write_transaction(self._sessions) as session:
            group = review.set_rating(session, content_ids, rating)
            can = review.can_undo(session), review.can_redo(session)
        self._after_write(content_ids, [], [], can)
        self.message_posted.emit(f"Rated {rating}" if rating else "Rating cleared")
        return group is not None

    def undo(self) -> bool:
        return self._step(review.undo, "Undone")

    def redo(self) -> bool:
        return self._step(review.redo, "Redone")

    def _step(self, operation: Callable[[Session], list[review.Change]], verb: str) -> bool:
        with write_transaction(self._sessions) as session:
            changes = operation(session)
            if not changes:
                self.message_posted.emit(f"Nothing to {verb.lower()[:-2]}")
                return False
            # Files first: the log rows and Image rows then commit together.
            outcome = replay_path_changes(session, changes)
            content_ids = sorted({c.content_id for c in changes if c.content_id is not None})
            moved = self._image_ids_for_paths(session, [new for _, _, new in outcome.moves]
                                              + [old for _, old, _ in outcome.moves])
            first_image = session.scalar(select(Image.id).where(
                Image.content_id.in_(content_ids)).order_by(Image.id)) if content_ids else None
            can = review.can_undo(session), review.can_redo(session)
        self._after_write(content_ids, moved, outcome.errors, can)
        fields = sorted({c.field for c in changes})
        count = len(content_ids)
        self.message_posted.emit(f"{verb}: {' and '.join(fields)} of {count} "
                                 f"image{'s' if count != 1 else ''}")
        if first_image is not None:
            self.select_image(first_image)  # show what changed
        return True

    def refresh_history(self) -> None:
        with self._sessions() as session:
            self.history_changed.emit(review.can_undo(session), review.can_redo(session))

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
    def _image_ids_for_paths(session: Session, paths: list[str]) -> list[int]:
        paths = [p for p in paths if not p.startswith("trash:")]
        if not paths:
            return []
        return sorted(set(session.scalars(select(Image.id).where(Image.path.in_(paths)))))

    @staticmethod
    def _describe(decision: str, count: int) -> str:
        verb = {"accepted": "Accepted", "rejected": "Rejected", "none": "Cleared"}[decision]
        return f"{verb} {count} image{'s' if count != 1 else ''}"

    # ---------------------------------------------------------------- cursor

    def _next_unreviewed_image(self, rows: Sequence[int], deciding: set[int]) -> int | None:
        """The next image after the current one (wrapping round) that is still undecided
        and not among those being decided now."""

        def undecided(grid_row: Any) -> bool:
            return (grid_row is not None and grid_row.decision == Decision.NONE.value
                    and grid_row.content_id not in deciding)

        current = self.current_row()
        after = current if current is not None else max(rows)
        found = self._model.next_row_matching(after, undecided)  # rows after `after`
        if found is None and after >= 0:  # wrap round to the top
            found = self._model.next_row_matching(-1, undecided)
        return self._model.image_id_at(found) if found is not None else None

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
        target = self._next_unreviewed_image([0], set())
        if target is None:
            self.message_posted.emit("No unreviewed image in this view")
        else:
            self.select_image(target)
