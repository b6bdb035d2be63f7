"""Review decisions and ratings, with an append-only log that gives undo and redo.

Every user action (a decision or rating applied to one or many images, a file moved because
it was rejected) is one *group* of log rows. Undo appends a group with source "undo" that
writes the old values back; redo appends a group with source "redo" that writes the new
values again. Nothing is ever deleted from the log, so it doubles as an audit trail, and any
process sharing the database (the app, `gentriage review`) undoes the same history.

The undo and redo stacks are derived from the log (see `_undo_target`), so they survive
restarts; undo reaches back through the whole history, with a few index lookups per step.
File moves are recorded here (field "path") but performed by the caller: db/ does no file I/O.

Several reviewers (a library on a PostgreSQL server, or `gentriage review --user` beside the
app): every log row names its author, and each author has their own undo and redo stacks,
derived from their own rows only: Ctrl+Z takes back *my* last step, never a colleague's.
The author is the reviewer of the session factory (`db.engine.session_factory(engine,
reviewer=…)`; default: the OS user name). An undo or redo never overwrites what someone
else decided since: a field that no longer holds the value the step left is kept as it is
(the step is still logged, as unchanged, so the stacks move on). Group ids are unique across
authors: they are taken under the write lock that every write transaction holds.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.schema import Content, Decision, Image, ReviewLog, utcnow

DECISIONS = {d.value for d in Decision}

# Sources of actions a person took (undoable). Other sources ("scan", "watch": a file moved
# outside GenTriage and noticed by the library) are logged for audit but are not undo steps.
USER_SOURCES = frozenset({"app", "cli"})


@dataclass(frozen=True)
class Change:
    """One field of one content changed by a group (what an undo/redo has to reverse)."""

    content_id: int | None
    field: str  # "decision", "rating" or "path"
    old_value: str | None
    new_value: str | None


class ReviewError(ValueError):
    pass


# session.info key naming the reviewer a session writes for (db.engine.session_factory).
REVIEWER_KEY = "gentriage_reviewer"
# review_log.author holds at most this many characters.
MAX_REVIEWER_LENGTH = 64


def local_reviewer() -> str:
    """The reviewer when none is named: the OS user name ("unknown" when it has none)."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # no login name and no password entry (a container's uid)
        name = ""
    return (name.strip() or "unknown")[:MAX_REVIEWER_LENGTH]


def reviewer_problem(name: str) -> str | None:
    """Why `name` cannot be a reviewer name, or None."""
    if not name.strip():
        return "a reviewer name cannot be empty"
    if len(name) > MAX_REVIEWER_LENGTH:
        return f"a reviewer name has at most {MAX_REVIEWER_LENGTH} characters"
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in name):
        return "a reviewer name cannot hold control characters or undecodable bytes"
    return None


def reviewer_of(session: Session) -> str:
    """Who the session's review changes are logged for (and whose undo stack it walks)."""
    return str(session.info.get(REVIEWER_KEY) or local_reviewer())


def _next_group(session: Session) -> int:
    # max() + 1 inside the write transaction: every writer holds the one write lock (SQLite's
    # BEGIN IMMEDIATE, PostgreSQL's advisory lock, db.transaction), so no two reviewers ever
    # get the same group, and group order is commit order (the undo stacks rely on it).
    return (session.scalar(select(func.max(ReviewLog.group_id))) or 0) + 1


def _apply_field(content: Content, field: str, value: str | None) -> None:
    if field == "decision":
        content.decision = value or Decision.NONE.value
        content.decided_at = utcnow() if content.decision != Decision.NONE.value else None
    elif field == "rating":
        content.rating = int(value or 0)


def _write_group(session: Session, changes: Sequence[Change], source: str,
                 reverts_group: int | None = None, group: int | None = None) -> int | None:
    """Log `changes` as a new group, or as part of `group` when given (one user action that
    changed several things undoes as one step). Returns the group, None if nothing changed."""
    if not changes:
        return group
    if group is None:
        group = _next_group(session)
    now = utcnow()
    author = reviewer_of(session)
    for change in changes:
        session.add(ReviewLog(group_id=group, content_id=change.content_id, field=change.field,
                              old_value=change.old_value, new_value=change.new_value,
                              source=source, reverts_group=reverts_group, at=now,
                              author=author))
    return group


def _contents(session: Session, content_ids: Iterable[int]) -> list[Content]:
    ids = sorted(set(content_ids))
    if not ids:
        return []
    return list(session.scalars(select(Content).where(Content.id.in_(ids))))


def set_decision(session: Session, content_ids: Iterable[int], decision: str,
                 source: str = "app", group: int | None = None) -> int | None:
    """Set accepted/rejected/none on the contents; returns the log group (None if nothing
    changed). With `group`, the changes join that group (undone together with it). The
    caller commits — the app commits before moving the cursor."""
    if decision not in DECISIONS:
        raise ReviewError(f"unknown decision {decision!r}; expected one of {sorted(DECISIONS)}")
    changes = []
    for content in _contents(session, content_ids):
        if content.decision != decision:
            changes.append(Change(content.id, "decision", content.decision, decision))
            _apply_field(content, "decision", decision)
    return _write_group(session, changes, source, group=group)


def set_rating(session: Session, content_ids: Iterable[int], rating: int,
               source: str = "app", group: int | None = None) -> int | None:
    """Set the 0-5 rating; like set_decision (pass its group to make one undo step of a
    decision and a rating given together)."""
    if not 0 <= rating <= 5:
        raise ReviewError(f"rating must be 0-5, got {rating}")
    changes = []
    for content in _contents(session, content_ids):
        if content.rating != rating:
            changes.append(Change(content.id, "rating", str(content.rating), str(rating)))
            _apply_field(content, "rating", str(rating))
    return _write_group(session, changes, source, group=group)


def record_path_changes(session: Session, moves: Sequence[tuple[int | None, str, str]],
                        group: int | None = None, source: str = "app") -> int | None:
    """Log files moved for a review action (content id, old path, new path). With `group`,
    the rows join an existing group so one undo reverses the decision and the move."""
    changes = [Change(cid, "path", old, new) for cid, old, new in moves]
    return _write_group(session, changes, source, group=group)


_STACK_SOURCES = (*sorted(USER_SOURCES), "undo", "redo")


def _event_before(session: Session, author: str, before: int | None
                  ) -> tuple[int, str, int | None] | None:
    """The latest group of `author` that can move their undo/redo stacks (an action, an undo
    or a redo; audit-only groups are skipped) whose id is below `before` (None: the latest
    of all). One step down the (author, group id) index."""
    stmt = select(ReviewLog.group_id, ReviewLog.source, ReviewLog.reverts_group).where(
        ReviewLog.author == author, ReviewLog.source.in_(_STACK_SOURCES))
    if before is not None:
        stmt = stmt.where(ReviewLog.group_id < before)
    row = session.execute(stmt.order_by(ReviewLog.group_id.desc()).limit(1)).first()
    return None if row is None else (row[0], row[1], row[2])


def _undo_target(session: Session) -> int | None:
    """The group the session's reviewer's next undo reverts: the top of their undo stack,
    derived from their rows of the log.

    The log is a stack history: an action or a redo pushes a group, an undo pops the top
    (the undo and redo writers read the top inside their write transaction, so the log is
    always consistent). Read backwards from the end: a push is the top. An undo of group g
    popped g, which was pushed at g on top of the same stack that was there just before g
    (a redo of g can only put it back onto that same stack: whatever was undone after g
    had to be redone first), so the stack after the undo is the stack before g: continue
    below g. Each step is one index lookup, however long the history: undo depth has no
    limit, and a long run of undos is crossed in one jump."""
    author = reviewer_of(session)
    before: int | None = None
    while (event := _event_before(session, author, before)) is not None:
        group, source, reverts = event
        if source in USER_SOURCES:
            return group
        if source == "redo":
            return reverts
        if reverts is None:  # a malformed undo row: it reverted nothing
            before = group
            continue
        before = reverts  # an undo: the stack as it was before the undone group
    return None


def _redo_target(session: Session) -> int | None:
    """The group the next redo re-applies: the top of the redo stack.

    The redo stack is emptied by every new action, so only the undos and redos since the
    last action count: an undo pushes the group it reverted, a redo pops the top. Read
    backwards: an undo is the top; a redo of g popped the group pushed by the latest undo of
    g before it, and the stack after the redo is the stack before that undo (anything
    undone in between had to be redone first), so continue below that undo."""
    author = reviewer_of(session)
    before: int | None = None
    while (event := _event_before(session, author, before)) is not None:
        group, source, reverts = event
        if source in USER_SOURCES:
            return None
        if source == "undo":
            return reverts
        pushed_by = session.scalar(  # a redo: the undo it took back
            select(func.max(ReviewLog.group_id)).where(
                ReviewLog.author == author,
                ReviewLog.group_id < group, ReviewLog.group_id > (reverts or 0),
                ReviewLog.source == "undo", ReviewLog.reverts_group == reverts))
        before = pushed_by if pushed_by is not None else group
    return None


def _group_changes(session: Session, group: int) -> list[Change]:
    rows = session.scalars(
        select(ReviewLog).where(ReviewLog.group_id == group).order_by(ReviewLog.id))
    return [Change(r.content_id, r.field, r.old_value, r.new_value) for r in rows]


def _current_value(content: Content, field: str) -> str | None:
    """A review field as the log writes it."""
    return content.decision if field == "decision" else str(content.rating)


def _replay(session: Session, changes: Sequence[Change], source: str, group: int) -> list[Change]:
    """Apply `changes` (old -> new) as an undo or redo of `group`. A field that no longer
    holds `old` was changed since by someone else (another reviewer): it keeps that value
    and is logged unchanged (old = new = its value), so no one's decision is overwritten
    and the log stays a chain of true old values."""
    contents = {c.id: c for c in _contents(session, [c.content_id for c in changes
                                                      if c.content_id is not None])}
    applied: list[Change] = []
    for change in changes:
        if change.field != "path" and change.content_id in contents:
            content = contents[change.content_id]
            current = _current_value(content, change.field)
            if current != change.old_value:
                change = Change(change.content_id, change.field, current, current)
            else:
                _apply_field(content, change.field, change.new_value)
        applied.append(change)
    _write_group(session, applied, source, reverts_group=group)
    return applied


def can_undo(session: Session) -> bool:
    return _undo_target(session) is not None


def can_redo(session: Session) -> bool:
    return _redo_target(session) is not None


def undo_target_changes(session: Session) -> list[Change]:
    """The changes the next undo reverts (as logged, not yet swapped); empty if none."""
    group = _undo_target(session)
    return [] if group is None else _group_changes(session, group)


def undo(session: Session) -> list[Change]:
    """Revert the most recent action not yet undone. Returns the changes as applied now
    (old/new swapped): the caller moves files back for "path" changes. Empty if nothing."""
    group = _undo_target(session)
    if group is None:
        return []
    inverse = [Change(c.content_id, c.field, c.new_value, c.old_value)
               for c in reversed(_group_changes(session, group))]
    return _replay(session, inverse, "undo", group)


def redo(session: Session) -> list[Change]:
    group = _redo_target(session)
    if group is None:
        return []
    return _replay(session, _group_changes(session, group), "redo", group)


def content_ids_for_paths(session: Session, paths: Iterable[str]) -> dict[str, int | None]:
    """Map file paths to their content ids (None for unknown or unreadable files)."""
    wanted = list(paths)
    found = dict(session.execute(
        select(Image.path, Image.content_id).where(Image.path.in_(wanted))).all())
    return {p: found.get(p) for p in wanted}
