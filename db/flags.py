"""Which images are flagged, derived from analysis results and thresholds.

An image is flagged when any enabled NSFW analyser says nsfw at or above its threshold, or
coherence says incoherent / semi-incoherent at or above its threshold. The verdict is stored
on the content (flagged, flag_nsfw, flag_incoherent, analysed) so the grid filters and blurs
without recomputing per row; it is recomputed when results arrive and when thresholds or the
set of enabled analysers change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.schema import AnalysisResult, Content
from inference.catalog import COHERENCE_ANALYSERS, NSFW_ANALYSERS

_RULE_ANALYSERS = (*NSFW_ANALYSERS, *COHERENCE_ANALYSERS)  # the only results the rule reads
# Contents per step of a recompute (also keeps IN lists far below SQLite's parameter limit).
CHUNK = 500


class FlagThresholds(Protocol):
    """What the rule reads (library.settings.Thresholds satisfies it)."""

    nsfw_default: float
    nsfw_vit: float
    safety_checker: float
    coherence: float


class ResultLike(Protocol):
    """The fields of an AnalysisResult the rule reads (an ORM row or a selected Row)."""

    analyser: str
    score: float | None
    scores: Mapping[str, float] | None
    error: str | None


def _is_nsfw(result: ResultLike, t: FlagThresholds) -> bool:
    if result.error:
        return False
    scores = result.scores or {}
    if result.analyser == "nsfw-default":
        return result.score is not None and result.score >= t.nsfw_default
    if result.analyser == "nsfw-vit":
        return float(scores.get("nsfw", 0.0)) >= t.nsfw_vit
    if result.analyser == "safety-checker":
        # score = the largest per-concept margin; upstream flags any margin > 0.
        return result.score is not None and result.score > t.safety_checker
    return False


def _is_incoherent(result: ResultLike, t: FlagThresholds) -> bool:
    if result.error:
        return False
    scores = result.scores or {}
    failed = float(scores.get("incoherent", 0.0)) + float(scores.get("semi-incoherent", 0.0))
    return failed >= t.coherence


def verdict(results: Iterable[ResultLike], thresholds: FlagThresholds,
            enabled: Collection[str]) -> tuple[bool, bool, bool]:
    """(nsfw, incoherent, analysed) for one content's results; `analysed`: an enabled NSFW
    analyser's verdict is present (any of them, not only the default one)."""
    nsfw = incoherent = analysed = False
    for result in results:
        if result.analyser not in enabled:
            continue
        if result.analyser in NSFW_ANALYSERS:
            analysed = analysed or result.error is None
            nsfw = nsfw or _is_nsfw(result, thresholds)
        elif result.analyser in COHERENCE_ANALYSERS:
            incoherent = incoherent or _is_incoherent(result, thresholds)
    return nsfw, incoherent, analysed


def update_flags(session: Session, content_ids: Iterable[int] | None,
                 thresholds: FlagThresholds, enabled: Collection[str]) -> list[int]:
    """Recompute flags for the given contents (None = all). Returns the ids whose stored
    verdict changed, so the grid repaints only those.

    Works through CHUNK contents at a time, reading only the columns the rule needs, so a
    whole-library recompute of a 100k library holds one chunk in memory, not every result.
    """
    changed: list[int] = []
    for chunk in _chunks_of_contents(session, content_ids):
        changed += _update_chunk(session, chunk, thresholds, enabled)
    return changed


def recompute_next_chunk(session: Session, after: int, thresholds: FlagThresholds,
                         enabled: Collection[str]) -> tuple[int, list[int]] | None:
    """One step of a whole-library recompute that commits between steps: recompute the
    flags of the next CHUNK contents with an id above `after`. Returns (the last id of the
    chunk, the ids whose verdict changed), or None once no content is left. Call it inside
    a write transaction (db.transaction.write_transaction), one transaction per chunk."""
    ids = list(session.scalars(select(Content.id).where(Content.id > after)
                               .order_by(Content.id).limit(CHUNK)))
    if not ids:
        return None
    return ids[-1], _update_chunk(session, ids, thresholds, enabled)


def _chunks_of_contents(session: Session,
                        content_ids: Iterable[int] | None) -> Iterator[list[int]]:
    if content_ids is not None:
        ids = sorted(set(content_ids))
        for start in range(0, len(ids), CHUNK):
            yield ids[start:start + CHUNK]
        return
    last = 0
    while True:  # keyset walk over every content
        chunk = list(session.scalars(
            select(Content.id).where(Content.id > last).order_by(Content.id).limit(CHUNK)))
        if not chunk:
            return
        yield chunk
        last = chunk[-1]


def _update_chunk(session: Session, ids: list[int], thresholds: FlagThresholds,
                  enabled: Collection[str]) -> list[int]:
    by_content: dict[int, list[ResultLike]] = defaultdict(list)
    for row in session.execute(
            select(AnalysisResult.content_id, AnalysisResult.analyser, AnalysisResult.score,
                   AnalysisResult.scores, AnalysisResult.error)
            .where(AnalysisResult.content_id.in_(ids),
                   AnalysisResult.analyser.in_(_RULE_ANALYSERS))):
        by_content[row.content_id].append(row)
    # Contents sharing a new verdict are updated together: a few statements per chunk.
    to_write: dict[tuple[bool, bool, bool], list[int]] = defaultdict(list)
    for cid, old_nsfw, old_incoherent, old_analysed in session.execute(
            select(Content.id, Content.flag_nsfw, Content.flag_incoherent, Content.analysed)
            .where(Content.id.in_(ids))):
        new = verdict(by_content.get(cid, ()), thresholds, enabled)
        if new != (old_nsfw, old_incoherent, old_analysed):
            to_write[new].append(cid)
    for (nsfw, incoherent, analysed), cids in to_write.items():
        session.execute(update(Content).where(Content.id.in_(cids)).values(
            flag_nsfw=nsfw, flag_incoherent=incoherent, analysed=analysed,
            flagged=nsfw or incoherent))
    return sorted(cid for cids in to_write.values() for cid in cids)
