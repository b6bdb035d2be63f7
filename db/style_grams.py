"""The `style` analyser's Gram matrices (table style_grams): written beside its analysis
result, read by the report. Every function takes the caller's session and never commits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from db.dialect import insert_for
from db.schema import StyleGram

# Rows per read: ~600 KiB each, so a chunk holds ~60 MB at most.
_READ_CHUNK = 100


def save_grams(session: Session, rows: Iterable[tuple[int, str, bytes | None]]) -> None:
    """(content id, analyser version, packed Grams) per content; None removes a content's
    Grams (its new result is an error, so no Grams belong to it any more)."""
    rows = list(rows)
    gone = [cid for cid, _, data in rows if data is None]
    if gone:
        session.execute(delete(StyleGram).where(StyleGram.content_id.in_(gone)))
    for cid, version, data in rows:
        if data is None:
            continue
        statement = insert_for(session, StyleGram).values(content_id=cid, version=version, data=data)
        session.execute(statement.on_conflict_do_update(
            index_elements=[StyleGram.content_id],
            set_={"version": statement.excluded.version, "data": statement.excluded.data}))


def grams_of(session: Session, content_ids: Sequence[int], version: str
             ) -> Iterator[tuple[int, bytes]]:
    """(content id, packed Grams) of those contents whose Grams were made by `version`, a
    chunk at a time (they are large)."""
    ids = sorted(set(content_ids))
    for start in range(0, len(ids), _READ_CHUNK):
        chunk = ids[start:start + _READ_CHUNK]
        rows = session.execute(
            select(StyleGram.content_id, StyleGram.data)
            .where(StyleGram.content_id.in_(chunk), StyleGram.version == version)).all()
        yield from ((cid, data) for cid, data in rows)


def gram_count(session: Session, version: str | None = None) -> int:
    """How many contents have Grams (made by `version`, when given)."""
    stmt = select(func.count()).select_from(StyleGram)
    if version is not None:
        stmt = stmt.where(StyleGram.version == version)
    return int(session.execute(stmt).scalar_one())
