"""The report's reads: per-group sums, per-picture scores and showcase pictures, for the
pictures an ImageFilter shows, grouped by model, LoRA, sampler, prompt, generator or folder.

A *picture* is a content: several files showing one picture count once per group (a picture
in two folders counts in both; one with two LoRAs in both LoRA groups). Only files the filter
shows count (by default readable ones). The grouping and the sums happen in SQL, so the
figures of a 100k library need one pass over its rows (benchmarks/bench_report.py);
library/report.py turns the sums into means, rates and standard deviations.

Definitions the sums follow (README "gentriage report"):
- aesthetic: the aesthetic analyser's score (results without error);
- prompt adherence: its CLIPScore, `scores.prompt_adherence`;
- judged incoherent: the coherence analyser's verdict (its label) is incoherent or
  semi-incoherent; coherent: its label is coherent;
- good: aesthetic >= the threshold, not rejected, not judged incoherent.
Every function takes the caller's session and never commits.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from db.filters import ImageFilter

# The aliases filter_clauses' terms refer to (images `i`, outer-joined contents `c`).
from db.queries import matching_files
from db.schema import AnalysisResult, Content, Folder, Generation, Image, LoraUse

GROUPINGS: tuple[str, ...] = ("model", "lora", "sampler", "prompt", "generator", "folder")
AESTHETIC = "aesthetic"
COHERENCE = "coherence"
PROMPT_ADHERENCE_KEY = "prompt_adherence"  # where inference/aesthetic.py keeps CLIPScore
COHERENT_LABEL = "coherent"
INCOHERENT_LABELS = ("incoherent", "semi-incoherent")

_generation = Generation.__table__
_loras = LoraUse.__table__
_folders = Folder.__table__
_results = AnalysisResult.__table__


class Totals(NamedTuple):
    """Counts and sums over one group's pictures (None group: the value is unknown). A
    NamedTuple: a prompt grouping can have a group per picture, 100k of them."""

    group: str | None
    images: int
    aesthetic_n: int  # pictures with an aesthetic score
    aesthetic_sum: float
    aesthetic_sum_sq: float
    good: int  # aesthetic >= threshold, not rejected, not judged incoherent
    adherence_n: int  # pictures with a prompt-adherence score
    adherence_sum: float
    coherence_n: int  # pictures the coherence analyser judged
    coherent: int  # of those, judged coherent
    accepted: int
    rejected: int


class PromptTotals(NamedTuple):
    """Totals of one (group, prompt)."""

    totals: Totals
    prompt: str


class PictureScore(NamedTuple):
    """One picture of a group, for charts and the style loss (a NamedTuple: 100k of them)."""

    group: str | None
    content_id: int
    aesthetic: float | None
    adherence: float | None


@dataclass(frozen=True)
class Showcase:
    """One of a group's best pictures, with what the blur rule reads."""

    group: str | None
    content_id: int
    sha256: str
    aesthetic: float
    decision: str
    flagged: bool
    analysed: bool
    in_sensitive_folder: bool


def _check(by: str) -> None:
    if by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r} (use {', '.join(GROUPINGS)})")


def _pairs(session: Session, by: str, f: ImageFilter, with_prompt: bool = False) -> Any:
    """Subquery of (grp, cid[, prompt]): each picture the filter shows, once per group it
    belongs to. The pictures are found first, as a set of content ids (integers), and only
    then given their group: de-duplicating files of one picture never sorts group texts
    (long prompts, paths), which at 100k pictures would cost more than everything else."""
    _check(by)
    if by == "folder":  # a picture's files may lie in several folders: one row per folder
        files = matching_files(session, f, "folder_id", "content_id").distinct().subquery(
            "files")
        source: Any = files.outerjoin(_folders, _folders.c.id == files.c.folder_id)
        key, cid = _folders.c.path, files.c.content_id
    else:
        shown = matching_files(session, f, "content_id")
        pictures = Content.__table__.alias("pic")
        cid = pictures.c.id
        if by == "lora":
            source = pictures.outerjoin(_loras, _loras.c.content_id == cid)
            key = _loras.c.name
        else:
            source = pictures.outerjoin(_generation, _generation.c.content_id == cid)
            key = _generation.c[by]
    if with_prompt and by in ("folder", "lora"):
        source = source.outerjoin(_generation, _generation.c.content_id == cid)
    columns = [key.label("grp"), cid.label("cid")]
    if with_prompt:
        columns.append(_generation.c.prompt.label("prompt"))
    stmt = select(*columns).select_from(source)
    if by != "folder":
        stmt = stmt.where(cid.in_(shown))
    if by == "lora":
        stmt = stmt.distinct()  # a LoRA listed twice in one picture's metadata counts once
    return stmt.subquery("pairs")


def _result(analyser: str, name: str, cid: Any) -> Any:
    """The analyser's error-free result of the picture (outer-joined)."""
    alias = _results.alias(name)
    return alias, and_(alias.c.content_id == cid, alias.c.analyser == analyser,
                       alias.c.error.is_(None))


def _only(key: Any, groups: Collection[str | None] | None) -> list[ColumnElement]:
    if groups is None:
        return []
    named = sorted(g for g in groups if g is not None)
    clauses = [key.in_(named)] if named else []
    if None in groups:
        clauses.append(key.is_(None))
    return [or_(*clauses)] if clauses else [literal(False)]


def _count(condition: ColumnElement) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _totals_select(pairs: Any, good_threshold: float, extra_keys: tuple[Any, ...] = ()) -> Any:
    aes, aes_on = _result(AESTHETIC, "aes", pairs.c.cid)
    coh, coh_on = _result(COHERENCE, "coh", pairs.c.cid)
    content = Content.__table__.alias("pc")
    adherence = aes.c.scores[PROMPT_ADHERENCE_KEY].as_float()
    not_incoherent = or_(coh.c.label.is_(None), coh.c.label.not_in(INCOHERENT_LABELS))
    good = and_(aes.c.score >= good_threshold, content.c.decision != "rejected", not_incoherent)
    keys = (pairs.c.grp, *extra_keys)
    # Columns in Totals' order, extra keys last.
    return (select(pairs.c.grp, func.count(),
                   func.count(aes.c.score), func.coalesce(func.sum(aes.c.score), 0.0),
                   func.coalesce(func.sum(aes.c.score * aes.c.score), 0.0),
                   _count(good),
                   func.count(adherence), func.coalesce(func.sum(adherence), 0.0),
                   func.count(coh.c.label), _count(coh.c.label == COHERENT_LABEL),
                   _count(content.c.decision == "accepted"),
                   _count(content.c.decision == "rejected"), *extra_keys)
            .select_from(pairs.join(content, content.c.id == pairs.c.cid)
                         .outerjoin(aes, aes_on).outerjoin(coh, coh_on))
            .group_by(*keys))


def group_totals(session: Session, by: str, f: ImageFilter, good_threshold: float
                 ) -> list[Totals]:
    """One Totals per group (any order). SQLite returns the counts as integers and the sums
    as floats already: rows become Totals as they are."""
    stmt = _totals_select(_pairs(session, by, f), good_threshold)
    return [Totals._make(row) for row in session.execute(stmt).all()]


def prompt_totals(session: Session, by: str, f: ImageFilter, good_threshold: float,
                  min_images: int = 2) -> list[PromptTotals]:
    """Totals per (group, prompt) for prompts with at least `min_images` pictures in the
    group (a checkpoint test renders each prompt with several seeds)."""
    pairs = _pairs(session, by, f, with_prompt=True)
    stmt = (_totals_select(pairs, good_threshold, (pairs.c.prompt,))
            .where(pairs.c.prompt.is_not(None))
            .having(func.count() >= min_images))
    return [PromptTotals(Totals._make(row[:-1]), row[-1]) for row in session.execute(stmt).all()]


def picture_scores(session: Session, by: str, f: ImageFilter) -> Iterator[PictureScore]:
    """Every picture of every group with its aesthetic and prompt-adherence scores."""
    pairs = _pairs(session, by, f)
    aes, aes_on = _result(AESTHETIC, "aes", pairs.c.cid)
    adherence = aes.c.scores[PROMPT_ADHERENCE_KEY].as_float()
    stmt = select(pairs.c.grp, pairs.c.cid, aes.c.score, adherence).select_from(
        pairs.outerjoin(aes, aes_on))
    for row in session.execute(stmt).all():
        yield PictureScore._make(row)


def showcase(session: Session, by: str, f: ImageFilter, per_group: int = 4,
             groups: Collection[str | None] | None = None) -> list[Showcase]:
    """Each group's best pictures by aesthetic score (not rejected ones: a person decided
    they should not be seen), best first, with the fields the blur rule reads. `groups`:
    only these groups (None: all)."""
    pairs = _pairs(session, by, f)
    aes, aes_on = _result(AESTHETIC, "aes", pairs.c.cid)
    content = Content.__table__.alias("sc")
    rank = func.row_number().over(partition_by=pairs.c.grp,
                                  order_by=(aes.c.score.desc(), pairs.c.cid)).label("rank")
    ranked = (select(pairs.c.grp, pairs.c.cid, aes.c.score, rank)
              .select_from(pairs.join(aes, aes_on).join(content, content.c.id == pairs.c.cid))
              .where(aes.c.score.is_not(None), content.c.decision != "rejected",
                     *_only(pairs.c.grp, groups))
              .subquery("ranked"))
    image, folder = Image.__table__.alias("si"), _folders.alias("sf")
    sensitive = exists(select(literal(1)).select_from(
        image.join(folder, folder.c.id == image.c.folder_id)).where(
        image.c.content_id == ranked.c.cid, folder.c.sensitive.is_(True)))
    stmt = (select(ranked.c.grp, ranked.c.cid, content.c.sha256, ranked.c.score,
                   content.c.decision, content.c.flagged, content.c.flag_nsfw,
                   content.c.flag_incoherent, content.c.analysed, sensitive)
            .select_from(ranked.join(content, content.c.id == ranked.c.cid))
            .where(ranked.c.rank <= per_group)
            .order_by(ranked.c.grp, ranked.c.rank))
    return [Showcase(grp, cid, sha, float(score), decision or "none",
                     bool(flagged or nsfw or incoherent), bool(analysed), bool(in_sensitive))
            for grp, cid, sha, score, decision, flagged, nsfw, incoherent, analysed, in_sensitive
            in session.execute(stmt)]
