"""The `clip` analyser's image embeddings: stored one row per content, read in bulk.

Writers call `store_embeddings` inside the analysis runner's write transaction (beside the
result row it belongs to). Readers (library.search's in-memory index) stream the vectors of one
weights version, all of them once and then only what was written since (`stored_seq`).
Every function takes a session; none commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.dialect import insert_for
from db.schema import ClipEmbedding, Image

# Rows per fetch when streaming vectors (1.5 KB each at 768 float16 values).
STREAM_CHUNK = 4096


@dataclass(frozen=True)
class StoredEmbedding:
    content_id: int
    version: str
    vector: bytes  # `dim` little-endian float16 values


def store_embeddings(session: Session, rows: Sequence[StoredEmbedding]) -> None:
    """Insert or replace these contents' embeddings. One write batch shares one `stored_seq`,
    above every earlier one (the caller holds the write transaction, so it is unique)."""
    if not rows:
        return
    seq = (session.scalar(select(func.max(ClipEmbedding.stored_seq))) or 0) + 1
    values = [{"content_id": r.content_id, "version": r.version, "dim": len(r.vector) // 2,
               "vector": r.vector, "stored_seq": seq} for r in rows]
    statement = insert_for(session, ClipEmbedding).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=[ClipEmbedding.content_id],
        set_={name: statement.excluded[name]
              for name in ("version", "dim", "vector", "stored_seq")})
    session.execute(statement)


def stream_embeddings(session: Session, version: str, after_seq: int = 0
                      ) -> Iterator[list[tuple[int, bytes, int]]]:
    """(content id, vector bytes, stored_seq) of `version`, written after `after_seq`, in
    chunks of STREAM_CHUNK rows (memory stays flat while a million are read)."""
    statement = (select(ClipEmbedding.content_id, ClipEmbedding.vector,
                        ClipEmbedding.stored_seq)
                 .where(ClipEmbedding.version == version, ClipEmbedding.stored_seq > after_seq)
                 .execution_options(yield_per=STREAM_CHUNK))
    for partition in session.execute(statement).partitions(STREAM_CHUNK):
        yield [(cid, bytes(vector), seq) for cid, vector, seq in partition]


def count_embeddings(session: Session, version: str) -> int:
    return session.scalar(select(func.count()).select_from(ClipEmbedding)
                          .where(ClipEmbedding.version == version)) or 0


def latest_seq(session: Session) -> int:
    return session.scalar(select(func.max(ClipEmbedding.stored_seq))) or 0


def versions_present(session: Session) -> dict[str, int]:
    """How many embeddings each weights version has (what a "no embeddings" message says)."""
    return dict(session.execute(select(ClipEmbedding.version, func.count())
                                .group_by(ClipEmbedding.version)).all())


def embedding_of(session: Session, content_id: int, version: str) -> bytes | None:
    vector = session.scalar(select(ClipEmbedding.vector).where(
        ClipEmbedding.content_id == content_id, ClipEmbedding.version == version))
    return None if vector is None else bytes(vector)


def content_of_image(session: Session, image_id: int) -> int | None:
    return session.scalar(select(Image.content_id).where(Image.id == image_id))


def first_image_of(session: Session, content_id: int) -> int | None:
    """The oldest image row showing this content (a similar: term names an image)."""
    return session.scalar(select(Image.id).where(Image.content_id == content_id)
                          .order_by(Image.id).limit(1))


def embedded_contents(session: Session, content_ids: Iterable[int], version: str) -> set[int]:
    ids = sorted(set(content_ids))
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        found.update(session.scalars(select(ClipEmbedding.content_id).where(
            ClipEmbedding.content_id.in_(ids[start:start + 500]),
            ClipEmbedding.version == version)))
    return found


__all__ = ["StoredEmbedding", "content_of_image", "count_embeddings", "embedded_contents",
           "embedding_of", "first_image_of", "latest_seq", "store_embeddings",
           "stream_embeddings", "versions_present"]
