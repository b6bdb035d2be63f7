"""Which images are flagged, derived from analysis results and thresholds.

An image is flagged when any enabled NSFW analyser says nsfw at or above its threshold, or
coherence says incoherent / semi-incoherent at or above its threshold. The verdict is stored
on the content (flagged, flag_nsfw, flag_incoherent, analysed) so the grid filters and blurs
without recomputing per row; it is recomputed when results arrive and when thresholds or the
set of enabled analysers change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.schema import AnalysisResult, Content

NSFW_ANALYSERS = ("nsfw-default", "nsfw-vit", "safety-checker")
COHERENCE = "coherence"


class FlagThresholds(Protocol):
    """What the rule reads (library.settings.Thresholds satisfies it)."""

    nsfw_default: float
    nsfw_vit: float
    safety_checker: float
    coherence: float


def _is_nsfw(result: AnalysisResult, t: FlagThresholds) -> bool:
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


def _is_incoherent(result: AnalysisResult, t: FlagThresholds) -> bool:
    if result.error:
        return False
    scores = result.scores or {}
    failed = float(scores.get("incoherent", 0.0)) + float(scores.get("semi-incoherent", 0.0))
    return failed >= t.coherence


def verdict(results: Iterable[AnalysisResult], thresholds: FlagThresholds,
            enabled: Collection[str]) -> tuple[bool, bool, bool]:
    """(nsfw, incoherent, analysed) for one content's results."""
    nsfw = incoherent = analysed = False
    for result in results:
        if result.analyser not in enabled:
            continue
        if result.analyser in NSFW_ANALYSERS:
            analysed = analysed or result.error is None
            nsfw = nsfw or _is_nsfw(result, thresholds)
        elif result.analyser == COHERENCE:
            incoherent = incoherent or _is_incoherent(result, thresholds)
    return nsfw, incoherent, analysed


def update_flags(session: Session, content_ids: Iterable[int] | None,
                 thresholds: FlagThresholds, enabled: Collection[str]) -> list[int]:
    """Recompute flags for the given contents (None = all). Returns the ids whose stored
    verdict changed, so the grid repaints only those."""
    query = select(AnalysisResult)
    if content_ids is not None:
        ids = list(set(content_ids))
        if not ids:
            return []
        query = query.where(AnalysisResult.content_id.in_(ids))
    by_content: dict[int, list[AnalysisResult]] = defaultdict(list)
    for result in session.scalars(query):
        by_content[result.content_id].append(result)
    current_query = select(Content.id, Content.flag_nsfw, Content.flag_incoherent,
                           Content.analysed)
    if content_ids is not None:
        current_query = current_query.where(Content.id.in_(ids))
    changed = []
    for cid, old_nsfw, old_incoherent, old_analysed in session.execute(current_query):
        new = verdict(by_content.get(cid, ()), thresholds, enabled)
        if new != (old_nsfw, old_incoherent, old_analysed):
            nsfw, incoherent, analysed = new
            session.execute(update(Content).where(Content.id == cid).values(
                flag_nsfw=nsfw, flag_incoherent=incoherent, analysed=analysed,
                flagged=nsfw or incoherent))
            changed.append(cid)
    return changed
