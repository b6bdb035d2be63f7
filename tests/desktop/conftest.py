"""Desktop fixtures: an offscreen Qt, a small migrated library on disk with real image files,
a thumbnail cache, and the grid's components wired the way the app wires them."""

import os

# Before any Qt import (the suite-wide conftest does it too; this keeps the folder runnable
# on its own).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from grid_test_helpers import checkerboard
from PIL import Image as PILImage

from db.engine import open_library, session_factory
from db.filters import ImageFilter
from db.schema import Content, Folder, Image

EVERYTHING = ImageFilter()  # immutable: safe as a default argument


@pytest.fixture
def gentriage_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("GENTRIAGE_HOME", str(home))
    return home


@dataclass
class Library:
    """A library database plus helpers to add images with real files behind them."""

    path: Path
    files: Path
    engine: object
    Session: object
    _mtime: int = 1_000_000_000_000
    folder_ids: dict = field(default_factory=dict)

    def folder(self, name: str = "out", sensitive: bool = False) -> int:
        key = (name, sensitive)
        if key not in self.folder_ids:
            with self.Session() as session:
                folder = Folder(path=str(self.files / name), sensitive=sensitive)
                session.add(folder)
                session.commit()
                self.folder_ids[key] = folder.id
        return self.folder_ids[key]

    def add(self, name: str | None = None, *, picture: PILImage.Image | None = None,
            decision: str = "none", flagged: bool = False, nsfw: bool | None = None,
            incoherent: bool = False, analysed: bool = True, rating: int = 0,
            sensitive: bool = False, mtime_ns: int | None = None, status: str = "ok",
            seed: int = 0) -> int:
        """Write a PNG file and its rows; returns the image id. Later calls are newer."""
        folder_id = self.folder("sensitive" if sensitive else "out", sensitive)
        picture = picture if picture is not None else checkerboard(seed=seed)
        if mtime_ns is None:
            self._mtime += 1_000_000_000
            mtime_ns = self._mtime
        with self.Session() as session:
            number = session.query(Image).count() + 1
            name = name or f"img_{number:04d}.png"
            folder = self.files / ("sensitive" if sensitive else "out")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            picture.save(path, "PNG")
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            nsfw = flagged if nsfw is None else nsfw
            content = session.query(Content).filter_by(sha256=sha).one_or_none()
            if content is None:
                content = Content(sha256=sha, width=picture.width, height=picture.height,
                                  format="PNG", decision=decision, rating=rating,
                                  flagged=bool(nsfw or incoherent), flag_nsfw=bool(nsfw),
                                  flag_incoherent=incoherent, analysed=analysed)
                session.add(content)
                session.flush()
            image = Image(path=str(path), name=name, folder_id=folder_id,
                          content_id=content.id, size=path.stat().st_size, mtime_ns=mtime_ns,
                          status=status)
            session.add(image)
            session.commit()
            return image.id

    def set(self, image_id: int, **values) -> int:
        """Change the image's content (decision, flags...) in the database; returns the
        content id."""
        with self.Session() as session:
            image = session.get(Image, image_id)
            content = session.get(Content, image.content_id)
            for key, value in values.items():
                setattr(content, key, value)
            session.commit()
            return content.id


@pytest.fixture
def library(tmp_path, gentriage_home):
    db_path = tmp_path / "library.sqlite3"
    engine = open_library(db_path)
    lib = Library(db_path, tmp_path / "files", engine, session_factory(engine))
    yield lib
    engine.dispose()


@pytest.fixture
def thumbnail_store(tmp_path):
    from library.thumbnails import ThumbnailCache

    return ThumbnailCache(tmp_path / "thumbnails")


@pytest.fixture
def loader(qtbot, thumbnail_store):
    from desktop.grid.thumbnail_loader import ThumbnailLoader

    loader = ThumbnailLoader(thumbnail_store, threads=2)
    yield loader
    loader.shutdown()


@pytest.fixture
def blur(qtbot):
    from desktop.blur import BlurPolicy

    return BlurPolicy()


@pytest.fixture
def make_model(qtbot, library, loader, blur):
    from desktop.grid.model import GridModel

    def make(page_size: int = 200, f: ImageFilter | None = EVERYTHING):
        model = GridModel(library.Session, loader, blur, page_size=page_size)
        if f is not None:
            model.set_filter(f)
        return model

    return make
