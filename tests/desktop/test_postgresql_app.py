"""The real window on a PostgreSQL library (a studio's shared database): it opens, scans,
shows and writes decisions like on SQLite; two reviewers — two windows, each with its own
reviewer name — decide side by side, see each other's decisions appear, and each undoes only
their own steps. Skips without PostgreSQL server binaries (tests/postgres_server.py)."""

from __future__ import annotations

import pytest
from fixtures_app import N_IMAGES, build_app, current_name, decisions, make_images
from PySide6.QtCore import Qt
from sqlalchemy import select

from db.engine import session_factory
from db.schema import Content, Image, ReviewLog

CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture
def pg_url(postgres_server):
    if postgres_server is None:
        from postgres_server import missing_reason

        pytest.skip(missing_reason())
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


def _press(qtbot, app, key, modifier=Qt.KeyboardModifier.NoModifier):
    """A key in `app`'s window: the review keys are window shortcuts, so that window is
    made the active one first (two windows are open)."""
    if not app.window.isActiveWindow():
        app.window.activateWindow()
        qtbot.waitUntil(app.window.isActiveWindow, timeout=5_000)
    qtbot.keyClick(app.view, key, modifier)


def _shown_decision(app, name: str) -> str | None:
    for row in range(app.model.rowCount()):
        grid_row = app.model.grid_row(row)
        if grid_row is not None and grid_row.name == name:
            return grid_row.decision
    return None


def _close(*apps) -> None:
    for app, engine in apps:
        app.shutdown()
        app.window.close()
        engine.dispose()


def test_the_window_opens_on_a_postgresql_library_and_writes_decisions(qtbot, tmp_path,
                                                                        pg_url):
    folder = tmp_path / "outputs"
    make_images(folder, N_IMAGES)
    app, engine = build_app(qtbot, tmp_path, [folder], expect_rows=N_IMAGES, database=pg_url)
    try:
        assert engine.dialect.name == "postgresql"
        newest = current_name(app)
        _press(qtbot, app, Qt.Key.Key_P)
        assert decisions(app)[newest] == "accepted"  # committed to the server
        _press(qtbot, app, Qt.Key.Key_Z, CTRL)
        assert decisions(app)[newest] == "none"
    finally:
        _close((app, engine))


def test_two_reviewers_keep_both_decisions_and_each_undoes_their_own(qtbot, tmp_path,
                                                                     pg_url):
    folder = tmp_path / "outputs"
    make_images(folder, N_IMAGES)
    ann = build_app(qtbot, tmp_path / "ann", [folder], expect_rows=N_IMAGES,
                    database=pg_url, reviewer="ann")
    bob = build_app(qtbot, tmp_path / "bob", [folder], expect_rows=N_IMAGES,
                    database=pg_url, reviewer="bob")
    (ann_app, _), (bob_app, _) = ann, bob
    try:
        ann_pick = current_name(ann_app)
        _press(qtbot, ann_app, Qt.Key.Key_P)  # ann accepts the newest picture
        _press(qtbot, bob_app, Qt.Key.Key_Right)
        bob_pick = current_name(bob_app)
        assert bob_pick != ann_pick
        _press(qtbot, bob_app, Qt.Key.Key_X)  # bob rejects the next one

        state = decisions(ann_app)
        assert state[ann_pick] == "accepted" and state[bob_pick] == "rejected"
        # Each window shows the other reviewer's decision (the change-log poll).
        qtbot.waitUntil(lambda: _shown_decision(ann_app, bob_pick) == "rejected",
                        timeout=10_000)
        qtbot.waitUntil(lambda: _shown_decision(bob_app, ann_pick) == "accepted",
                        timeout=10_000)

        _press(qtbot, ann_app, Qt.Key.Key_Z, CTRL)  # ann's undo: her accept only
        state = decisions(ann_app)
        assert state[ann_pick] == "none" and state[bob_pick] == "rejected"
        _press(qtbot, bob_app, Qt.Key.Key_Z, CTRL)  # bob's undo: his reject only
        state = decisions(bob_app)
        assert state[ann_pick] == "none" and state[bob_pick] == "none"
        _press(qtbot, ann_app, Qt.Key.Key_Z, CTRL | Qt.KeyboardModifier.ShiftModifier)
        assert decisions(ann_app)[ann_pick] == "accepted"  # her redo
        assert decisions(ann_app)[bob_pick] == "none"

        with session_factory(ann_app.engine)() as session:
            authors = dict(session.execute(
                select(Image.name, ReviewLog.author)
                .join(Content, Content.id == ReviewLog.content_id)
                .join(Image, Image.content_id == Content.id)
                .where(ReviewLog.source == "app")).all())
        assert authors == {ann_pick: "ann", bob_pick: "bob"}
    finally:
        _close(ann, bob)
