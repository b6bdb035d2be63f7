"""Privacy end to end, through the REAL main window (offscreen): a flagged image that no one has
reviewed is never painted unblurred — not in the grid cell as painted, the details-pane
preview, the full view (Enter), the drag image, or a tooltip — and the review keys lift and
restore the cover: P shows it, X covers it, Ctrl+Z goes back, Space held peeks, B (after the
confirmation) lifts the blur for the session. Images in a folder marked sensitive are
blurred until they are analysed.

Every check is on pixels the widgets actually paint (`QWidget.grab` runs their paintEvent,
or the pixmap `startDrag` hands to QDrag), measured against a high-frequency source picture:
a fine checkerboard keeps strong neighbour-to-neighbour contrast at any size the app shows
it, while the blur reduces it to a handful of cells, so "blurred" and "clear" are far apart.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

# The desktop suite's helpers (the real-app builder and the pixel measures) are imported by
# name, as pytest does for tests/desktop itself; appended, so nothing here is shadowed.
_DESKTOP_TESTS = str(Path(__file__).resolve().parents[1] / "desktop")
if _DESKTOP_TESTS not in sys.path:
    sys.path.append(_DESKTOP_TESTS)

from fixtures_app import build_app
from grid_test_helpers import (
    checkerboard,
    high_frequency,
    noise,
    qimage_array,
    wait_for_thumbnails,
)
from PySide6.QtCore import QEvent, QRect, QSize, Qt
from PySide6.QtGui import QDrag, QHelpEvent, QImage
from PySide6.QtWidgets import QMessageBox, QToolTip
from sqlalchemy import select

from db.engine import session_factory
from db.schema import AnalysisResult, Image
from library.settings import Settings

# Neighbour contrast (grid_test_helpers.high_frequency) of the checkerboard as the app shows
# it is in the tens; blurred, it is below 1; a solid cover with its label is a few units.
# Measured on the centre of each picture (badges, the peek hint band and the cover label sit
# elsewhere or are small there).
CLEAR_AT_LEAST = 20.0
COVERED_AT_MOST = 8.0
# A clear picture must also *be* the source: mean absolute grey difference to the source
# resized the same way, out of 255.
SAME_PICTURE_AT_MOST = 40.0

TARGET = "target.png"
HTML_NAME = "<img src='target.png'>.png"  # same bytes as TARGET: the same content
WAIT_MS = 15_000


# ----------------------------------------------------------------------------- set-up

def _write_folder(folder: Path) -> Path:
    """Three clear noise images and the target checkerboard (newest), whose prompt tries to
    smuggle an <img> of itself into any rich-text view; plus a copy under an HTML name."""
    folder.mkdir(parents=True)
    for i in range(3):
        path = folder / f"other_{i}.png"
        noise(256, seed=i + 10).save(path)
        os.utime(path, ns=(1_700_000_000_000_000_000 + i * 10**9,) * 2)
    target = folder / TARGET
    info = PngInfo()
    info.add_text("parameters", f"<img src=\"{target}\"> a checkerboard\nNegative prompt: "
                  "<img src='x.png'>\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, "
                  "Size: 512x512, Model: m")
    checkerboard(512, square=8).save(target, pnginfo=info)
    os.utime(target, ns=(1_700_000_100_000_000_000,) * 2)
    shutil.copy2(target, folder / HTML_NAME)
    return target


def _image_ids(app) -> dict[str, tuple[int, int]]:
    """file name -> (image id, content id)."""
    with session_factory(app.engine)() as session:
        return {name: (iid, cid) for name, iid, cid in session.execute(
            select(Image.name, Image.id, Image.content_id))}


def _flag_as_nsfw(qtbot, app, content_id: int, score: float = 0.99) -> None:
    """What analysis does: a stored nsfw-default result, then the app's own flag recompute
    (the FlagRecomputer thread → window repaint), awaited on its signal."""
    with session_factory(app.engine)() as session:
        session.merge(AnalysisResult(content_id=content_id, analyser="nsfw-default",
                                     version="test", label="nsfw" if score >= 0.5 else "sfw",
                                     score=score, scores={"nsfw": score},
                                     analysed_at=datetime.now(UTC)))
        session.commit()
    with qtbot.waitSignal(app.flags.flags_recomputed, timeout=WAIT_MS) as blocker:
        app.flags.recompute(app.settings.thresholds, app.settings.enabled_analysers)
    assert content_id in blocker.args[0]


# ----------------------------------------------------------------------------- pixels

def _centre(image: QImage) -> QImage:
    w, h = image.width(), image.height()
    return image.copy(QRect(w // 4, h // 4, max(2, w // 2), max(2, h // 2)))


def _grid_cell(qtbot, app, row: int) -> QImage:
    """The thumbnail area of `row`'s cell, as the grid paints it now."""
    view = app.view
    wait_for_thumbnails(qtbot, app.model, [row], timeout=WAIT_MS)
    index = view.model().index(row, 0)
    view.scrollTo(index)
    cell = view.visualRect(index)
    assert cell.isValid() and view.viewport().rect().contains(cell.center())
    return view.viewport().grab(view.delegate.image_rect(cell)).toImage()


def _wait_full_picture(qtbot, widget, image_id: int) -> None:
    qtbot.waitUntil(lambda: widget.row is not None and widget.row.image_id == image_id
                    and widget.has_full_image(), timeout=WAIT_MS)


def _painted_picture(widget) -> QImage:
    """The picture area of an ImagePreview / FullView, as its paintEvent draws it."""
    shown = widget.displayed_image()
    assert shown is not None
    ratio = max(0.01, widget.devicePixelRatioF())
    size = QSize(round(shown.width() / ratio), round(shown.height() / ratio))
    size = size.boundedTo(widget.size()) if size.width() <= widget.width() \
        and size.height() <= widget.height() else size.scaled(
            widget.size(), Qt.AspectRatioMode.KeepAspectRatio)
    area = QRect((widget.width() - size.width()) // 2, (widget.height() - size.height()) // 2,
                 size.width(), size.height())
    return widget.grab(area).toImage()


class _RecordingDrag(QDrag):
    """QDrag whose exec records the pixmap startDrag set instead of starting a drag."""

    pixmaps: ClassVar[list[QImage]] = []

    def exec(self, *_args, **_kwargs):
        _RecordingDrag.pixmaps.append(self.pixmap().toImage())
        return Qt.DropAction.CopyAction


def _drag_image(app, monkeypatch) -> QImage:
    """The picture the grid's real startDrag gives the drag (selection = the target)."""
    import desktop.grid.view as view_module

    monkeypatch.setattr(view_module, "QDrag", _RecordingDrag)
    _RecordingDrag.pixmaps = []
    app.view.startDrag(Qt.DropAction.CopyAction)
    assert len(_RecordingDrag.pixmaps) == 1, "startDrag did not start a drag"
    return _RecordingDrag.pixmaps[0]


def _tooltip(qtbot, app, row: int) -> str:
    """The tooltip Qt shows over `row`'s cell (a real ToolTip event to the viewport)."""
    view = app.view
    cell = view.visualRect(view.model().index(row, 0))
    QToolTip.hideText()
    event = QHelpEvent(QEvent.Type.ToolTip, cell.center(), view.viewport().mapToGlobal(
        cell.center()))
    view.viewportEvent(event)
    qtbot.waitUntil(QToolTip.isVisible, timeout=WAIT_MS)
    return QToolTip.text()


def _same_as_source(shown: QImage, source: PILImage.Image) -> float:
    """Mean absolute grey difference between a painted picture and the source resized to
    it (0 = identical, ~128 = unrelated for a black/white checkerboard)."""
    painted = qimage_array(shown)
    expected = np.asarray(source.convert("L").resize((shown.width(), shown.height()),
                                                     PILImage.Resampling.BILINEAR),
                          dtype=np.float32)
    return float(np.abs(painted - expected).mean())


def views_of(qtbot, app, row: int, image_id: int, monkeypatch) -> dict[str, QImage]:
    """Every place the image at `row` (current, image `image_id`) is painted, as painted.
    Opens the full view (Enter) and closes it again (Esc)."""
    shown = {"grid": _grid_cell(qtbot, app, row)}
    _wait_full_picture(qtbot, app.preview, image_id)
    shown["preview"] = _painted_picture(app.preview)
    shown["drag"] = _drag_image(app, monkeypatch)
    qtbot.keyClick(app.view, Qt.Key.Key_Return)
    assert app.window.is_full_view()
    _wait_full_picture(qtbot, app.full_view, image_id)
    shown["full view"] = _painted_picture(app.full_view)
    qtbot.keyClick(app.full_view, Qt.Key.Key_Escape)
    assert not app.window.is_full_view()
    app.view.setFocus()
    return shown


def detail(shown: dict[str, QImage]) -> dict[str, float]:
    return {name: round(high_frequency(_centre(image)), 2) for name, image in shown.items()}


def assert_covered(shown: dict[str, QImage], when: str) -> None:
    measured = detail(shown)
    leaks = {k: v for k, v in measured.items() if v > COVERED_AT_MOST}
    assert not leaks, f"{when}: painted with the source's detail in {leaks} (all: {measured})"


def assert_clear(shown: dict[str, QImage], source: PILImage.Image, when: str) -> None:
    measured = detail(shown)
    hidden = {k: v for k, v in measured.items() if v < CLEAR_AT_LEAST}
    assert not hidden, f"{when}: expected the picture clear, got {measured}"
    # The drag image and the grid cell are the cached thumbnail (a smaller, already
    # resampled copy); the preview and full view are the file itself at their size.
    for name in ("preview", "full view"):
        difference = _same_as_source(shown[name], source)
        assert difference <= SAME_PICTURE_AT_MOST, f"{when}: {name} differs from the source " \
            f"by {difference:.1f} grey levels"


# ----------------------------------------------------------------------------- tests

@pytest.fixture
def no_dialogs(monkeypatch):
    """Any QMessageBox.question the window asks is answered from this list (default No)."""
    answers: list = []
    asked: list[str] = []

    def question(_parent, title, *_args, **_kwargs):
        asked.append(title)
        return answers.pop(0) if answers else QMessageBox.StandardButton.No

    monkeypatch.setattr("desktop.main_window.QMessageBox.question", question)
    return answers, asked


def _is_picture(path: Path) -> bool:
    try:
        with PILImage.open(path) as picture:
            picture.verify()
    except Exception:  # noqa: BLE001 - anything PIL cannot read is not a picture copy
        return False
    return True


def _snapshot_files(*roots: Path) -> set[Path]:
    return {p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()}


def test_a_flagged_unreviewed_image_is_never_painted_clear_in_any_view(
        qtbot, tmp_path, monkeypatch, no_dialogs, isolated_home):
    answers, asked = no_dialogs
    folder = tmp_path / "outputs"
    target_path = _write_folder(folder)
    source = PILImage.open(target_path).convert("RGB")
    app, engine = build_app(qtbot, tmp_path, [folder], expect_rows=5,
                            settings=Settings(auto_advance=False,
                                              enabled_analysers=["nsfw-default"]))
    try:
        ids = _image_ids(app)
        image_id, content_id = ids[TARGET]
        html_image_id = ids[HTML_NAME][0]
        row = app.model.row_of_image(image_id)
        app.window.controller.select_row(row)
        app.view.setFocus()
        assert app.window.current_image_id() == image_id

        # Before any flag: clear everywhere (also proves the measures see detail at all).
        assert_clear(views_of(qtbot, app, row, image_id, monkeypatch), source, "not flagged")

        _flag_as_nsfw(qtbot, app, content_id)
        assert app.model.grid_row(row).flagged
        row = app.model.row_of_image(image_id)
        assert app.window.current_image_id() == image_id
        assert_covered(views_of(qtbot, app, row, image_id, monkeypatch), "flagged, unreviewed")

        # The tooltip and the details text are text only: no <img> that Qt would load and
        # paint unblurred (both the file name and the prompt try to inject one).
        for iid in (image_id, html_image_id):
            text = _tooltip(qtbot, app, app.model.row_of_image(iid))
            assert "<img" not in text.lower() and "data:image" not in text.lower(), text
        assert "&lt;img" in _tooltip(qtbot, app, app.model.row_of_image(html_image_id))
        details = app.window.details.text.text()
        assert "<img" not in details.lower() and "&lt;img" in details

        # P: accepted -> clear, and it is the source picture.
        qtbot.keyClick(app.view, Qt.Key.Key_P)
        assert app.model.grid_row(row).decision == "accepted"
        assert_clear(views_of(qtbot, app, row, image_id, monkeypatch), source, "accepted")

        # X: rejected -> covered.
        qtbot.keyClick(app.view, Qt.Key.Key_X)
        assert app.model.grid_row(row).decision == "rejected"
        assert_covered(views_of(qtbot, app, row, image_id, monkeypatch), "rejected")

        # Ctrl+Z: back to accepted (clear); again: back to unreviewed (blurred).
        # (Undo shows "what changed": the content's first image, which may be the copy
        # under the HTML name, so the target is selected again afterwards.)
        qtbot.keyClick(app.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: app.model.grid_row(row).decision == "accepted",
                        timeout=WAIT_MS)
        app.window.controller.select_row(row)
        assert_clear(views_of(qtbot, app, row, image_id, monkeypatch), source, "undo to accepted")
        qtbot.keyClick(app.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: app.model.grid_row(row).decision == "none", timeout=WAIT_MS)
        app.window.controller.select_row(row)
        assert_covered(views_of(qtbot, app, row, image_id, monkeypatch), "undo to unreviewed")

        # Space held: this one image clear while the key is down; blurred again after.
        qtbot.keyPress(app.view, Qt.Key.Key_Space)
        assert app.blur.peeking_image_id == image_id
        _wait_full_picture(qtbot, app.preview, image_id)
        peeked = {"grid": _grid_cell(qtbot, app, row),
                  "preview": _painted_picture(app.preview)}
        measured = detail(peeked)
        assert min(measured.values()) >= CLEAR_AT_LEAST, f"peek did not reveal: {measured}"
        qtbot.keyRelease(app.view, Qt.Key.Key_Space)
        assert app.blur.peeking_image_id is None
        assert_covered(views_of(qtbot, app, row, image_id, monkeypatch), "after the peek")

        # B answered No: still blurred. B answered Yes: clear for the session. B again: blurred.
        qtbot.keyClick(app.view, Qt.Key.Key_B)
        assert asked == ["Show flagged images?"] and not app.blur.session_unblurred
        assert_covered(views_of(qtbot, app, row, image_id, monkeypatch), "B declined")
        answers.append(QMessageBox.StandardButton.Yes)
        qtbot.keyClick(app.view, Qt.Key.Key_B)
        assert app.blur.session_unblurred
        assert_clear(views_of(qtbot, app, row, image_id, monkeypatch), source, "B confirmed")
        qtbot.keyClick(app.view, Qt.Key.Key_B)
        assert len(asked) == 2 and not app.blur.session_unblurred  # no question to re-blur
        assert_covered(views_of(qtbot, app, row, image_id, monkeypatch), "B pressed again")

        # No unblurred copy is written anywhere but the thumbnail cache (there is no
        # thumbnail export command; this is what stands in for one).
        thumbnails = app.locations.thumbnails.resolve()
        written = _snapshot_files(tmp_path, isolated_home) - _snapshot_files(folder)
        pictures = sorted(path for path in written
                          if thumbnails not in path.resolve().parents and _is_picture(path))
        assert pictures == [], f"picture files written outside the thumbnail cache: {pictures}"
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()


def test_unanalysed_images_in_a_sensitive_folder_are_blurred_until_analysed(
        qtbot, tmp_path, monkeypatch):
    folder = tmp_path / "sensitive"
    folder.mkdir()
    target_path = folder / TARGET
    checkerboard(512, square=8).save(target_path)
    source = PILImage.open(target_path).convert("RGB")
    app, engine = build_app(qtbot, tmp_path, [folder], expect_rows=1,
                            settings=Settings(enabled_analysers=["nsfw-default"]))
    try:
        image_id, content_id = _image_ids(app)[TARGET]
        app.window.controller.select_row(0)
        app.view.setFocus()
        assert not app.model.grid_row(0).analysed
        assert_clear(views_of(qtbot, app, 0, image_id, monkeypatch), source,
                     "unanalysed, folder not sensitive")

        # Marked sensitive in the sidebar (the window's own handler for the toggle).
        folder_id = app.model.grid_row(0).folder_id
        app.window._on_sidebar_sensitive_toggled(folder_id, True)
        assert_covered(views_of(qtbot, app, 0, image_id, monkeypatch),
                       "unanalysed in a sensitive folder")

        # Analysed and found harmless: clear.
        _flag_as_nsfw(qtbot, app, content_id, score=0.01)
        assert app.model.grid_row(0).analysed and not app.model.grid_row(0).flagged
        assert_clear(views_of(qtbot, app, 0, image_id, monkeypatch), source,
                     "analysed, not flagged, sensitive folder")
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()


def test_a_folder_name_that_looks_like_html_never_paints_a_picture(qtbot, tmp_path,
                                                                    monkeypatch):
    folder = tmp_path / "<img src=target.png>"  # a legal folder name on Linux and macOS
    folder.mkdir()
    checkerboard(128, square=4).save(folder / TARGET)
    # `cd ~/ComfyUI/output && gentriage .` — relative names resolve against this folder.
    monkeypatch.chdir(folder)
    app, engine = build_app(qtbot, tmp_path, [folder], expect_rows=1)
    try:
        _flag_as_nsfw(qtbot, app, _image_ids(app)[TARGET][1])
        # What the status bar shows while this folder is being indexed (a rescan, F5).
        app.scanner.scan_started.emit([str(folder)])
        label = app.window.status.scan_label
        line = label.fontMetrics().height()
        assert label.sizeHint().height() < 3 * line, (
            f"the status bar laid out a {label.sizeHint().height()} px tall picture for "
            f"{label.text()!r} (one line of text is {line} px)")
        # The name is shown as its characters. (No pixel measure here: crisp glyphs score
        # as much high-frequency detail as a picture; the 128 px picture shows in the height.)
        assert "<img src=target.png>" in label.text()
        assert label.textFormat() == Qt.TextFormat.PlainText
    finally:
        app.shutdown()
        app.window.close()
        engine.dispose()
