"""The compare view: 2–4 pictures side by side at the same framing, zoomed and panned
together, over a table of their generation fields with the differences highlighted.

Review keys act on the focused pane (Tab / arrow keys move the focus, a click too): P / X / U
and 0–5 as in the grid, and the culling gesture — P on the one to keep, Shift+X rejects all
the others, as ONE undo step (Shift+P accepts every picture shown, also one step). Decisions
go through library.family_ops.decide (db.review's log, the settings' rejected-file action),
so Ctrl+Z in the window undoes them like any other.

Keys: inside the app the window's action registry routes its commands here while this view
is shown (desktop.families.hooks), so rebinding a key changes it here too. Built without a
registry (tests, or a standalone use) the view reads the default keys itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from db import families as family_db
from db import queries, review
from db.transaction import Sessions, write_transaction
from desktop.blur import BlurPolicy
from desktop.compare.fields import CompareFieldsModel
from desktop.compare.pane import ComparePane, ZoomState
from desktop.safe_text import escaped_rich_text
from library import family_ops

MAX_PANES = 4
HINT = ("P accept \u00b7 X reject \u00b7 Shift+X reject the others \u00b7 Tab / \u2190 \u2192 "
        "move \u00b7 wheel / drag zoom and pan \u00b7 Space peek \u00b7 Esc back")
GridRow = Any  # db.queries.GridRow
RejectedAction = Callable[[], tuple[str, str]]  # (settings.rejected_action, rejected_folder)


class CompareView(QWidget):
    close_requested = Signal()
    focused_row_changed = Signal(object)  # the GridRow now focused (None: nothing shown)
    decisions_written = Signal(list)  # content ids whose review state changed
    message_posted = Signal(str)

    def __init__(self, sessions: Sessions, blur: BlurPolicy,
                 thumbnails: Any | None = None, *, keyboard: bool = True,
                 rejected_action: RejectedAction | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self._sessions = sessions
        self._blur = blur
        self._thumbnails = thumbnails
        self._keyboard = keyboard  # False: the window's registry routes the keys here
        self._rejected_action = rejected_action or (lambda: ("mark", ""))
        self._rows: list[GridRow] = []
        self._focus = 0
        self._peeking = False
        self.zoom = ZoomState(self)

        self.title = QLabel()
        self.title.setObjectName("compareTitle")
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        fit = QPushButton("Fit")
        fit.setToolTip("Fit every picture (Ctrl+0)")
        fit.clicked.connect(self.zoom_fit)
        actual = QPushButton("1:1")
        actual.setToolTip("One picture pixel per screen pixel, in the focused pane (Ctrl+1)")
        actual.clicked.connect(self.zoom_actual)
        for button in (fit, actual):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        hint = QLabel(HINT)
        hint.setObjectName("compareHint")
        hint.setWordWrap(True)
        for label in (self.title, hint):  # long text must not widen the window
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        bar = QHBoxLayout()
        bar.setContentsMargins(8, 4, 8, 0)
        bar.addWidget(self.title, 1)
        bar.addWidget(fit)
        bar.addWidget(actual)
        hint.setContentsMargins(8, 0, 8, 4)

        self.pane_row = QWidget()
        self._pane_layout = QHBoxLayout(self.pane_row)
        self._pane_layout.setContentsMargins(4, 0, 4, 0)
        self._pane_layout.setSpacing(4)
        self.panes: list[ComparePane] = []

        self.fields = CompareFieldsModel(self)
        self.table = QTableView()
        self.table.setObjectName("compareTable")
        self.table.setModel(self.fields)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the panes
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setWordWrap(False)
        self.table.setMinimumWidth(120)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.pane_row)
        splitter.addWidget(self.table)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([3000, 1000])  # the pictures get most of the height
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(hint)
        layout.addWidget(splitter, 1)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    # ================================================================ content

    def show_rows(self, rows: Sequence[GridRow], keeper_image_id: int | None = None,
                  total: int | None = None) -> None:
        """Compare these rows (the first MAX_PANES). `keeper_image_id` is marked as the
        keeper; `total` the size of the family they come from, when larger."""
        self.end_peek()
        self._rows = list(rows)[:MAX_PANES]
        while len(self.panes) > len(self._rows):
            pane = self.panes.pop()
            pane.shutdown()
            pane.deleteLater()
        while len(self.panes) < len(self._rows):
            pane = ComparePane(self._blur, self.zoom, self._thumbnails, self.pane_row)
            pane.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            pane.activated.connect(lambda pane=pane: self.set_focus_index(
                self.panes.index(pane)))
            self._pane_layout.addWidget(pane, 1)
            self.panes.append(pane)
        for pane, row in zip(self.panes, self._rows):
            pane.set_row(row)
            pane.set_keeper(keeper_image_id is not None and row.image_id == keeper_image_id)
        count = len(self._rows)
        more = f" of {total}" if total and total > count else ""
        self.title.setText(f"Comparing {count}{more} pictures")
        self.zoom.fit()
        self._focus = 0
        self._update_focus()
        self._load_fields()

    def rows(self) -> list[GridRow]:
        return list(self._rows)

    def focused_index(self) -> int:
        return self._focus

    def focused_row(self) -> GridRow | None:
        return self._rows[self._focus] if self._rows else None

    def focused_image_id(self) -> int | None:
        row = self.focused_row()
        return row.image_id if row is not None else None

    def set_focus_index(self, index: int) -> None:
        if not self._rows:
            return
        self.end_peek()
        self._focus = index % len(self._rows)
        self._update_focus()

    def move_focus(self, step: int) -> None:
        self.set_focus_index(self._focus + step)

    def refresh(self) -> None:
        """Re-read the rows (a decision, an undo, an analysis result changed them)."""
        if not self._rows:
            return
        with self._sessions() as session:
            fresh = {row.image_id: row for row in queries.rows_by_image_ids(
                session, [row.image_id for row in self._rows])}
        self._rows = [fresh.get(row.image_id, row) for row in self._rows]
        for pane, row in zip(self.panes, self._rows):
            pane.set_row(row)
        self._load_fields()

    def clear(self) -> None:
        """Compare nothing: the panes (and the pictures they decoded) go."""
        self.end_peek()
        self._rows = []
        while self.panes:
            pane = self.panes.pop()
            pane.shutdown()
            pane.deleteLater()
        self.fields.set_images([], {})
        self.title.clear()

    def shutdown(self) -> None:
        for pane in self.panes:
            pane.shutdown()

    def _update_focus(self) -> None:
        for index, pane in enumerate(self.panes):
            pane.set_focused(index == self._focus)
        row = self.focused_row()
        if row is not None:
            self.title.setToolTip(escaped_rich_text(row.path))
        self.focused_row_changed.emit(row)

    def _load_fields(self) -> None:
        with self._sessions() as session:
            facts = family_db.compare_facts(session, [row.image_id for row in self._rows])
        self.fields.set_images(self._rows, facts)

    # ================================================================ review

    def decide_focused(self, decision: str) -> bool:
        row = self.focused_row()
        if row is None or row.content_id is None:
            return False
        return self._decide([row.content_id], decision, f"{decision} {row.name}")

    def rate_focused(self, rating: int) -> bool:
        row = self.focused_row()
        if row is None or row.content_id is None:
            return False
        with write_transaction(self._sessions) as session:
            group = review.set_rating(session, [row.content_id], rating)
        self._after([row.content_id])
        self.message_posted.emit(f"Rated {rating}" if rating else "Rating cleared")
        return group is not None

    def reject_others(self) -> bool:
        """Keep the focused picture: reject every other one shown, as one undo step."""
        row = self.focused_row()
        if row is None:
            return False
        others = sorted({r.content_id for r in self._rows
                         if r.content_id is not None and r.content_id != row.content_id})
        if not others:
            self.message_posted.emit("Nothing else to reject")
            return False
        return self._decide(others, "rejected",
                            f"kept {row.name}, rejected {len(others)} other(s)")

    def accept_all(self) -> bool:
        ids = sorted({r.content_id for r in self._rows if r.content_id is not None})
        return self._decide(ids, "accepted", f"accepted all {len(ids)}")

    def _decide(self, content_ids: list[int], decision: str, done: str) -> bool:
        action, folder = self._rejected_action()
        result = family_ops.decide(self._sessions, content_ids, decision, action, folder)
        self._after(content_ids)
        for error in result.errors:
            self.message_posted.emit(error)
        self.message_posted.emit(done[0].upper() + done[1:] if result.log_group is not None
                                 else f"Already {decision}")
        return result.log_group is not None

    def _after(self, content_ids: list[int]) -> None:
        self.refresh()
        self.decisions_written.emit(sorted(set(content_ids)))

    # ================================================================ view

    def zoom_fit(self) -> None:
        self.zoom.fit()

    def zoom_actual(self) -> None:
        """1:1 in the focused pane; the others follow at the same framing."""
        if self.panes:
            pane = self.panes[self._focus]
            self.zoom.set(pane.one_to_one_zoom(), self.zoom.centre)

    def zoom_by(self, factor: float) -> None:
        if self.panes:
            pane = self.panes[self._focus]
            pane.zoom_at(QPointF(pane.width() / 2, pane.height() / 2), self.zoom.zoom * factor)

    def peek(self, pressed: bool) -> None:
        """Space held: the focused picture clear (BlurPolicy.peek), the others unchanged."""
        row = self.focused_row()
        if pressed and row is not None:
            self._peeking = True
            self._blur.peek(row.image_id)
        else:
            self.end_peek()

    def end_peek(self) -> None:
        if self._peeking:
            self._peeking = False
            self._blur.end_peek()

    # ================================================================ keys

    def focusNextPrevChild(self, next: bool) -> bool:
        """Tab / Shift+Tab move between the panes, never out of the view."""
        if self._rows:
            self.move_focus(1 if next else -1)
            return True
        return super().focusNextPrevChild(next)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self._handle_key(event):
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if self._keyboard and event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self.peek(False)
            event.accept()
            return
        super().keyReleaseEvent(event)

    def _handle_key(self, event: QKeyEvent) -> bool:
        key, modifiers = event.key(), event.modifiers()
        ctrl = bool(modifiers & Qt.KeyboardModifier.ControlModifier)
        shift = bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
        if ctrl and key == Qt.Key.Key_0:
            self.zoom_fit()
            return True
        if ctrl and key == Qt.Key.Key_1:
            self.zoom_actual()
            return True
        if key == Qt.Key.Key_Backtab:
            self.move_focus(-1)
            return True
        if not self._keyboard:
            return False  # the window's registry routes the review keys here
        if key in (Qt.Key.Key_Right, Qt.Key.Key_Left):
            self.move_focus(1 if key == Qt.Key.Key_Right else -1)
        elif key == Qt.Key.Key_Escape:
            self.close_requested.emit()
        elif key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self.peek(True)
        elif key == Qt.Key.Key_X and shift:
            self.reject_others()
        elif key == Qt.Key.Key_P and shift:
            self.accept_all()
        elif key == Qt.Key.Key_P:
            self.decide_focused("accepted")
        elif key == Qt.Key.Key_X:
            self.decide_focused("rejected")
        elif key == Qt.Key.Key_U:
            self.decide_focused("none")
        elif Qt.Key.Key_0 <= key <= Qt.Key.Key_5 and not ctrl:
            self.rate_focused(int(key) - int(Qt.Key.Key_0))
        else:
            return False
        return True
