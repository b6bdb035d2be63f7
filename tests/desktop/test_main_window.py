"""The real main window, driven by keys offscreen: every review key changes the database as
expected, auto-advance, undo/redo, filters, multi-selection, live folder updates."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from db import review
from db.engine import session_factory
from db.schema import Image
from sqlalchemy import select
from fixtures_app import (  # noqa: F401 - fixtures
    N_IMAGES,
    build_app,
    current_name,
    decisions,
    gentriage,
    image_folder,
    make_images,
    names_in_view,
    ratings,
)

NEWEST = f"gen_{N_IMAGES - 1:03d}.png"


def press(qtbot, app, key, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(app.view, key, modifier)


def test_first_page_shows_newest_first_with_the_grid_focused(gentriage):
    assert names_in_view(gentriage)[0] == NEWEST
    assert current_name(gentriage) == NEWEST
    assert gentriage.window.filter_bar.current_filter().unreviewed_first


def test_accept_reject_clear_are_committed_and_auto_advance(qtbot, gentriage):
    press(qtbot, gentriage, Qt.Key.Key_P)
    assert decisions(gentriage)[NEWEST] == "accepted"  # committed: read on a new session
    assert current_name(gentriage) == "gen_006.png"  # the next unreviewed image
    press(qtbot, gentriage, Qt.Key.Key_X)
    assert decisions(gentriage)["gen_006.png"] == "rejected"
    assert current_name(gentriage) == "gen_005.png"
    press(qtbot, gentriage, Qt.Key.Key_Left)
    press(qtbot, gentriage, Qt.Key.Key_U)
    assert decisions(gentriage)["gen_006.png"] == "none"
    assert current_name(gentriage) == "gen_006.png"  # clearing does not advance


def test_auto_advance_skips_reviewed_images_and_can_be_turned_off(qtbot, gentriage):
    with session_factory(gentriage.engine)() as session:  # gen_006 decided elsewhere (CLI)
        cid = session.scalar(select(Image.content_id).where(Image.name == "gen_006.png"))
        review.set_decision(session, [cid], "accepted", source="cli")
        session.commit()
    gentriage.model.refresh_contents([cid])
    press(qtbot, gentriage, Qt.Key.Key_P)
    assert current_name(gentriage) == "gen_005.png"
    press(qtbot, gentriage, Qt.Key.Key_A)  # toggle auto-advance off
    assert not gentriage.window.controller.auto_advance
    press(qtbot, gentriage, Qt.Key.Key_X)
    assert decisions(gentriage)["gen_005.png"] == "rejected"
    assert current_name(gentriage) == "gen_005.png"


def test_ratings_and_navigation_keys(qtbot, gentriage):
    press(qtbot, gentriage, Qt.Key.Key_4)
    assert ratings(gentriage)[NEWEST] == 4
    press(qtbot, gentriage, Qt.Key.Key_Right)
    assert current_name(gentriage) == "gen_006.png"
    press(qtbot, gentriage, Qt.Key.Key_J)  # J next, K previous: the Gmail/vim convention
    assert current_name(gentriage) == "gen_005.png"
    press(qtbot, gentriage, Qt.Key.Key_5)
    press(qtbot, gentriage, Qt.Key.Key_K)
    assert current_name(gentriage) == "gen_006.png"
    press(qtbot, gentriage, Qt.Key.Key_0)
    assert ratings(gentriage) == {**{f"gen_{i:03d}.png": 0 for i in range(N_IMAGES)},
                                  NEWEST: 4, "gen_005.png": 5}


def test_undo_redo_many_steps_including_a_cli_decision(qtbot, gentriage):
    with session_factory(gentriage.engine)() as session:
        cid = session.scalar(select(Image.content_id).where(Image.name == "gen_000.png"))
        review.set_decision(session, [cid], "rejected", source="cli")
        session.commit()
    press(qtbot, gentriage, Qt.Key.Key_P)
    press(qtbot, gentriage, Qt.Key.Key_P)
    press(qtbot, gentriage, Qt.Key.Key_3)
    ctrl = Qt.KeyboardModifier.ControlModifier
    for _ in range(3):
        press(qtbot, gentriage, Qt.Key.Key_Z, ctrl)
    state = decisions(gentriage)
    assert state[NEWEST] == "none" and state["gen_006.png"] == "none"
    assert state["gen_000.png"] == "rejected"
    press(qtbot, gentriage, Qt.Key.Key_Z, ctrl)  # the CLI's decision is undone too
    assert decisions(gentriage)["gen_000.png"] == "none"
    press(qtbot, gentriage, Qt.Key.Key_Z, ctrl | Qt.KeyboardModifier.ShiftModifier)
    press(qtbot, gentriage, Qt.Key.Key_Z, ctrl | Qt.KeyboardModifier.ShiftModifier)
    state = decisions(gentriage)
    assert state["gen_000.png"] == "rejected" and state[NEWEST] == "accepted"
    assert state["gen_006.png"] == "none"


def test_decision_applies_to_the_whole_multi_selection(qtbot, gentriage):
    selection = gentriage.view.selectionModel()
    for row in (1, 2, 4):
        selection.select(gentriage.model.index(row, 0),
                         QItemSelectionModel.SelectionFlag.Select)
    press(qtbot, gentriage, Qt.Key.Key_X)
    state = decisions(gentriage)
    chosen = {names_in_view(gentriage)[r] for r in (0, 1, 2, 4)}
    assert {n for n, d in state.items() if d == "rejected"} == chosen
    # One undo step reverses the whole selection.
    press(qtbot, gentriage, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert set(decisions(gentriage).values()) == {"none"}


def test_filters_change_the_visible_rows(qtbot, gentriage):
    press(qtbot, gentriage, Qt.Key.Key_P)
    press(qtbot, gentriage, Qt.Key.Key_P)
    bar = gentriage.window.filter_bar
    bar.review_combo.setCurrentIndex(bar.review_combo.findText("Accepted"))
    assert sorted(names_in_view(gentriage)) == ["gen_006.png", NEWEST]
    assert "is:accepted" in bar.query_edit.text()  # widgets → text
    bar.query_edit.setText("is:unreviewed sort:name")
    bar.apply_text()
    assert names_in_view(gentriage) == [f"gen_{i:03d}.png" for i in range(N_IMAGES - 2)]
    assert bar.review_combo.currentText() == "Unreviewed"  # text → widgets
    bar.query_edit.setText("is:nonsense")
    assert not bar.apply_text()
    assert bar.error_label.isVisibleTo(bar) and "nonsense" in bar.error_label.text()
    assert len(names_in_view(gentriage)) == N_IMAGES - 2  # a bad filter changes nothing


def test_ctrl_f_focuses_search_and_typing_there_does_not_review(qtbot, gentriage):
    press(qtbot, gentriage, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    edit = gentriage.window.filter_bar.query_edit
    assert edit.hasFocus()
    qtbot.keyClicks(edit, " px")
    assert set(decisions(gentriage).values()) == {"none"}


def test_help_overlay_lists_the_current_keys(qtbot, gentriage):
    press(qtbot, gentriage, Qt.Key.Key_Question)
    overlay = gentriage.window.help_overlay
    assert overlay.isVisible()
    html = overlay.render_html()
    assert "Accept" in html and "Ctrl+Z" in html
    qtbot.keyClick(overlay, Qt.Key.Key_Escape)
    assert not overlay.isVisible()


def test_enter_opens_the_full_view_and_esc_returns(qtbot, gentriage):
    press(qtbot, gentriage, Qt.Key.Key_Return)
    assert gentriage.window.is_full_view()
    assert gentriage.full_view.row.name == NEWEST
    qtbot.keyClick(gentriage.full_view, Qt.Key.Key_Escape)
    assert not gentriage.window.is_full_view()


def test_space_held_peeks_at_the_current_image_only_while_held(qtbot, gentriage):
    blur = gentriage.blur
    image_id = gentriage.window.current_image_id()
    qtbot.keyPress(gentriage.view, Qt.Key.Key_Space)
    assert blur.peeking_image_id == image_id
    qtbot.keyRelease(gentriage.view, Qt.Key.Key_Space)
    assert blur.peeking_image_id is None


def test_a_file_dropped_into_a_watched_folder_appears(qtbot, tmp_path, image_folder):
    pytest.importorskip("library.watch")
    app, engine = build_app(qtbot, tmp_path, [image_folder], watch=True, expect_rows=N_IMAGES)
    try:
        with qtbot.waitSignal(app.watcher.images_indexed, timeout=20_000):
            make_images(image_folder, 1, start=50)
        qtbot.waitUntil(lambda: "gen_050.png" in names_in_view(app), timeout=20_000)
        assert app.model.rowCount() == N_IMAGES + 1
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()


def test_the_window_survives_an_analysis_runner_that_cannot_start(qtbot, tmp_path,
                                                                   image_folder):
    def broken_runner(*_args, **_kwargs):
        raise ImportError("torch is not installed")

    app, engine = build_app(qtbot, tmp_path, [image_folder], expect_rows=N_IMAGES,
                            analysis=True, runner_factory=broken_runner)
    try:
        label = app.window.status.analysis_label
        qtbot.waitUntil(lambda: label.text() == "Analysis unavailable", timeout=10_000)
        assert "torch is not installed" in label.toolTip()
        press(qtbot, app, Qt.Key.Key_P)  # review still works
        assert decisions(app)[NEWEST] == "accepted"
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()


class _FlaggingRunner:
    """Stands in for library.analysis.AnalysisRunner: flags the newest image, reports it."""

    def __init__(self, sessions, _models, _settings, _device, on_results, on_progress,
                 on_status):
        self._sessions, self._on_results, self._on_progress = sessions, on_results, on_progress
        self.ready, self.pipeline = ["nsfw-default"], type("P", (), {"device": "cpu"})()

    def load(self):
        return self

    def run(self, stop, wake, until_empty=False):
        from db.schema import Content

        cid = None
        while cid is None and not stop.wait(0.02):  # the scan runs at the same time
            with self._sessions() as session:
                cid = session.scalar(select(Image.content_id).where(Image.name == NEWEST))
        with self._sessions() as session:
            session.get(Content, cid).flagged = True
            session.commit()
        self._on_results([cid])
        self._on_progress(type("Progress", (), dict(done=1, queued=0, images_per_s=2.0,
                                                    device="cpu", paused=False))())
        stop.wait()

    def pause(self): ...
    def resume(self): ...
    def cancel(self): ...
    def prioritise(self, _ids): ...


def test_analysis_results_repaint_the_grid(qtbot, tmp_path, image_folder):
    app, engine = build_app(qtbot, tmp_path, [image_folder], expect_rows=N_IMAGES,
                            analysis=True, runner_factory=_FlaggingRunner)
    try:
        qtbot.waitUntil(lambda: app.model.grid_row(0).flagged, timeout=10_000)
        assert "1 done / 0 queued" in app.window.status.progress_label.text()
        assert app.blur.needs_cover(app.model.grid_row(0))
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()
