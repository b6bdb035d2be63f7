"""A locked database during review keys (issue 10, item 9): another connection holds the
write lock; the keypress does not block, the change is queued in order, shown as pending,
"database busy" is said, and everything is written once the lock is free. Quitting with a
change still queued waits briefly, then asks. On SQLite and on PostgreSQL (there the lock is
the advisory lock every write transaction takes, and the wait is its lock_timeout)."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from fixtures_app import (  # noqa: F401 - fixtures
    N_IMAGES,
    build_app,
    current_name,
    decisions,
    image_folder,
    names_in_view,
)
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from sqlalchemy import select

from db.engine import session_factory
from db.schema import ReviewLog
from desktop import main_window as main_window_module
from desktop.roles import Role


@pytest.fixture
def gentriage(qtbot, tmp_path, image_folder, library_db):
    """The running app over N_IMAGES images, on each backend."""
    app, engine = build_app(qtbot, tmp_path, [image_folder], expect_rows=N_IMAGES,
                            database=library_db.target)
    yield app
    app.shutdown()
    app.window.close()
    engine.dispose()


class WriteLock:
    """A second connection to the library holding its write lock (as a long scan chunk in
    another process would) until released: SQLite's BEGIN IMMEDIATE, or PostgreSQL's
    advisory lock of write transactions (db.transaction)."""

    def __init__(self, app) -> None:
        self._server = None
        if app.engine.dialect.name == "postgresql":
            from sqlalchemy import create_engine, text
            from sqlalchemy.pool import NullPool

            from db.transaction import POSTGRESQL_WRITE_LOCK

            self._engine = create_engine(app.engine.url, poolclass=NullPool)
            self._server = self._engine.connect()
            self._server.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                 {"key": POSTGRESQL_WRITE_LOCK})
            self._connection = None
            return
        self._connection = sqlite3.connect(app.locations.database, isolation_level=None,
                                           check_same_thread=False, timeout=0)
        self._connection.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self._server is not None:
            self._server.commit()
            self._server.close()
            self._engine.dispose()
            self._server = None
        if self._connection is not None:
            self._connection.execute("COMMIT")
            self._connection.close()
            self._connection = None


@pytest.fixture
def write_lock(gentriage):
    locks: list[WriteLock] = []

    def take() -> WriteLock:
        locks.append(WriteLock(gentriage))
        return locks[-1]

    yield take
    for lock in locks:
        lock.release()


def _index_of(app, name: str):
    return app.model.index(names_in_view(app).index(name))


def _log(app) -> list[tuple[str, str]]:
    """(picture's file name, new decision) of every decision logged, in order."""
    names = {app.model.grid_row(r).content_id: app.model.grid_row(r).name
             for r in range(app.model.rowCount())}
    with session_factory(app.engine)() as session:
        return [(names[cid], value) for cid, value in session.execute(
            select(ReviewLog.content_id, ReviewLog.new_value)
            .where(ReviewLog.field == "decision").order_by(ReviewLog.id))]


def test_decisions_wait_in_order_while_the_database_is_locked(qtbot, gentriage, write_lock):
    window, controller = gentriage.window, gentriage.window.controller
    messages: list[str] = []
    controller.message_posted.connect(messages.append)
    first = current_name(gentriage)
    lock = write_lock()

    qtbot.keyClick(gentriage.view, Qt.Key.Key_P)
    second = current_name(gentriage)
    assert second != first, "the cursor did not move on"
    qtbot.keyClick(gentriage.view, Qt.Key.Key_X)
    qtbot.keyClick(gentriage.view, Qt.Key.Key_Left)
    qtbot.keyClick(gentriage.view, Qt.Key.Key_Left)
    assert current_name(gentriage) == first
    controller.set_auto_advance(False)
    qtbot.keyClick(gentriage.view, Qt.Key.Key_U)  # then clear the first again

    assert set(decisions(gentriage).values()) == {"none"}, "written through the lock?"
    assert controller.pending_count() == 3
    assert any("database busy" in m.lower() for m in messages)
    assert "database busy" in window.status.currentMessage().lower()
    # The grid shows what is waiting, never as saved: the first's latest wish is "clear",
    # the second's rejection is pending and already covers it (the safe direction).
    first_index, second_index = _index_of(gentriage, first), _index_of(gentriage, second)
    assert first_index.data(Role.PendingDecision) == "none"
    assert first_index.data(Role.Decision) == "none"
    assert second_index.data(Role.PendingDecision) == "rejected"
    assert second_index.data(Role.Decision) == "none"
    assert second_index.data(Role.NeedsBlur)
    assert "not saved yet" in second_index.data(Qt.ItemDataRole.ToolTipRole)

    lock.release()
    qtbot.waitUntil(lambda: not controller.has_pending(), timeout=10_000)
    assert decisions(gentriage)[first] == "none"
    assert decisions(gentriage)[second] == "rejected"
    assert _log(gentriage) == [(first, "accepted"), (second, "rejected"), (first, "none")]
    assert second_index.data(Role.PendingDecision) is None
    assert second_index.data(Role.Decision) == "rejected"
    assert "free again" in window.status.currentMessage()


def test_undo_waits_behind_the_decision_it_undoes(qtbot, gentriage, write_lock):
    controller = gentriage.window.controller
    first = current_name(gentriage)
    lock = write_lock()
    qtbot.keyClick(gentriage.view, Qt.Key.Key_P)
    qtbot.keyClick(gentriage.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert controller.pending_count() == 2
    lock.release()
    qtbot.waitUntil(lambda: not controller.has_pending(), timeout=10_000)
    assert decisions(gentriage)[first] == "none"
    assert _log(gentriage) == [(first, "accepted"), (first, "none")]


def test_quitting_waits_for_a_lock_that_is_released_soon(qtbot, gentriage, write_lock,
                                                          monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning",
                        lambda *args, **kwargs: asked.append("asked"))
    first = current_name(gentriage)
    lock = write_lock()
    qtbot.keyClick(gentriage.view, Qt.Key.Key_P)
    assert gentriage.window.controller.has_pending()
    releaser = threading.Timer(0.3, lock.release)  # well inside the quit wait
    releaser.start()
    try:
        gentriage.shutdown()
        assert gentriage.window.close()
    finally:
        releaser.join()
    assert asked == []
    assert decisions(gentriage)[first] == "accepted"


@pytest.mark.parametrize("choice", ["retry", "discard"])
def test_quitting_with_a_change_the_lock_still_keeps_out_asks(qtbot, gentriage, write_lock,
                                                              monkeypatch, choice):
    monkeypatch.setattr(main_window_module, "QUIT_WAIT_MS", 100)
    asked: list[str] = []
    button = {"retry": QMessageBox.StandardButton.Retry,
              "discard": QMessageBox.StandardButton.Discard}[choice]

    def answer(_parent, _title, text, *_args):
        asked.append(text)
        return button

    monkeypatch.setattr(QMessageBox, "warning", answer)
    first = current_name(gentriage)
    lock = write_lock()
    qtbot.keyClick(gentriage.view, Qt.Key.Key_P)
    closed = gentriage.window.close()
    assert len(asked) == 1 and "not saved" in asked[0]
    controller = gentriage.window.controller
    if choice == "retry":
        assert not closed and gentriage.window.isVisible()
        lock.release()
        qtbot.waitUntil(lambda: not controller.has_pending(), timeout=10_000)
        assert decisions(gentriage)[first] == "accepted"
    else:
        assert closed and not controller.has_pending()
        lock.release()
        assert decisions(gentriage)[first] == "none"


def test_a_decision_written_at_once_still_moves_the_cursor_after_the_commit(qtbot, gentriage):
    """Without a lock nothing changes: the change is written before the cursor moves and
    nothing is left pending."""
    first = current_name(gentriage)
    seen: list[str] = []
    gentriage.view.selectionModel().currentChanged.connect(
        lambda *_: seen.append(decisions(gentriage)[first]))
    qtbot.keyClick(gentriage.view, Qt.Key.Key_P)
    assert seen and seen[0] == "accepted"
    assert not gentriage.window.controller.has_pending()
    assert len(names_in_view(gentriage)) == N_IMAGES
