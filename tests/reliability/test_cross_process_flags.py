"""A flag or a decision written by ANOTHER process reaches the open window (issue 11.2): with
the real window open (offscreen), a second Python process flags the image on screen the way a
`gentriage scan` records its analysis, and later `gentriage review --clear` takes back the
acceptance. Each time the image becomes covered in the grid, the preview and the full view
without any action in the window — a privacy rule cannot depend on who wrote the flag.

The pixel measures and views are the ones of test_privacy_end_to_end (imported from it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image as PILImage
from PySide6.QtCore import Qt
from test_privacy_end_to_end import (
    TARGET,
    WAIT_MS,
    _image_ids,
    _write_folder,
    assert_clear,
    assert_covered,
    build_app,
    views_of,
)

from desktop.blur import CoverKind
from library.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

# What a scan's analysis does when it flags a picture: store the result, recompute the flags,
# in one write transaction (library.analysis._BatchWriter.flush), in its own process.
FLAG_IN_ANOTHER_PROCESS = """
import sys
from sqlalchemy import select
from db.engine import open_library, session_factory
from db.flags import update_flags
from db.schema import AnalysisResult, Image
from db.transaction import write_transaction
from library.settings import Settings

engine = open_library(sys.argv[1])
settings = Settings()
with write_transaction(session_factory(engine)) as session:
    content_id = session.scalar(select(Image.content_id).where(Image.path == sys.argv[2]))
    session.add(AnalysisResult(content_id=content_id, analyser="nsfw-default",
                               version="scan-elsewhere", label="nsfw", score=0.99,
                               scores={"nsfw": 0.99}))
    session.flush()
    assert update_flags(session, [content_id], settings.thresholds,
                        settings.enabled_analysers) == [content_id]
engine.dispose()
"""


def _run_elsewhere(qtbot, *args: str) -> None:
    """Run a second Python process while the window's event loop keeps running."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        qtbot.waitUntil(lambda: process.poll() is not None, timeout=60_000)
    finally:
        if process.poll() is None:
            process.kill()
        out, err = process.communicate()
    assert process.returncode == 0, out + err


def _preview_covered(app, image_id: int) -> bool:
    preview = app.preview
    return (preview.row is not None and preview.row.image_id == image_id
            and app.blur.needs_cover(preview.row) and preview.has_full_image()
            and preview._rendered_for is not None
            and preview._rendered_for.kind is CoverKind.BLUR)


def test_flags_and_decisions_written_by_other_processes_reach_the_open_window(
        qtbot, tmp_path, monkeypatch, isolated_home):
    folder = tmp_path / "outputs"
    target_path = _write_folder(folder)
    source = PILImage.open(target_path).convert("RGB")
    app, engine = build_app(qtbot, tmp_path, [folder], expect_rows=5,
                            settings=Settings(auto_advance=False,
                                              enabled_analysers=["nsfw-default"]))
    database = str(app.locations.database)
    try:
        image_id, _content_id = _image_ids(app)[TARGET]
        row = app.model.row_of_image(image_id)
        app.window.controller.select_row(row)
        app.view.setFocus()
        assert_clear(views_of(qtbot, app, row, image_id, monkeypatch), source, "not flagged")
        assert "Flagged" not in app.window.details.text.text()

        # Another process flags it. Nothing is done in the window.
        _run_elsewhere(qtbot, "-c", FLAG_IN_ANOTHER_PROCESS, database, str(target_path))
        qtbot.waitUntil(lambda: app.model.grid_row(row).flagged, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: _preview_covered(app, image_id), timeout=WAIT_MS)
        assert "Flagged" in app.window.details.text.text()  # the details pane re-read it
        assert_covered(views_of(qtbot, app, row, image_id, monkeypatch),
                       "flagged by another process")

        # Accepted here: clear. Then another reviewer takes the acceptance back.
        qtbot.keyClick(app.view, Qt.Key.Key_P)
        assert app.model.grid_row(row).decision == "accepted"
        assert_clear(views_of(qtbot, app, row, image_id, monkeypatch), source, "accepted")
        _run_elsewhere(qtbot, "-m", "gentriage", "review", str(target_path), "--clear",
                       "--db", database)
        qtbot.waitUntil(lambda: app.model.grid_row(row).decision == "none", timeout=WAIT_MS)
        qtbot.waitUntil(lambda: _preview_covered(app, image_id), timeout=WAIT_MS)
        assert_covered(views_of(qtbot, app, row, image_id, monkeypatch),
                       "acceptance cleared by another process")
    finally:
        assert app.shutdown()
        app.window.close()
        engine.dispose()


def test_a_file_indexed_by_another_process_appears_in_the_open_window(qtbot, tmp_path,
                                                                      isolated_home):
    folder = tmp_path / "outputs"
    _write_folder(folder)
    app, engine = build_app(qtbot, tmp_path, [folder], expect_rows=5)
    try:
        later = tmp_path / "later"
        later.mkdir()
        PILImage.new("RGB", (40, 30), (10, 200, 30)).save(later / "new.png")
        # A real `gentriage scan` in another process (the bundled nsfw-default analyses).
        _run_elsewhere(qtbot, "-m", "gentriage", "scan", str(later),
                       "--db", str(app.locations.database),
                       "--models-dir", str(tmp_path / "no-other-models"))
        qtbot.waitUntil(lambda: app.model.rowCount() == 6, timeout=WAIT_MS)
        assert app.model.grid_row(0).name == "new.png"  # the newest file, at the top
    finally:
        assert app.shutdown()
        app.window.close()
        engine.dispose()
