"""The settings dialog: values persist to the shared settings file, new thresholds recompute
flags off the GUI thread, blur and auto-advance apply at once, keys can be rebound."""

from __future__ import annotations

import threading

from fixtures_app import (  # noqa: F401 - fixtures
    N_IMAGES,
    build_app,
    current_name,
    decisions,
    gentriage,
    image_folder,
)
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from sqlalchemy import select

from db.engine import session_factory
from db.schema import AnalysisResult, Content
from desktop.settings_dialog import SettingsDialog
from library.settings import Settings


def _give_nsfw_scores(app, score: float) -> list[int]:
    with session_factory(app.engine)() as session:
        ids = list(session.scalars(select(Content.id).order_by(Content.id)))
        for cid in ids[:3]:
            session.add(AnalysisResult(content_id=cid, analyser="nsfw-default", version="t",
                                       label="sfw", score=score,
                                       scores={"nsfw": score, "sfw": 1 - score}))
        session.commit()
    return ids[:3]


def test_new_thresholds_recompute_flags_off_the_gui_thread_and_persist(qtbot, gentriage):
    flagged_ids = _give_nsfw_scores(gentriage, 0.6)  # below the default 0.7
    window = gentriage.window
    dialog = SettingsDialog(window.settings, window.registry)
    qtbot.addWidget(dialog)
    dialog.threshold_spins["nsfw_default"].setValue(0.5)
    dialog.blur_mode_combo.setCurrentIndex(dialog.blur_mode_combo.findData("cover"))
    dialog.auto_advance_box.setChecked(False)
    threads: list[str] = []
    gentriage.flags.flags_recomputed.connect(
        lambda _ids: threads.append(threading.current_thread().name))
    original_run = gentriage.flags._run

    def spy(*args):
        threads.append(threading.current_thread().name)
        original_run(*args)

    gentriage.flags._run = spy
    with qtbot.waitSignal(gentriage.flags.flags_recomputed, timeout=10_000) as blocker:
        window.apply_settings(dialog.result_settings())
    assert sorted(blocker.args[0]) == flagged_ids
    assert threads[0] == "gentriage-flags"  # update_flags ran on the worker thread
    with session_factory(gentriage.engine)() as session:
        assert set(session.scalars(select(Content.id).where(Content.flagged))) == \
            set(flagged_ids)
    saved = Settings.load(gentriage.locations.settings)
    assert saved.thresholds.nsfw_default == 0.5
    assert saved.blur_mode == "cover" and not saved.auto_advance
    assert gentriage.blur.mode == "cover"
    assert not window.controller.auto_advance
    assert not window.registry.action("review.auto_advance").isChecked()


def test_an_unchanged_dialog_recomputes_nothing(qtbot, gentriage):
    window = gentriage.window
    dialog = SettingsDialog(window.settings, window.registry)
    qtbot.addWidget(dialog)
    with qtbot.assertNotEmitted(gentriage.flags.flags_recomputed, wait=200):
        window.apply_settings(dialog.result_settings())


def test_a_rebound_key_works_and_is_remembered(qtbot, gentriage):
    window = gentriage.window
    dialog = SettingsDialog(window.settings, window.registry)
    qtbot.addWidget(dialog)
    dialog.key_edits["review.accept"].setKeySequence(QKeySequence("Y"))
    for action_id, keys in dialog.shortcut_choices().items():
        window.registry.rebind(action_id, keys)
    new = dialog.result_settings()
    new.shortcuts = window.registry.overrides()
    window.apply_settings(new)
    name = current_name(gentriage)
    qtbot.keyClick(gentriage.view, Qt.Key.Key_P)  # no longer bound
    assert decisions(gentriage)[name] == "none"
    qtbot.keyClick(gentriage.view, Qt.Key.Key_Y)
    assert decisions(gentriage)[name] == "accepted"
    saved = Settings.load(gentriage.locations.settings)
    assert saved.shortcuts == {"review.accept": ["Y"]}
    assert "shortcuts" not in saved.extra  # a known setting, not an unknown key
    assert "Y" in window.help_overlay.render_html()


def test_move_without_a_folder_is_refused_by_the_dialog(qtbot, gentriage, monkeypatch):
    dialog = SettingsDialog(gentriage.window.settings)
    qtbot.addWidget(dialog)
    dialog.rejected_combo.setCurrentIndex(dialog.rejected_combo.findData("move"))
    assert dialog.validate() is not None
    dialog.rejected_folder_edit.setText("/tmp/rejected")
    assert dialog.validate() is None
    assert dialog.result_settings().rejected_action == "move"


def test_dark_theme_gives_every_widget_a_dark_palette(qapp):
    """Not only the stylesheet: scroll areas, tab pages and group boxes read the palette,
    and with the light one left in place they showed light text on light ground."""
    from desktop.theme import apply_theme, stylesheet

    try:
        assert apply_theme(qapp, "dark") == "dark"
        palette = qapp.palette()
        assert palette.color(palette.ColorRole.Base).lightness() < 60
        assert palette.color(palette.ColorRole.Window).lightness() < 60
        assert palette.color(palette.ColorRole.Text).lightness() > 180
        assert "{themes}" not in qapp.styleSheet()  # image urls point at the real folder
        assert "check.svg" in stylesheet("dark")
        apply_theme(qapp, "light")
        assert qapp.palette().color(palette.ColorRole.Base).lightness() > 200
    finally:
        apply_theme(qapp, "system")


def test_settings_dialog_groups_analysers_and_keeps_thresholds_compact(qtbot):
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    for spin in dialog.threshold_spins.values():
        assert spin.maximumWidth() <= 120
    box = dialog.analyser_boxes["nsfw-default"]
    assert "offline" in box.toolTip()
    assert box.parentWidget().title() == "Analysers"


def test_window_size_and_pane_widths_are_remembered(qtbot, tmp_path, image_folder):
    first, engine = build_app(qtbot, tmp_path, [image_folder], expect_rows=N_IMAGES)
    first.window.resize(780, 560)  # inside the offscreen screen (800x600)
    first.window.splitter.setSizes([170, 330, 280])
    panes = first.window.splitter.sizes()
    first.shutdown()
    first.window.close()  # closeEvent saves the layout
    engine.dispose()
    saved = Settings.load(first.locations.settings)
    assert saved.window["panes"] == panes and "window" not in saved.extra

    second, engine = build_app(qtbot, tmp_path, [image_folder], expect_rows=N_IMAGES,
                               settings=saved)
    try:
        assert (second.window.width(), second.window.height()) == (780, 560)
        assert second.window.splitter.sizes() == panes
    finally:
        second.shutdown()
        second.window.close()
        engine.dispose()
