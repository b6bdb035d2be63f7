"""The real main window, driven by keys offscreen: every review key changes the database as
expected, auto-advance, undo/redo, filters, multi-selection, live folder updates."""

from __future__ import annotations

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
from PySide6.QtCore import QItemSelectionModel, Qt
from sqlalchemy import select

from db import review
from db.engine import session_factory
from db.schema import Image

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

    def run(self, stop, wake, until_empty=False, between_batches=None):
        from db.schema import Content

        cid = None
        while cid is None and not stop.wait(0.02):  # the scan runs at the same time
            with self._sessions() as session:
                cid = session.scalar(select(Image.content_id).where(Image.name == NEWEST))
        from db.transaction import write_transaction

        # The project's write helper, as the real runner: a plain session that reads, then
        # writes while the scan holds the lock gets SQLite's "database is locked" at once.
        with write_transaction(self._sessions) as session:
            session.get(Content, cid).flagged = True
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
        label = app.window.status.analysis_label
        qtbot.waitUntil(lambda: label.text() == "Analysis up to date", timeout=10_000)
        assert "1 analysed" in label.toolTip()
        assert app.blur.needs_cover(app.model.grid_row(0))
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()


def test_the_apps_analysis_takes_the_pictures_its_scan_decoded(qtbot, tmp_path, image_folder):
    """The real runner with the bundled nsfw-default: the first scan's pictures are handed to
    the analysis (library.handoff) instead of being decoded again."""
    from library.settings import Settings

    app, engine = build_app(qtbot, tmp_path, [image_folder], expect_rows=N_IMAGES,
                            analysis=True, settings=Settings(enabled_analysers=["nsfw-default"]))
    try:
        label = app.window.status.analysis_label
        qtbot.waitUntil(lambda: label.text() == "Analysis up to date", timeout=60_000)
        assert f"{N_IMAGES} analysed" in label.toolTip()
        stats = app.pictures.stats
        assert stats.offered == N_IMAGES
        # Every content asked once; all handed on unless the machine was so slow that the
        # models loaded after pictures expired.
        assert stats.taken + stats.missed == N_IMAGES and stats.taken > 0
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()


# ---------------------------------------------------------------- first-user polish


def test_the_grid_has_the_keyboard_right_after_start(qtbot, gentriage):
    """Review keys work without clicking first: the grid, not the filter field, has focus."""
    from PySide6.QtWidgets import QApplication

    qtbot.waitUntil(lambda: QApplication.focusWidget() is gentriage.view, timeout=5_000)
    assert not gentriage.window.filter_bar.query_edit.hasFocus()


def test_the_window_fits_a_1280_by_800_screen_with_the_details_pane_whole(qtbot, gentriage):
    window = gentriage.window
    # Nothing may force the window wider than a small laptop screen leaves for it.
    assert window.minimumSizeHint().width() <= 1000
    window.resize(1216, 736)  # what _fit_to_screen picks on a 1280x800 screen
    qtbot.waitUntil(lambda: window.width() == 1216)
    details = window.details
    right_edge = details.mapTo(window, details.rect().topRight()).x()
    assert right_edge < window.width()  # not pushed off the window's right side
    assert details.width() >= 260
    for button in (details.copy_prompt_button, details.copy_seed_button,
                   details.open_folder_button):  # every button whole, none clipped
        corner = button.mapTo(details, button.rect().bottomRight())
        assert corner.x() <= details.width() and button.width() >= button.sizeHint().width()
    sizes = window.splitter.sizes()
    assert sizes[1] > sizes[0] and sizes[1] > sizes[2]  # the grid gets the most room


def test_side_panes_take_a_sensible_share_of_any_screen():
    from desktop.main_window import MainWindow

    small, large = MainWindow._pane_widths(1216), MainWindow._pane_widths(1824)
    assert sum(small) == 1216 and 170 <= small[0] <= 240 and 280 <= small[2] <= 460
    assert large[1] > small[1] + 350  # a bigger screen mostly widens the grid


def test_an_empty_library_says_how_to_add_a_folder(qtbot, tmp_path, image_folder):
    from PySide6.QtWidgets import QApplication

    app, engine = build_app(qtbot, tmp_path, [])
    try:
        window = app.window
        assert window.stack.currentWidget() is window.empty_page
        assert "Add folder" in window.empty_page.add_button.text()
        qtbot.waitUntil(lambda: QApplication.focusWidget() is window.empty_page.add_button)
        press(qtbot, app, Qt.Key.Key_Return)  # no large preview of nothing
        assert window.stack.currentWidget() is window.empty_page
        window.add_folder(str(image_folder))
        assert window.stack.currentWidget() is app.view
        qtbot.waitUntil(lambda: app.model.rowCount() == N_IMAGES, timeout=20_000)
        assert QApplication.focusWidget() is app.view
    finally:
        app.scanner.wait(10)
        app.shutdown()
        app.window.close()
        engine.dispose()


def test_closing_the_help_overlay_gives_the_keys_back_to_the_grid(qtbot, gentriage):
    from PySide6.QtWidgets import QApplication

    window = gentriage.window
    qtbot.waitUntil(lambda: QApplication.focusWidget() is gentriage.view)
    window.help_overlay.show_overlay()
    qtbot.keyClick(window.help_overlay, Qt.Key.Key_Escape)
    assert not window.help_overlay.isVisible()
    assert QApplication.focusWidget() is gentriage.view  # not the filter field
    press(qtbot, gentriage, Qt.Key.Key_P)
    assert decisions(gentriage)[NEWEST] == "accepted"
    assert "p" not in window.filter_bar.query_edit.text()


def test_help_overlay_columns_list_every_command_once(qtbot, gentriage):
    html = gentriage.window.help_overlay.render_html()
    for spec in gentriage.window.registry.specs():
        assert html.count(f"<td style='padding:2px 0'>{spec.text}<") == 1, spec.text
    assert html.count("<table cellspacing='0'>") == 2  # one table per column: keys align


def test_status_bar_while_indexing_and_no_noise_at_start(qtbot, tmp_path, image_folder,
                                                         monkeypatch):
    from desktop.status_bar import StatusBar

    posted: list[str] = []
    scan_lines: list[str] = []
    original_post, original_started = StatusBar.post, StatusBar.show_scan_started

    def started(self, folders):
        original_started(self, folders)
        scan_lines.append(self.scan_label.text())

    monkeypatch.setattr(StatusBar, "post",
                        lambda self, text: (posted.append(text), original_post(self, text)))
    monkeypatch.setattr(StatusBar, "show_scan_started", started)
    app, engine = build_app(qtbot, tmp_path, [], watch=False)
    try:
        status = app.window.status
        assert posted == []  # nothing to say yet: no "Auto-advance on" at start
        app.window.add_folder(str(image_folder))

        def indexed() -> None:  # asserting: a timeout shows what was posted instead
            assert f"Indexed {N_IMAGES} new or changed image(s)" in posted, posted

        qtbot.waitUntil(indexed, timeout=20_000)
        assert scan_lines and set(scan_lines) == {"Indexing outputs…"}  # said while it ran
        app.scanner.wait(10)
        qtbot.waitUntil(lambda: status.scan_label.text() == "", timeout=5_000)  # cleared
    finally:
        app.scanner.wait(10)
        app.shutdown()
        app.window.close()
        engine.dispose()


def test_analysis_progress_reads_as_one_line():
    from types import SimpleNamespace

    from desktop.status_bar import describe_progress

    def progress(**kw):
        return SimpleNamespace(**{"done": 3, "queued": 0, "images_per_s": 0.0,
                                  "device": "cpu", "paused": False, **kw})

    assert describe_progress(progress(queued=40, images_per_s=2.54)) == \
        "Analysing: 3 done, 40 to go · 2.5 img/s"
    assert describe_progress(progress()) == "Analysis up to date"
    assert describe_progress(progress(queued=7, paused=True)) == "Analysis paused · 7 waiting"


def test_details_wrap_long_prompts_and_paths_without_sideways_scrolling(qtbot):
    from desktop.details import ZERO_WIDTH_SPACE, DetailsPane, ImageDetails

    pane = DetailsPane()
    qtbot.addWidget(pane)
    long_path = "/outputs/" + "very_long_folder_name_without_spaces" * 6
    details = ImageDetails(1, long_path + "/x.png", "x" * 120 + ".png", 1000, 0, "ok", None,
                           generation={"prompt": "a cat, " * 80, "cfg_scale": 7.0,
                                       "seed": 1234})
    pane.show_details(details)
    pane.resize(300, 600)
    pane.show()
    qtbot.waitExposed(pane)
    assert pane.text.minimumSizeHint().width() < 280  # nothing unbreakable widens it
    assert ZERO_WIDTH_SPACE in pane.text.text()
    assert "CFG scale" in pane.text.text() and "Unreviewed" in pane.text.text()
    assert pane.copy_prompt_button.isEnabled() and pane.copy_seed_button.isEnabled()


def test_default_window_size_suits_small_and_large_screens():
    from desktop.main_window import default_window_size

    assert default_window_size(1280, 800) == (1216, 736)
    width, height = default_window_size(1920, 1080)
    assert 1500 <= width <= 1700 and 900 <= height <= 1000
    assert default_window_size(3840, 2160)[0] < 3840 * 0.9


def test_a_missing_folder_is_reported_over_the_open_window(qtbot, gentriage, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning",
                        lambda parent, title, text, *a: shown.append((parent, title, text)))
    gentriage.window.report_missing_folders(["/no/such/outputs"])
    parent, title, text = shown[0]
    assert parent is gentriage.window and title == "Folder not found"
    assert "/no/such/outputs" in text and "other folders are open" in text
    assert "/no/such/outputs" in gentriage.window.status.currentMessage()


def test_reopening_a_library_selects_the_first_image_so_keys_work(qtbot, tmp_path,
                                                                    image_folder):
    first, engine = build_app(qtbot, tmp_path, [image_folder], expect_rows=N_IMAGES)
    first.shutdown()
    first.window.close()
    engine.dispose()
    app, engine = build_app(qtbot, tmp_path, [])  # the remembered folder, already indexed
    try:
        qtbot.waitUntil(lambda: app.model.rowCount() == N_IMAGES, timeout=10_000)
        qtbot.waitUntil(lambda: current_name(app) == NEWEST, timeout=5_000)
        app.window.activateWindow()
        qtbot.waitUntil(app.window.isActiveWindow, timeout=5_000)
        press(qtbot, app, Qt.Key.Key_P)
        assert decisions(app)[NEWEST] == "accepted"
    finally:
        app.scanner.wait(10)
        app.shutdown()
        app.window.close()
        engine.dispose()
