"""The window over a real library: filters the database cannot run, the tag threshold read
at query time, what the details pane says about a flag, and the thumbnail cache kept to what
the library needs."""

from __future__ import annotations

from types import SimpleNamespace

from fixtures_app import (  # noqa: F401 - fixtures
    N_IMAGES,
    current_name,
    gentriage,
    image_folder,
    names_in_view,
)
from PIL import Image as PILImage
from PySide6.QtCore import Qt
from sqlalchemy import select

from db.engine import session_factory
from db.filters import ImageFilter, parse_filter
from db.schema import Content, Image, Tag
from db.transaction import write_transaction
from desktop.details import ZERO_WIDTH_SPACE, ImageDetails, render_html
from library.settings import Thresholds


def _type_filter(qtbot, app, text: str) -> None:
    """Enter a filter in the text field and apply it (what Return or a pause in typing do)."""
    bar = app.window.filter_bar
    bar.query_edit.setText(text)
    bar.apply_text()


# --- filters the database cannot run (issue 11, item 9: the app side) -------------------------

def test_a_filter_that_cannot_run_is_reported_and_the_grid_keeps_its_rows(qtbot, gentriage):
    """Huge numbers and thousands of terms: whether the parser or the database refuses them,
    the bar says why and the grid keeps the last good result (no empty grid, no exception
    escaping a slot: pytest-qt fails the test on one)."""
    bar = gentriage.window.filter_bar
    shown = names_in_view(gentriage)
    for text in ("rating>=" + "9" * 40, "folder-id:" + "9" * 40,
                 " ".join(f'prompt:"w{i}"' for i in range(1500))):
        _type_filter(qtbot, gentriage, text)
        assert bar.error_label.isVisible(), text[:40]
        assert bar.error_label.text()
        assert names_in_view(gentriage) == shown
    _type_filter(qtbot, gentriage, "is:unreviewed")
    assert not bar.error_label.isVisible()
    assert names_in_view(gentriage) == shown  # all are unreviewed


def test_a_query_error_restores_the_widgets_to_the_filter_still_shown(qtbot, gentriage):
    """Past any parser limit (a filter built by the widgets or a saved filter): the database
    refuses it, the message is shown and the bar goes back to what the grid shows."""
    bar, model = gentriage.window.filter_bar, gentriage.model
    before = model.filter
    too_deep = ImageFilter(prompt=tuple(f"w{i}" for i in range(1500)), unreviewed_first=True)
    bar.set_filter(too_deep)
    assert bar.error_label.isVisible()
    assert "cannot be run" in bar.error_label.text()
    assert model.filter == before and model.rowCount() == N_IMAGES
    assert bar.current_filter() == before


def test_the_filter_error_is_plain_text(qtbot, gentriage):
    bar = gentriage.window.filter_bar
    _type_filter(qtbot, gentriage, 'gnerator:<img src="x.png">')
    assert bar.error_label.isVisible()
    assert bar.error_label.textFormat() == Qt.TextFormat.PlainText


# --- the tag threshold is applied when reading (issue 10, item 4) ------------------------------

def _tag(app, name: str, tag: str, score: float) -> None:
    with write_transaction(session_factory(app.engine)) as session:
        content_id = session.scalar(select(Image.content_id).where(Image.name == name))
        session.add(Tag(content_id=content_id, analyser="tagger-jtp", tag=tag, score=score))


def test_a_new_tag_threshold_is_a_new_reading_not_a_model_reload(qtbot, gentriage):
    weak, strong = names_in_view(gentriage)[:2]
    _tag(gentriage, weak, "cat", 0.1)  # stored above the floor, below the default 0.2
    _tag(gentriage, strong, "cat", 0.6)
    restarts: list[object] = []
    # A stand-in worker that records restarts (this app runs without analysis).
    gentriage.analysis = SimpleNamespace(worker=SimpleNamespace(
        restart=lambda *args: restarts.append(args)))
    recomputes: list[object] = []
    real_recompute = gentriage.flags.recompute
    gentriage.flags.recompute = lambda *args: recomputes.append(args)
    try:
        _check_tag_threshold_reading(gentriage, weak, strong, restarts)
        assert recomputes == [], "the tag threshold started a whole-library flag recompute"
    finally:
        gentriage.analysis = None
        gentriage.flags.recompute = real_recompute


def _check_tag_threshold_reading(gentriage, weak: str, strong: str, restarts: list) -> None:
    window = gentriage.window

    window.filter_bar.set_filter(parse_filter("tag:cat"))
    assert names_in_view(gentriage) == [strong]
    window.controller.select_row(0)
    assert "cat" in window.details.text.text()

    new = window.settings.__class__(**{**vars(window.settings),
                                       "thresholds": Thresholds(tagger=0.05)})
    window.apply_settings(new)
    assert restarts == [], "the analysis worker was restarted for a tag threshold"
    assert names_in_view(gentriage) == [weak, strong]  # old images follow, no re-analysis
    assert current_name(gentriage) == strong  # the current image stays current
    window.controller.select_row(0)
    assert "cat" in window.details.text.text()

    back = window.settings.__class__(**{**vars(window.settings),
                                        "thresholds": Thresholds(tagger=0.2)})
    window.apply_settings(back)
    window.filter_bar.set_filter(ImageFilter())
    window.controller.select_row(names_in_view(gentriage).index(weak))
    assert "cat" not in window.details.text.text()  # the details agree with the filter

    moved = window.settings.__class__(**{**vars(window.settings), "device": "cpu"})
    window.apply_settings(moved)
    assert len(restarts) == 1  # (the spy works: a device change does restart it)


# --- the details pane on a flag (issue 10, item 17) --------------------------------------------

def _details(decision: str) -> ImageDetails:
    return ImageDetails(1, "/out/a.png", "a.png", 100, 0, "ok", None, decision=decision,
                        flagged=True, flag_nsfw=True)


def _text(html: str) -> str:
    return html.replace(ZERO_WIDTH_SPACE, "")


def test_the_details_say_what_a_flag_means_for_this_image_now():
    assert "blurred until reviewed" in _text(render_html(_details("none")))
    accepted = _text(render_html(_details("accepted")))
    assert "blurred" not in accepted
    assert "yes (NSFW): accepted, so shown" in accepted
    assert "rejected, so covered" in _text(render_html(_details("rejected")))


def test_accepting_a_flagged_image_updates_what_the_details_say(qtbot, gentriage):
    window = gentriage.window
    name = current_name(gentriage)
    with write_transaction(session_factory(gentriage.engine)) as session:
        content_id = session.scalar(select(Image.content_id).where(Image.name == name))
        content = session.get(Content, content_id)
        content.flagged = content.flag_nsfw = True
    window._on_flags_changed([content_id])
    window.controller.set_auto_advance(False)
    assert "blurred until reviewed" in _text(window.details.text.text())
    qtbot.keyClick(gentriage.view, Qt.Key.Key_P)
    assert "blurred" not in _text(window.details.text.text())
    assert "accepted, so shown" in _text(window.details.text.text())


# --- thumbnails the library no longer needs (issue 10, item 18) ---------------------------------

def test_thumbnails_no_file_needs_are_deleted(qtbot, gentriage, tmp_path):
    cache = gentriage.thumbnail_cache
    stray = "ab" * 32  # left by a crash: no content has it
    cache.save(stray, cache.make_from(PILImage.new("RGB", (8, 8))))
    assert cache.has(stray)
    gentriage.window._thumbnails_pruned = False
    gentriage.window._on_scanner_scan_finished(SimpleNamespace(indexed=0, errors=[]))
    qtbot.waitUntil(lambda: not cache.has(stray), timeout=10_000)

    with session_factory(gentriage.engine)() as session:
        kept = set(session.scalars(select(Content.sha256)))
    qtbot.waitUntil(lambda: all(cache.has(sha) for sha in kept), timeout=10_000)
    folder_id = gentriage.window.sidebar.entries()[0].id
    gentriage.window.remove_folder(folder_id)  # its pictures leave the library
    qtbot.waitUntil(lambda: not any(cache.has(sha) for sha in kept), timeout=10_000)
