"""ReviewController: decisions are durable before the cursor moves; auto-advance wraps;
rejected files are moved (per settings) in the decision's undo group."""

from __future__ import annotations

from pathlib import Path

from fixtures_app import (  # noqa: F401 - fixtures
    N_IMAGES,
    build_app,
    current_name,
    decisions,
    gentriage,
    image_folder,
    names_in_view,
)
from PySide6.QtCore import Qt
from sqlalchemy import select

from db.engine import session_factory
from db.schema import Content, Image
from library.settings import Settings


def test_the_decision_is_committed_before_the_cursor_moves(qtbot, gentriage):
    seen_at_move: list[dict[str, str]] = []
    selection = gentriage.view.selectionModel()
    selection.currentChanged.connect(lambda *_: seen_at_move.append(decisions(gentriage)))
    first = current_name(gentriage)
    gentriage.window.controller.decide("rejected")
    assert seen_at_move, "the cursor did not move"
    assert seen_at_move[0][first] == "rejected"  # another connection already sees it


def test_auto_advance_wraps_to_the_first_unreviewed_and_reports_when_done(qtbot, gentriage):
    controller = gentriage.window.controller
    controller.select_row(N_IMAGES - 1)
    controller.decide("accepted")
    assert current_name(gentriage) == names_in_view(gentriage)[0]  # wrapped round
    for _ in range(N_IMAGES - 1):
        controller.decide("accepted")
    messages: list[str] = []
    controller.message_posted.connect(messages.append)
    controller.select_row(3)
    controller.decide("rejected")
    assert set(decisions(gentriage).values()) == {"accepted", "rejected"}
    assert current_name(gentriage) == names_in_view(gentriage)[3]
    assert any("reviewed" in m for m in messages)


def test_deciding_the_same_again_changes_nothing_and_adds_no_history(qtbot, gentriage):
    controller = gentriage.window.controller
    controller.set_auto_advance(False)
    assert controller.decide("accepted")
    assert not controller.decide("accepted")
    assert controller.undo()
    assert set(decisions(gentriage).values()) == {"none"}
    assert not controller.undo()  # only one step existed


def test_rejected_files_move_to_the_folder_and_undo_brings_them_back(qtbot, tmp_path,
                                                                      image_folder):
    rejected = tmp_path / "rejected"
    settings = Settings(rejected_action="move", rejected_folder=str(rejected))
    app, engine = build_app(qtbot, tmp_path, [image_folder], settings=settings,
                            expect_rows=N_IMAGES)
    try:
        name = current_name(app)
        qtbot.keyClick(app.view, Qt.Key.Key_X)
        assert not (image_folder / name).exists()
        assert (rejected / name).exists()
        with session_factory(engine)() as session:
            path = session.scalar(select(Image.path).where(Image.name == name))
        assert Path(path) == rejected / name  # the row follows the file
        qtbot.keyClick(app.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        assert (image_folder / name).exists() and not (rejected / name).exists()
        with session_factory(engine)() as session:
            image = session.scalar(select(Image).where(Image.name == name))
            assert Path(image.path) == image_folder / name
            assert session.get(Content, image.content_id).decision == "none"
        assert current_name(app) == name  # undo shows what it changed
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()
