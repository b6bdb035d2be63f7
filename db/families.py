"""Reads and writes for stacks and near-duplicate groups (the rules are library.families).

Every function takes the caller's session and never commits. Content-level facts: a stack
key, a perceptual hash and a duplicate group belong to the content (the picture), so moving
or renaming a file changes none of them. Only contents with at least one readable file
("ok") take part in grouping and in the member lists: a picture whose files are all missing
is nobody's duplicate and cannot be kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Exists,
    Select,
    and_,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session

from db.filters import ImageFilter
from db.queries import matching_image_ids
from db.schema import AnalysisResult, Content, Generation, Image, ImageStatus, LoraUse

_IN_CHUNK = 500
_OK = ImageStatus.OK.value


def _chunks(items: Sequence, size: int = _IN_CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _has_ok_file() -> Exists:
    return exists().where(Image.content_id == Content.id, Image.status == _OK)


# --- filling in (ingest and backfill) ------------------------------------------------------

def contents_missing_phash(session: Session, limit: int, after_id: int = 0
                           ) -> list[tuple[int, str, str]]:
    """(content id, sha256, path of one readable file) of contents that have a readable file
    but no perceptual hash yet, by id, after `after_id`."""
    path = (select(Image.path).where(Image.content_id == Content.id, Image.status == _OK)
            .order_by(Image.id).limit(1).scalar_subquery())
    rows = session.execute(
        select(Content.id, Content.sha256, path)
        .where(Content.phash.is_(None), Content.id > after_id, _has_ok_file())
        .order_by(Content.id).limit(limit))
    return [(cid, sha, p) for cid, sha, p in rows]


def set_phashes(session: Session, values: Mapping[int, int]) -> None:
    """Store perceptual hashes (signed 64-bit, library.families.to_signed64)."""
    _update_by_id(session, "phash", values)


def generations_missing_stack_key(session: Session, limit: int, after_id: int = 0
                                  ) -> list[tuple[int, str | None, str | None, str | None]]:
    """(content id, prompt, negative prompt, model) of contents with a non-empty prompt but
    no stack key yet (libraries indexed before stacks existed), by id after `after_id`."""
    rows = session.execute(
        select(Generation.content_id, Generation.prompt, Generation.negative_prompt,
               Generation.model)
        .join(Content, Content.id == Generation.content_id)
        .where(Content.stack_key.is_(None), Generation.prompt.is_not(None),
               func.trim(Generation.prompt) != "", Generation.content_id > after_id)
        .order_by(Generation.content_id).limit(limit))
    return [(cid, p, n, m) for cid, p, n, m in rows]


def set_stack_keys(session: Session, values: Mapping[int, str | None]) -> None:
    _update_by_id(session, "stack_key", values)


# --- near-duplicate groups ------------------------------------------------------------------

def hashes_to_group(session: Session) -> tuple[list[int], list[int]]:
    """(content ids, perceptual hashes) of every picture with a hash and a readable file."""
    rows = session.connection().execute(
        select(Content.id, Content.phash)
        .where(Content.phash.is_not(None), _has_ok_file()).order_by(Content.id)).all()
    return [cid for cid, _ in rows], [h for _, h in rows if h is not None]


def store_duplicate_groups(session: Session, groups: Iterable[Sequence[int]]) -> list[int]:
    """Make `groups` the stored grouping: each member's dup_group is its group's smallest
    content id, every other picture has none. Only rows whose group changes are written.
    Returns the content ids whose group changed."""
    wanted: dict[int, int] = {}
    for group in groups:
        label = min(group)
        for content_id in group:
            wanted[content_id] = label
    current: dict[int, int | None] = {
        cid: label for cid, label in session.execute(
            select(Content.id, Content.dup_group).where(Content.dup_group.is_not(None)))}
    changed = [cid for cid in current if cid not in wanted]
    changed += [cid for cid, label in wanted.items() if current.get(cid) != label]
    _update_by_id(session, "dup_group", {cid: wanted.get(cid) for cid in changed})
    return sorted(changed)


def _update_by_id(session: Session, column: str, values: Mapping[int, object]) -> None:
    """One column of many contents, as one executemany (an UPDATE per distinct value would
    cost a statement each: thousands for a regrouped library)."""
    if values:
        session.execute(update(Content), [{"id": cid, column: value}
                                          for cid, value in sorted(values.items())])


@dataclass
class FamilyMember:
    """One picture of a family with what the keeper rule and the listings read
    (satisfies library.families.KeeperFacts)."""

    content_id: int
    decision: str
    rating: int
    width: int | None
    height: int | None
    format: str | None
    oldest_mtime_ns: int
    phash: int | None
    paths: list[str] = field(default_factory=list)  # readable files, oldest first
    image_ids: list[int] = field(default_factory=list)  # the same files' image ids


def family_members(session: Session, content_ids: Iterable[int],
                   f: ImageFilter | None = None) -> dict[int, FamilyMember]:
    """The members among `content_ids` that have a readable file (and, with `f`, a file the
    filter shows), with their files oldest first."""
    ids = sorted(set(content_ids))
    members: dict[int, FamilyMember] = {}
    shown = matching_image_ids(session, f) if f is not None else None
    for chunk in _chunks(ids):
        stmt = (select(Content.id, Content.decision, Content.rating, Content.width,
                       Content.height, Content.format, Content.phash, Image.id, Image.path,
                       Image.mtime_ns)
                .join(Image, and_(Image.content_id == Content.id, Image.status == _OK))
                .where(Content.id.in_(chunk)).order_by(Image.mtime_ns, Image.id))
        if shown is not None:
            stmt = stmt.where(Image.id.in_(shown))
        for (cid, decision, rating, width, height, fmt, phash, image_id, path,
             mtime_ns) in session.execute(stmt):
            member = members.get(cid)
            if member is None:
                member = members[cid] = FamilyMember(cid, decision or "none", rating or 0,
                                                     width, height, fmt, mtime_ns, phash)
            member.paths.append(path)
            member.image_ids.append(image_id)
    return members


def duplicate_group_ids(session: Session) -> dict[int, list[int]]:
    """The stored groups: group id -> member content ids (those with a readable file)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for cid, label in session.execute(
            select(Content.id, Content.dup_group)
            .where(Content.dup_group.is_not(None), _has_ok_file()).order_by(Content.id)):
        if label is not None:
            groups[label].append(cid)
    return {label: ids for label, ids in groups.items() if len(ids) > 1}


def stored_group_members(session: Session, content_id: int | None,
                         f: ImageFilter | None = None) -> list[FamilyMember]:
    """The members of the stored duplicate group `content_id` belongs to (with `f`: those
    whose files the filter shows); empty when it has none."""
    if content_id is None:
        return []
    label = session.scalar(select(Content.dup_group).where(Content.id == content_id))
    if label is None:
        return []
    ids = list(session.scalars(select(Content.id).where(Content.dup_group == label)))
    return list(family_members(session, ids, f).values())


def current_state(session: Session, content_ids: Iterable[int]
                  ) -> dict[int, tuple[str, list[str]]]:
    """Decision and readable file paths now, per content (re-checked before resolving)."""
    state: dict[int, tuple[str, list[str]]] = {}
    ids = sorted(set(content_ids))
    for chunk in _chunks(ids):
        for cid, decision in session.execute(
                select(Content.id, Content.decision).where(Content.id.in_(chunk))):
            state[cid] = (decision or "none", [])
        for owner, path in session.execute(
                select(Image.content_id, Image.path)
                .where(Image.content_id.in_(chunk), Image.status == _OK)
                .order_by(Image.mtime_ns, Image.id)):
            if owner is not None:
                state[owner][1].append(path)
    return state


# --- stacks -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StackSummary:
    """One stack as the Stack view shows it: its best image and how many images it has."""

    stack_key: str
    count: int
    best_image_id: int
    newest_mtime_ns: int


def best_first() -> list[Any]:
    """ORDER BY terms putting a stack's best image first: the highest rating, then accepted,
    then the highest aesthetic score (none counts lowest), then the newest file — the order
    of `sort:stack` inside a stack, stored per image by the database (migration 0009)."""
    return [Image.stack_rank, Image.id]


def stack_summaries(session: Session, f: ImageFilter) -> list[StackSummary]:
    """Every stack among the images `f` shows, newest stack first (by its newest image),
    each with its best image and its image count. Images without a stack are left out."""
    ranked = (
        select(Content.stack_key.label("stack_key"), Image.id.label("image_id"),
               func.row_number().over(partition_by=Content.stack_key,
                                      order_by=best_first()).label("rank"),
               func.count().over(partition_by=Content.stack_key).label("n"),
               func.max(Image.mtime_ns).over(partition_by=Content.stack_key).label("newest"))
        .join(Content, Content.id == Image.content_id)
        .where(Content.stack_key.is_not(None), Image.id.in_(matching_image_ids(session, f)))
        .subquery())
    rows = session.execute(
        select(ranked.c.stack_key, ranked.c.n, ranked.c.image_id, ranked.c.newest)
        .where(ranked.c.rank == 1).order_by(ranked.c.newest.desc(), ranked.c.stack_key))
    return [StackSummary(key, n, image_id, newest) for key, n, image_id, newest in rows]


def stack_of_image(session: Session, image_id: int) -> str | None:
    return session.scalar(select(Content.stack_key).join(Image, Image.content_id == Content.id)
                          .where(Image.id == image_id))


def stack_content_ids(session: Session, stack_key: str, f: ImageFilter | None = None
                      ) -> list[int]:
    """The pictures of a stack (with `f`: those whose files the filter shows)."""
    stmt: Select = (select(Content.id).join(Image, Image.content_id == Content.id)
                    .where(Content.stack_key == stack_key).distinct().order_by(Content.id))
    if f is not None:
        stmt = stmt.where(Image.id.in_(matching_image_ids(session, f)))
    return list(session.scalars(stmt))


# --- export -----------------------------------------------------------------------------------

def family_columns(session: Session, content_ids: Iterable[int]
                   ) -> dict[int, tuple[str | None, int | None]]:
    """content id -> (stack key, duplicate group) for the export's `stack` and
    `duplicate_group` columns."""
    ids = sorted(set(content_ids))
    found: dict[int, tuple[str | None, int | None]] = {}
    for chunk in _chunks(ids):
        for cid, key, group in session.execute(
                select(Content.id, Content.stack_key, Content.dup_group)
                .where(Content.id.in_(chunk))):
            found[cid] = (key, group)
    return found


# --- the compare view -------------------------------------------------------------------------

@dataclass
class CompareFacts:
    """What the compare view's table shows for one image."""

    image_id: int
    content_id: int | None
    generation: dict[str, object] = field(default_factory=dict)  # Generation columns
    loras: list[tuple[str, float | None]] = field(default_factory=list)
    # analyser -> (label, score) of its current result (errors left out)
    results: dict[str, tuple[str | None, float | None]] = field(default_factory=dict)
    file_size: int = 0


COMPARED_GENERATION = ("seed", "steps", "cfg_scale", "sampler", "scheduler", "model",
                       "width", "height", "generator", "prompt", "negative_prompt")


def compare_facts(session: Session, image_ids: Sequence[int]) -> dict[int, CompareFacts]:
    """Generation fields, LoRAs and analyser results of a few images (the compare view)."""
    ids = list(dict.fromkeys(image_ids))
    facts: dict[int, CompareFacts] = {}
    for image_id, content_id, size in session.execute(
            select(Image.id, Image.content_id, Image.size).where(Image.id.in_(ids))):
        facts[image_id] = CompareFacts(image_id, content_id, file_size=size or 0)
    by_content = {f.content_id: f for f in facts.values() if f.content_id is not None}
    if not by_content:
        return facts
    columns = [getattr(Generation, name) for name in COMPARED_GENERATION]
    for row in session.execute(select(Generation.content_id, *columns)
                               .where(Generation.content_id.in_(list(by_content)))):
        by_content[row[0]].generation = dict(zip(COMPARED_GENERATION, row[1:]))
    for content_id, name, weight in session.execute(
            select(LoraUse.content_id, LoraUse.name, LoraUse.weight)
            .where(LoraUse.content_id.in_(list(by_content))).order_by(LoraUse.id)):
        by_content[content_id].loras.append((name, weight))
    for content_id, analyser, label, score in session.execute(
            select(AnalysisResult.content_id, AnalysisResult.analyser, AnalysisResult.label,
                   AnalysisResult.score)
            .where(AnalysisResult.content_id.in_(list(by_content)),
                   AnalysisResult.error.is_(None))):
        by_content[content_id].results[analyser] = (label, score)
    return facts
