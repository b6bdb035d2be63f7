"""A small library with known scores for the report's tests (library, CLI, app): real
picture files, their cached thumbnails, and rows written directly, so every figure can be
computed by hand from PICTURES below.

Shared by every suite (tests/conftest.py's folder is on sys.path): `from report_library
import build_report_library, PICTURES`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

MODEL_C = 'C <b>"bold"</b> & co'  # escaping is part of what the HTML tests check


@dataclass(frozen=True)
class Picture:
    key: str
    model: str | None  # None: no generation metadata at all
    sampler: str | None = None
    loras: tuple[str, ...] = ()
    prompt: str | None = None
    aesthetic: float | None = None  # None: no aesthetic result
    adherence: float | None = None  # None: no prompt_adherence in the result
    coherence: str | None = None  # the coherence label (None: no coherence result)
    decision: str = "none"
    nsfw: bool = False  # nsfw-default says nsfw (flags the picture)
    aesthetic_error: bool = False  # the aesthetic result is an error
    status: str = "ok"
    folder: str = "main"  # "main", "other" or "sensitive"
    analysed: bool = True  # has an nsfw-default result


PICTURES: tuple[Picture, ...] = (
    Picture("p1", "A", "euler", ("x",), "red fox", 6.0, 30.0, "coherent", "accepted"),
    Picture("p2", "A", "euler", ("x", "y"), "red fox", 7.0, 20.0, "incoherent"),
    Picture("p3", "A", "dpm", (), "blue owl", 4.0, None, "coherent", "rejected"),
    Picture("p4", "A", "dpm", (), "blue owl", None, None, "semi-incoherent", nsfw=True),
    Picture("p5", "B", "euler", ("y",), "red fox", 8.0, 28.0, "coherent", nsfw=True),
    Picture("p6", "B", "euler", (), "green frog", 6.5, 22.0, None, "accepted"),
    Picture("p7", None, aesthetic=5.0, coherence="coherent"),
    Picture("p8", "A", "euler", (), "red fox", 9.0, 35.0, "coherent", status="broken"),
    Picture("p9", "B", "dpm", (), "green frog", None, None, "coherent", aesthetic_error=True),
    Picture("p10", MODEL_C, "euler", (), "purple $cat$", 9.5, 31.0, None, folder="sensitive",
            analysed=False),
)
# p1's picture is also in the "other" folder (a copy: the same content).
DUPLICATE_OF = "p1"


def detailed_picture(seed: int, size: int = 64) -> PILImage.Image:
    """Fine random detail: any blurred version is far from it, pixel by pixel."""
    rng = np.random.default_rng(seed)
    return PILImage.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


@dataclass
class ReportLibrary:
    db: Path
    folders: dict[str, Path]
    thumbnails: Path
    content_ids: dict[str, int] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)


def build_report_library(root: Path, thumbnails: Path | None = None) -> ReportLibrary:
    from db.engine import open_library, session_factory
    from db.flags import update_flags
    from db.schema import (
        AnalysisResult,
        Content,
        Folder,
        Generation,
        Image,
        LoraUse,
    )
    from library.settings import Thresholds
    from library.thumbnails import ThumbnailCache

    db = root / "library.sqlite3"
    folders = {name: root / name for name in ("main", "other", "sensitive")}
    lib = ReportLibrary(db, folders, thumbnails or root / "thumbnails")
    cache = ThumbnailCache(lib.thumbnails)
    engine = open_library(db)
    with session_factory(engine).begin() as s:
        folder_ids = {}
        for name, path in folders.items():
            path.mkdir(parents=True, exist_ok=True)
            row = Folder(path=str(path), sensitive=name == "sensitive")
            s.add(row)
            s.flush()
            folder_ids[name] = row.id
        for number, p in enumerate(PICTURES, 1):
            picture = detailed_picture(number)
            path = folders[p.folder] / f"{p.key}.png"
            picture.save(path)
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            cache.save(sha, cache.make_from(picture))
            content = Content(sha256=sha, width=64, height=64, format="PNG",
                              decision=p.decision)
            s.add(content)
            s.flush()
            s.add(Image(path=str(path), name=path.name, folder_id=folder_ids[p.folder],
                        content_id=content.id, size=path.stat().st_size,
                        # The file's own: a rescan (the app's start) finds it unchanged.
                        mtime_ns=path.stat().st_mtime_ns, status=p.status))
            if p.key == DUPLICATE_OF:
                copy = folders["other"] / path.name
                copy.write_bytes(path.read_bytes())
                s.add(Image(path=str(copy), name=copy.name, folder_id=folder_ids["other"],
                            content_id=content.id, size=copy.stat().st_size,
                            mtime_ns=copy.stat().st_mtime_ns))
            if p.model is not None:
                s.add(Generation(content_id=content.id, generator="a1111", model=p.model,
                                 sampler=p.sampler, prompt=p.prompt, raw={}))
                s.flush()
                for lora in p.loras:
                    s.add(LoraUse(content_id=content.id, name=lora, weight=0.8))
            if p.aesthetic_error:
                s.add(AnalysisResult(content_id=content.id, analyser="aesthetic", version="a",
                                     label=None, score=None, scores={}, error="boom"))
            elif p.aesthetic is not None:
                scores = {"aesthetic": p.aesthetic}
                if p.adherence is not None:
                    scores["prompt_adherence"] = p.adherence
                s.add(AnalysisResult(content_id=content.id, analyser="aesthetic", version="a",
                                     label=None, score=p.aesthetic, scores=scores))
            if p.coherence is not None:
                s.add(AnalysisResult(content_id=content.id, analyser="coherence", version="c",
                                     label=p.coherence, score=0.9, scores={p.coherence: 0.9}))
            if p.analysed:
                nsfw = 0.9 if p.nsfw else 0.1
                s.add(AnalysisResult(content_id=content.id, analyser="nsfw-default",
                                     version="n", label="nsfw" if p.nsfw else "sfw",
                                     score=nsfw, scores={"nsfw": nsfw}))
            lib.content_ids[p.key] = content.id
            lib.sha256[p.key] = sha
            lib.paths[p.key] = path
        s.flush()
        update_flags(s, None, Thresholds(), ["nsfw-default", "coherence", "aesthetic"])
    engine.dispose()
    return lib
