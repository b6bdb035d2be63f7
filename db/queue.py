"""The persisted analysis queue and the results it produces: every statement the analysis
runner (library.analysis) needs, and nothing else.

Qt-free and typed. Every function takes the caller's session and never commits: the caller
wraps writes in db.transaction.write_transaction (so a lease, for instance, is the first
statement of its transaction and the write lock is held from the choice of rows to the end).

Leases: several runners (the app, a headless scan, Ray workers) may drain one queue. A
runner leases the rows it takes (`lease_next`, one UPDATE … RETURNING; on PostgreSQL the rows
are chosen FOR UPDATE SKIP LOCKED), renews the lease while it works and releases it when its
batch ends; rows leased by someone else are skipped until the lease expires.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, delete, exists, func, literal, or_, select, tuple_, update
from sqlalchemy.orm import Session

from db.dialect import greatest, insert_for
from db.embeddings import StoredEmbedding, store_embeddings
from db.schema import (
    AnalysisResult,
    Content,
    Generation,
    Image,
    ImageStatus,
    QueuedAnalysis,
    Tag,
    utcnow,
)
from db.style_grams import save_grams
from inference.catalog import EMBEDDING_ANALYSERS, STYLE_ANALYSERS

__all__ = [
    "Leased", "OutputLike", "QueuedWork", "contents_of_images", "current_results",
    "enqueue_outdated", "folder_of",
    "give_up", "has_ok_image", "lease_next", "leaseholders", "mark_unreadable", "prioritise",
    "queued_count", "release", "release_leases_of", "remove", "renew_lease", "work_for",
    "write_results",
]


class OutputLike(Protocol):
    """What inference.types.AnalyserOutput provides (db/ does not import inference)."""

    analyser: str
    version: str
    label: str | None
    score: float | None
    scores: Mapping[str, float]
    tags: Sequence[tuple[str, float]]
    error: str | None
    payload: bytes | None  # bulk data stored in its own table (style: packed Gram matrices)


@dataclass(frozen=True)
class Leased:
    content_id: int
    attempts: int  # counting this take


@dataclass(frozen=True)
class QueuedWork:
    """What analysing one queued content needs: an ok file showing it and its prompt."""

    content_id: int
    image_id: int
    path: str
    sha256: str
    prompt: str | None


# ------------------------------------------------------------------------------- queue


def enqueue_outdated(session: Session, versions: Mapping[str, str]) -> int:
    """Queue every content with an ok image that lacks a result at the current version of
    one of `versions`' analysers, in one INSERT … SELECT; rows already queued stay as they
    are. Returns how many were added."""
    if not versions:
        return 0
    outdated = [
        ~exists().where(AnalysisResult.content_id == Content.id,
                        AnalysisResult.analyser == analyser,
                        AnalysisResult.version == version)
        for analyser, version in versions.items()
    ]
    has_ok_image = exists().where(Image.content_id == Content.id,
                                  Image.status == ImageStatus.OK.value)
    candidates = select(Content.id, literal(0), literal(utcnow()), literal(0)).where(
        has_ok_image, or_(*outdated))
    statement = insert_for(session, QueuedAnalysis).from_select(
        ["content_id", "priority", "enqueued_at", "attempts"], candidates
    ).on_conflict_do_nothing().returning(QueuedAnalysis.__table__.c.content_id)
    # Counted from RETURNING (the rows actually inserted): psycopg reports no rowcount for
    # an INSERT compiled by SQLAlchemy (-1).
    return len(session.execute(statement).all())


def queued_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(QueuedAnalysis)) or 0


def prioritise(session: Session, content_ids: Collection[int]) -> None:
    """Move these queued contents ahead of everything queued so far (the latest call first)."""
    top = session.scalar(select(func.max(QueuedAnalysis.priority))) or 0
    session.execute(update(QueuedAnalysis).where(QueuedAnalysis.content_id.in_(content_ids))
                    .values(priority=top + 1))


def lease_next(session: Session, lease_id: str, take: int, until: datetime) -> list[Leased]:
    """Lease the next `take` unleased (or expired) rows, counting the attempt, in one
    UPDATE … RETURNING, highest priority first, then newest. Call it as the first statement
    of a write transaction.

    On PostgreSQL the rows are chosen `FOR UPDATE SKIP LOCKED`: a row another runner is
    leasing at this moment is passed over, not waited for and never taken twice, even by
    runners whose transactions overlap (SQLite has one writer at a time and ignores it)."""
    now = utcnow()
    order = (QueuedAnalysis.priority.desc(), QueuedAnalysis.enqueued_at.desc(),
             QueuedAnalysis.content_id.desc())
    takeable = (select(QueuedAnalysis.content_id)
                .where(or_(QueuedAnalysis.leased_until.is_(None),
                           QueuedAnalysis.leased_until < now))
                .order_by(*order).limit(take).with_for_update(skip_locked=True))
    taken = session.execute(
        update(QueuedAnalysis).where(QueuedAnalysis.content_id.in_(takeable))
        .values(leased_by=lease_id, leased_until=until, attempts=QueuedAnalysis.attempts + 1)
        .returning(QueuedAnalysis.content_id, QueuedAnalysis.attempts,
                   QueuedAnalysis.priority, QueuedAnalysis.enqueued_at)).all()
    # RETURNING comes in no defined order: restore the queue's.
    ordered = sorted(taken, key=lambda r: (r.priority, r.enqueued_at, r.content_id),
                     reverse=True)
    return [Leased(r.content_id, r.attempts) for r in ordered]


def _mine(lease_id: str, content_ids: Collection[int]) -> Any:
    """Rows among `content_ids` still leased by `lease_id` (another runner may have taken a
    row whose lease lapsed)."""
    return and_(QueuedAnalysis.content_id.in_(content_ids),
                QueuedAnalysis.leased_by == lease_id)


def renew_lease(session: Session, lease_id: str, content_ids: Collection[int],
                until: datetime) -> None:
    if content_ids:
        session.execute(update(QueuedAnalysis).where(_mine(lease_id, content_ids))
                        .values(leased_until=until))


def release(session: Session, lease_id: str, content_ids: Collection[int], *,
            uncount_attempt: bool) -> None:
    """End `lease_id`'s lease on these rows so the next take (here or elsewhere) retries
    them. `uncount_attempt`: the attempt this lease counted was no failure (a clean stop)."""
    if not content_ids:
        return
    values: dict[str, Any] = {"leased_by": None, "leased_until": None}
    if uncount_attempt:
        values["attempts"] = greatest(QueuedAnalysis.attempts - 1, 0)
    session.execute(update(QueuedAnalysis).where(_mine(lease_id, content_ids)).values(values))


def leaseholders(session: Session) -> list[str]:
    return list(session.scalars(select(QueuedAnalysis.leased_by)
                                .where(QueuedAnalysis.leased_by.is_not(None)).distinct()))


def release_leases_of(session: Session, holders: Collection[str]) -> int:
    """Release every row leased by these holders (runners known to be gone)."""
    if not holders:
        return 0
    return _rowcount(session.execute(
        update(QueuedAnalysis).where(QueuedAnalysis.leased_by.in_(holders))
        .values(leased_by=None, leased_until=None)))


def remove(session: Session, content_ids: Collection[int]) -> None:
    if content_ids:
        session.execute(delete(QueuedAnalysis).where(QueuedAnalysis.content_id.in_(content_ids)))


# ------------------------------------------------------------------------------- reads


def current_results(session: Session, content_ids: Collection[int],
                    versions: Mapping[str, str]) -> dict[int, frozenset[str]]:
    """content id -> analysers with a result at their current version."""
    found: dict[int, set[str]] = {}
    for cid, analyser, version in session.execute(
            select(AnalysisResult.content_id, AnalysisResult.analyser, AnalysisResult.version)
            .where(AnalysisResult.content_id.in_(content_ids))):
        if versions.get(analyser) == version:
            found.setdefault(cid, set()).add(analyser)
    return {cid: frozenset(a) for cid, a in found.items()}


def work_for(session: Session, content_ids: Collection[int]) -> dict[int, QueuedWork]:
    """content id -> one ok file showing it (the oldest row), its SHA-256 and prompt;
    contents with no readable file left are absent."""
    prompts: dict[int, str | None] = {
        cid: prompt for cid, prompt in session.execute(
            select(Generation.content_id, Generation.prompt)
            .where(Generation.content_id.in_(content_ids)))}
    chosen: dict[int, QueuedWork] = {}
    for image_id, cid, path, sha256 in session.execute(
            select(Image.id, Image.content_id, Image.path, Content.sha256)
            .join(Content, Content.id == Image.content_id)
            .where(Image.content_id.in_(content_ids), Image.status == ImageStatus.OK.value)
            .order_by(Image.id)):
        if cid is not None and cid not in chosen:
            chosen[cid] = QueuedWork(cid, image_id, path, sha256, prompts.get(cid))
    return chosen


def has_ok_image(session: Session, content_id: int) -> bool:
    return bool(session.scalar(select(exists().where(
        and_(Image.content_id == content_id, Image.status == ImageStatus.OK.value)))))


def folder_of(session: Session, image_id: int) -> int | None:
    return session.scalar(select(Image.folder_id).where(Image.id == image_id))


def contents_of_images(session: Session, image_ids: Collection[int]) -> list[int]:
    """The contents these images show now (images without one left out)."""
    return list(session.scalars(select(Image.content_id).where(
        Image.id.in_(image_ids), Image.content_id.is_not(None))))


# ------------------------------------------------------------------------------- results


def _rowcount(result: Any) -> int:
    """Rows an INSERT/UPDATE touched (a CursorResult's rowcount; 0 when unknown)."""
    return int(getattr(result, "rowcount", 0) or 0)


def _upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    statement = insert_for(session, AnalysisResult).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[AnalysisResult.content_id, AnalysisResult.analyser],
        set_={name: statement.excluded[name]
              for name in ("version", "label", "score", "scores", "error", "analysed_at")})
    session.execute(statement)


def write_results(session: Session, results: Mapping[tuple[int, str], OutputLike],
                  versions: Mapping[str, str]) -> None:
    """Upsert one result per (content id, analyser) and replace that pair's tags (a
    re-analysis never leaves stale tags)."""
    if not results:
        return
    now = utcnow()
    _upsert(session, [
        dict(content_id=cid, analyser=analyser,
             version=output.version or versions[analyser], label=output.label,
             score=None if output.score is None else float(output.score),
             scores={k: float(v) for k, v in (output.scores or {}).items()},
             error=output.error, analysed_at=now)
        for (cid, analyser), output in results.items()])
    # Bulk payloads live in their own tables, versioned like the result row: style's Gram
    # matrices, clip's embedding (a failed analysis stores none).
    grams = [(cid, output.version or versions[analyser], output.payload)
             for (cid, analyser), output in results.items() if analyser in STYLE_ANALYSERS]
    if grams:
        save_grams(session, grams)
    store_embeddings(session, [
        StoredEmbedding(cid, output.version or versions[analyser], output.payload)
        for (cid, analyser), output in results.items()
        if analyser in EMBEDDING_ANALYSERS and output.payload is not None
        and output.error is None])
    session.execute(delete(Tag).where(tuple_(Tag.content_id, Tag.analyser).in_(list(results))))
    tag_rows: list[dict[str, Any]] = []
    for (cid, analyser), output in results.items():
        best: dict[str, float] = {}
        for tag, score in output.tags or ():
            best[tag] = max(float(score), best.get(tag, 0.0))
        tag_rows.extend(dict(content_id=cid, analyser=analyser, tag=t, score=s)
                        for t, s in best.items())
    if tag_rows:
        session.execute(insert_for(session, Tag).values(tag_rows).on_conflict_do_nothing())


def give_up(session: Session, content_ids: Collection[int], versions: Mapping[str, str],
            present: Mapping[int, frozenset[str]], message: str) -> list[str]:
    """Record `message` as the error result of every analyser these contents still lack and
    drop them from the queue. Returns the analyser of each error recorded."""
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {"content_id": cid, "analyser": a, "version": v, "label": None, "score": None,
         "scores": {}, "error": message, "analysed_at": now}
        for cid in content_ids for a, v in versions.items() if a not in present.get(cid, ())]
    if rows:
        _upsert(session, rows)
    remove(session, content_ids)
    return [str(row["analyser"]) for row in rows]


def mark_unreadable(session: Session, image_id: int, status: ImageStatus, message: str) -> None:
    """An image whose file could not be decoded (BROKEN) or is gone (MISSING)."""
    session.execute(update(Image).where(Image.id == image_id)
                    .values(status=status.value, error=message))

