"""Families against the library database: filling in keys and hashes, grouping near-duplicates,
resolving groups, deciding a whole family (Qt-free; the CLI and the app share it).

The rules themselves (what a stack key is, how hashes are compared, who the keeper is) live
in library.families; the SQL in db.families. Writes go through db.transaction's
write_transaction, review changes through db.review (so every one is undoable).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from db import families as family_db
from db import review
from db.families import FamilyMember
from db.filters import ImageFilter
from db.transaction import pause_for_other_writers, write_transaction
from inference.decoding import import_numpy
from library.decode import decode_bytes
from library.families import (
    DEFAULT_DISTANCE,
    choose_keeper,
    group_hashes,
    keeper_order,
    max_distance,
    perceptual_hash,
    stack_key,
    to_signed64,
)
from library.ingest import MAX_FILE_BYTES
from library.thumbnails import ThumbnailCache

log = logging.getLogger(__name__)

Sessions = sessionmaker[Session]
Progress = Callable[[int, int], None]
BACKFILL_CHUNK = 256  # contents per write transaction while filling in hashes


# --- filling in what older libraries lack ----------------------------------------------------

@dataclass
class BackfillSummary:
    stack_keys: int = 0  # contents that got a stack key
    hashes: int = 0  # contents that got a perceptual hash
    hash_failures: int = 0  # contents whose pixels could not be read (retried next time)


def _hash_of(thumbnails: ThumbnailCache | None, sha256: str, path: str) -> int | None:
    """The perceptual hash from the cached thumbnail (a 512 px JPEG: cheap to decode, and
    the hash reads only a 32 px version), else from the file itself."""
    image = thumbnails.load(sha256) if thumbnails is not None else None
    if image is None:
        try:
            if os.path.getsize(path) > MAX_FILE_BYTES:
                return None
            with open(path, "rb") as handle:
                image = decode_bytes(handle.read(), with_metadata=False).image
        except Exception:  # noqa: BLE001 - unreadable now: stays unhashed, retried later
            return None
    try:
        return to_signed64(perceptual_hash(image.convert("RGB")))
    except Exception:  # noqa: BLE001
        return None


def backfill(sessions: Sessions, thumbnails: ThumbnailCache | None,
             progress: Progress | None = None, workers: int = 2) -> BackfillSummary:
    """Give every content its stack key (from the stored generation metadata) and its
    perceptual hash (from the thumbnail cache, else the file) where it lacks them: libraries
    indexed before families existed. Commits per chunk, so it can be stopped (an exception
    from `progress`) and resumed; contents already done are never read again."""
    summary = BackfillSummary()
    after = 0
    while True:
        with sessions() as session:
            rows = family_db.generations_missing_stack_key(session, 1000, after)
        if not rows:
            break
        after = rows[-1][0]
        keys = {cid: stack_key(prompt, negative, model) for cid, prompt, negative, model in rows}
        keys = {cid: key for cid, key in keys.items() if key is not None}
        if keys:
            with write_transaction(sessions) as session:
                family_db.set_stack_keys(session, keys)
            summary.stack_keys += len(keys)

    after, done = 0, 0
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="phash") as pool:
        while True:
            with sessions() as session:
                pending = family_db.contents_missing_phash(session, BACKFILL_CHUNK, after)
            if not pending:
                break
            after = pending[-1][0]
            import_numpy()  # before the hashing threads import it at once
            hashes = list(pool.map(lambda row: _hash_of(thumbnails, row[1], row[2]), pending))
            found = {row[0]: value for row, value in zip(pending, hashes) if value is not None}
            summary.hash_failures += len(pending) - len(found)
            if found:
                started = time.monotonic()
                with write_transaction(sessions) as session:
                    family_db.set_phashes(session, found)
                pause_for_other_writers(time.monotonic() - started)
                summary.hashes += len(found)
            done += len(pending)
            if progress is not None:
                progress(done, done + (BACKFILL_CHUNK if len(pending) == BACKFILL_CHUNK else 0))
    return summary


# --- near-duplicate groups -------------------------------------------------------------------

def regroup(sessions: Sessions, distance: int = DEFAULT_DISTANCE) -> list[int]:
    """Recompute the stored duplicate groups (what `dup:GROUP` and `is:duplicate` read) over
    every hashed picture with a readable file. Returns the content ids whose group changed."""
    with sessions() as session:
        ids, hashes = family_db.hashes_to_group(session)
    groups = group_hashes(ids, hashes, distance)  # no lock held while grouping
    with write_transaction(sessions) as session:
        return family_db.store_duplicate_groups(session, groups)


def refresh(sessions: Sessions, thumbnails: ThumbnailCache | None,
            progress: Progress | None = None, changed: bool = True) -> BackfillSummary:
    """After a scan: fill in missing keys and hashes, then regroup when anything changed."""
    summary = backfill(sessions, thumbnails, progress)
    if changed or summary.hashes:
        regroup(sessions)
    return summary


@dataclass
class DuplicateGroup:
    """One family of near-duplicates, its keeper first."""

    group_id: int  # the smallest content id of the whole group (stable across runs)
    members: list[FamilyMember]  # by the keeper rule: members[0] is the keeper
    distance: int  # the largest distance between two of its members

    @property
    def keeper(self) -> FamilyMember:
        return self.members[0]

    @property
    def keeper_path(self) -> str:
        return self.keeper.paths[0]

    @property
    def others(self) -> list[FamilyMember]:
        return self.members[1:]

    def paths(self) -> list[str]:
        """Every readable file of the group, the keeper's first."""
        return [path for member in self.members for path in member.paths]

    def as_json(self) -> dict[str, object]:
        return {"group": self.group_id, "keeper": self.keeper_path, "paths": self.paths(),
                "distance": self.distance}


def find_groups(sessions: Sessions, f: ImageFilter | None = None,
                distance: int = DEFAULT_DISTANCE, store: bool = False) -> list[DuplicateGroup]:
    """Groups of near-duplicates among all hashed pictures, at `distance` bits. With `f`,
    only the files the filter shows are listed, and a group needs two such pictures; the
    group id is still that of the whole group (so it matches `dup:GROUP` at the default
    distance). Ordered by group id. `store`: at the default distance, also make this
    grouping the stored one (what `dup:GROUP` and `is:duplicate` read)."""
    with sessions() as session:
        ids, hashes = family_db.hashes_to_group(session)
    groups = group_hashes(ids, hashes, distance)
    if store and distance == DEFAULT_DISTANCE:
        with write_transaction(sessions) as session:
            family_db.store_duplicate_groups(session, groups)
    if not groups:
        return []
    with sessions() as session:
        members = family_db.family_members(
            session, [cid for group in groups for cid in group], f)
    found = []
    for group in groups:
        present = [members[cid] for cid in group if cid in members]
        if len(present) < 2:
            continue
        ordered = sorted(present, key=keeper_order)
        found.append(DuplicateGroup(min(group), ordered,
                                    max_distance([m.phash for m in ordered
                                                  if m.phash is not None])))
    return found


@dataclass
class ResolveReport:
    groups_resolved: int = 0  # groups in which something was rejected
    rejected: int = 0  # pictures rejected
    already_decided: int = 0  # non-keepers left alone: a decision was already there
    skipped: list[str] = field(default_factory=list)  # why a group was left unchanged
    log_groups: list[int] = field(default_factory=list)  # review-log groups (undo steps)


def resolve_groups(sessions: Sessions, groups: Iterable[DuplicateGroup],
                   source: str = "cli") -> ResolveReport:
    """Reject every undecided non-keeper of each group: one review-log group per family (one
    undo step each, in the app too). A picture someone already accepted or rejected is never
    changed. Each family is checked again at the moment it is resolved: if its keeper file
    is gone (deleted or moved since the listing) or its keeper was rejected meanwhile, the
    family is left exactly as it was and the report says why."""
    report = ResolveReport()
    for group in groups:
        with write_transaction(sessions) as session:
            reason = _stale_reason(session, group)
            if reason is not None:
                report.skipped.append(f"group {group.group_id}: {reason}; left unchanged")
                continue
            state = family_db.current_state(session, [m.content_id for m in group.others])
            undecided = [cid for cid, (decision, _) in state.items() if decision == "none"]
            report.already_decided += len(state) - len(undecided)
            log_group = review.set_decision(session, undecided, "rejected", source=source)
        if log_group is not None:
            report.groups_resolved += 1
            report.rejected += len(undecided)
            report.log_groups.append(log_group)
    return report


def _stale_reason(session: Session, group: DuplicateGroup) -> str | None:
    keeper = group.keeper
    state = family_db.current_state(session, [keeper.content_id]).get(keeper.content_id)
    if not os.path.isfile(group.keeper_path):
        return (f"its keeper {group.keeper_path} is gone (deleted or moved since the listing); "
                "rescan and list again")
    if state is None or group.keeper_path not in state[1]:
        return f"its keeper {group.keeper_path} is no longer in the library as listed"
    if state[0] == "rejected" and keeper.decision != "rejected":
        return f"its keeper {group.keeper_path} was rejected since the listing"
    return None


# --- deciding a whole family (the app's Shift+P / Shift+X, compare view) ---------------------

@dataclass
class FamilyDecision:
    log_group: int | None  # None: nothing changed
    content_ids: list[int]
    moved_paths: list[str] = field(default_factory=list)  # files moved by the rejected action
    errors: list[str] = field(default_factory=list)


def decide(sessions: Sessions, content_ids: Sequence[int], decision: str,
           rejected_action: str = "mark", rejected_folder: str | None = None,
           source: str = "app") -> FamilyDecision:
    """One decision for several pictures as ONE undo step; a rejection also applies the
    settings' rejected-file action (move / trash) in the same log group, as a single
    rejection in the grid does."""
    from library.file_actions import apply_rejected_action

    ids = sorted(set(content_ids))
    with write_transaction(sessions) as session:
        group = review.set_decision(session, ids, decision, source=source)
    result = FamilyDecision(group, ids)
    if group is not None and decision == "rejected" and rejected_action != "mark":
        with write_transaction(sessions) as session:
            outcome = apply_rejected_action(session, group, ids, rejected_action,
                                            rejected_folder or "")
        result.errors = outcome.errors
        result.moved_paths = [p for _, old, new in outcome.moves for p in (old, new)]
    return result


def keeper_of(members: Sequence[FamilyMember]) -> FamilyMember:
    return choose_keeper(members)
