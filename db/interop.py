"""Reads for taking pictures elsewhere: file exports, caption files, XMP sidecars and the
app's "copy generation parameters" (library/export_files.py, library/sidecars.py,
desktop/interop.py). Every function takes the caller's session and never commits."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.filters import ImageFilter
from db.queries import GridRow, PageCursor, fetch_page
from db.schema import Content, Folder, Generation, Image, ImageStatus, LoraUse, Tag

_IN_CHUNK = 500  # far below SQLite's bound-parameter limit


@dataclass(frozen=True)
class PictureFacts:
    """What a caption file or a sidecar says about one content."""

    content_id: int
    decision: str
    rating: int
    prompt: str | None
    tags: tuple[str, ...]  # at or above the threshold, most probable first


@dataclass(frozen=True)
class GenerationRecord:
    """One image's generation metadata as stored at indexing (normalised fields, LoRAs and
    every raw text the reader found), with what the privacy rule needs."""

    image_id: int
    content_id: int | None
    path: str
    decision: str
    flagged: bool
    fields: dict[str, Any] = field(default_factory=dict)
    loras: tuple[tuple[str, float | None], ...] = ()
    raw: dict[str, str] = field(default_factory=dict)


GENERATION_FIELDS = ("generator", "generator_detail", "prompt", "negative_prompt", "seed",
                     "steps", "sampler", "scheduler", "cfg_scale", "width", "height", "model",
                     "model_hash")


def _chunks(items: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start:start + _IN_CHUNK]


def matching_rows(session_factory: Any, image_filter: ImageFilter,
                  page_size: int = 500) -> Iterator[GridRow]:
    """Every row of the filter in its order, one keyset page (and one short read session)
    at a time."""
    cursor: PageCursor | None = None
    while True:
        with session_factory() as session:
            rows, cursor = fetch_page(session, image_filter, after=cursor, limit=page_size)
        yield from rows
        if cursor is None:
            return


def picture_facts(session: Session, content_ids: Iterable[int],
                  tag_threshold: float) -> dict[int, PictureFacts]:
    ids = sorted(set(content_ids))
    review: dict[int, tuple[str, int]] = {}
    prompts: dict[int, str | None] = {}
    tags: dict[int, dict[str, float]] = {}
    for chunk in _chunks(ids):
        for cid, decision, rating in session.execute(
                select(Content.id, Content.decision, Content.rating)
                .where(Content.id.in_(chunk))):
            review[cid] = (decision or "none", rating or 0)
        prompts.update(session.execute(select(Generation.content_id, Generation.prompt)
                                       .where(Generation.content_id.in_(chunk))).all())
        for cid, tag, score in session.execute(
                select(Tag.content_id, Tag.tag, Tag.score)
                .where(Tag.content_id.in_(chunk), Tag.score >= tag_threshold)):
            best = tags.setdefault(cid, {})  # several taggers may give the same tag
            best[tag] = max(score, best.get(tag, score))
    return {cid: PictureFacts(cid, decision, rating, prompts.get(cid), tuple(
        tag for tag, _ in sorted(tags.get(cid, {}).items(), key=lambda item: (-item[1],
                                                                                item[0]))))
            for cid, (decision, rating) in review.items()}


def readable_images_of(session: Session, content_ids: Iterable[int]) -> list[tuple[int, int, str]]:
    """(image id, content id, path) of every readable file showing these contents."""
    out: list[tuple[int, int, str]] = []
    for chunk in _chunks(sorted(set(content_ids))):
        out += [tuple(row) for row in session.execute(  # type: ignore[misc]
            select(Image.id, Image.content_id, Image.path)
            .where(Image.content_id.in_(chunk), Image.status == ImageStatus.OK.value)
            .order_by(Image.id))]
    return out


def folder_paths(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Folder.id, Folder.path)).all())


def watched_folder_containing(session: Session, path: str) -> str | None:
    """The watched folder `path` lies in (or is), if any."""
    target = os.path.abspath(path)
    for (folder,) in session.execute(select(Folder.path)):
        base = os.path.abspath(folder)
        try:
            if os.path.commonpath([target, base]) == base:
                return folder
        except ValueError:  # different drives
            continue
    return None


def generation_record(session: Session, image_id: int) -> GenerationRecord | None:
    image = session.get(Image, image_id)
    if image is None:
        return None
    content = session.get(Content, image.content_id) if image.content_id is not None else None
    record = GenerationRecord(image.id, image.content_id, image.path,
                              content.decision if content is not None else "none",
                              bool(content.flagged) if content is not None else False)
    generation = session.get(Generation, image.content_id) if content is not None else None
    if generation is None:
        return record
    loras = tuple((name, weight) for name, weight in session.execute(
        select(LoraUse.name, LoraUse.weight).where(LoraUse.content_id == image.content_id)
        .order_by(LoraUse.id)))
    return GenerationRecord(
        record.image_id, record.content_id, record.path, record.decision, record.flagged,
        {name: getattr(generation, name) for name in GENERATION_FIELDS
         if getattr(generation, name) not in (None, "")},
        loras, {str(k): str(v) for k, v in (generation.raw or {}).items()})
