"""Fixtures that build the REAL GenTriage window (desktop.app.GenTriageApp) over a folder of
generated images, offscreen. Import the fixtures into a test module with
`from tests.desktop.fixtures_app import *  # noqa: F403`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from db.engine import open_library, session_factory
from db.schema import Content, Image

N_IMAGES = 8


def make_images(folder: Path, count: int, start: int = 0) -> list[Path]:
    """Distinct small PNGs, with modification times one second apart (newest last)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = folder / f"gen_{i:03d}.png"
        PILImage.new("RGB", (48, 32), (i * 29 % 256, i * 53 % 256, 90)).save(path)
        os.utime(path, ns=(1_700_000_000_000_000_000 + i * 10**9,) * 2)
        paths.append(path)
    return paths


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "outputs"
    make_images(folder, N_IMAGES)
    return folder


def build_app(qtbot, tmp_path: Path, folders: list[Path], *, watch: bool = False,
              expect_rows: int | None = None, database: str | None = None, **kwargs):
    """The app over `folders`; `database`: its --db (default: a SQLite file in tmp_path)."""
    from desktop.app import GenTriageApp
    from library.paths import Locations
    from library.settings import Settings

    locations = Locations.resolve(database or str(tmp_path / "library.sqlite3"),
                                  str(tmp_path / "models"))
    engine = open_library(locations.database)
    settings = kwargs.pop("settings", None) or Settings()
    app = GenTriageApp(engine, locations, settings, [str(f) for f in folders],
                       analysis=kwargs.pop("analysis", False), watch=watch,
                       scan_executor="thread", **kwargs)
    qtbot.addWidget(app.window)
    app.window.show()
    qtbot.waitExposed(app.window)
    app.start()
    if expect_rows:
        qtbot.waitUntil(lambda: app.model.rowCount() == expect_rows, timeout=20_000)
        qtbot.waitUntil(lambda: not app.scanner.is_running(), timeout=20_000)
    app.window.activateWindow()
    # No setFocus here: the window must give the grid the keyboard by itself
    # (test_main_window checks it; every key test below relies on it).
    return app, engine


@pytest.fixture
def gentriage(qtbot, tmp_path, image_folder) -> Iterator:
    """The running app over N_IMAGES images, every one indexed and shown."""
    app, engine = build_app(qtbot, tmp_path, [image_folder], expect_rows=N_IMAGES)
    yield app
    app.shutdown()
    app.window.close()
    engine.dispose()


def decisions(app) -> dict[str, str]:
    """file name → decision, read from the database (what was committed)."""
    with session_factory(app.engine)() as session:
        return {name: decision for name, decision in session.execute(
            select(Image.name, Content.decision).join(Content, Image.content_id == Content.id))}


def ratings(app) -> dict[str, int]:
    with session_factory(app.engine)() as session:
        return {name: rating for name, rating in session.execute(
            select(Image.name, Content.rating).join(Content, Image.content_id == Content.id))}


def current_name(app) -> str | None:
    row = app.window.current_grid_row()
    return None if row is None else row.name


def names_in_view(app) -> list[str]:
    return [app.model.grid_row(r).name for r in range(app.model.rowCount())]
