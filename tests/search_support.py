"""A small real library for the semantic-search tests (library, CLI, app): tiny CLIP models in
the upstream layout, photo-like pictures, a re-encoded copy and a byte-identical duplicate,
indexed by the real scanner and embedded by the real analysis runner (aesthetic + clip)."""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from db.engine import open_library, session_factory
from db.schema import ClipEmbedding, Image
from inference.testing import photo_like, write_aesthetic
from library.analysis import AnalysisRunner
from library.scan import scan_folders
from library.settings import Settings

N_PICTURES = 6


@dataclass
class SearchLibrary:
    root: Path
    db: Path
    models: Path
    folder: Path
    pictures: list[Path]  # p0..p5, distinct photo-like PNGs
    copy: Path  # p0 re-encoded: JPEG at half size
    duplicate: Path  # a byte-identical second file of p1 (same content)

    def sessions(self):
        engine = open_library(self.db)
        return engine, session_factory(engine)

    def image_ids(self) -> dict[str, int]:
        engine, sessions = self.sessions()
        try:
            with sessions() as session:
                return {name: image_id for image_id, name in
                        session.execute(select(Image.id, Image.name))}
        finally:
            engine.dispose()

    def embeddings(self) -> dict[str, tuple[str, np.ndarray]]:
        """file name -> (version, stored vector as float32)."""
        engine, sessions = self.sessions()
        try:
            with sessions() as session:
                rows = session.execute(select(Image.name, ClipEmbedding.version,
                                              ClipEmbedding.vector)
                                       .join(ClipEmbedding,
                                             ClipEmbedding.content_id == Image.content_id))
                return {name: (version, np.frombuffer(vector, "<f2").astype(np.float32))
                        for name, version, vector in rows}
        finally:
            engine.dispose()


def write_pictures(folder: Path) -> tuple[list[Path], Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    pictures = []
    for i in range(N_PICTURES):
        path = folder / f"p{i}.png"
        photo_like(320, 256, seed=100 + i).save(path)
        os.utime(path, ns=(1_700_000_000_000_000_000 + i * 10**9,) * 2)
        pictures.append(path)
    copy = folder / "p0_copy.jpg"
    photo_like(320, 256, seed=100).resize((160, 128)).save(copy, quality=80)
    duplicate = folder / "p1_duplicate.png"
    shutil.copyfile(pictures[1], duplicate)
    return pictures, copy, duplicate


def analyse(db: Path, models: Path, analysers: list[str]) -> None:
    engine = open_library(db)
    try:
        runner = AnalysisRunner(session_factory(engine), models,
                                Settings(enabled_analysers=analysers), device="cpu")
        runner.run(threading.Event())
    finally:
        engine.dispose()


def build_search_library(root: Path, analysers: tuple[str, ...] = ("aesthetic", "clip"),
                         embed: bool = True) -> SearchLibrary:
    """Needs HF_HUB_CACHE pointed at an empty folder (the runner discovers models)."""
    models = root / "models"
    write_aesthetic(models)
    folder = root / "pictures"
    pictures, copy, duplicate = write_pictures(folder)
    db = root / "library.sqlite3"
    engine = open_library(db)
    try:
        scan_folders(session_factory(engine), [folder], None, workers=1, executor="thread")
    finally:
        engine.dispose()
    if embed:
        analyse(db, models, list(analysers))
    return SearchLibrary(root, db, models, folder, pictures, copy, duplicate)
