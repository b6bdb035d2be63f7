"""Has the library changed since I last looked, and what? (for readers that hold rows: the
app's grid, preview and details).

Every process writes to the same database — the app, `gentriage scan`, `gentriage review`,
later another reviewer — and a window must follow all of them: a flag written by a scan must
blur the image in an open window as surely as one written by the window's own worker. So the
log is written by the database itself (triggers, migration 0004, table `library_changes`),
not by whichever code path wrote, and a reader keeps a *token*: the id of the last log row it
has seen.

`changes_since(session, token)` costs one max() on the log's primary key when nothing
changed, so it can be polled every second. Log ids are assigned in commit order, so nothing
committed before a token can appear after it: SQLite has one writer at a time; PostgreSQL
hands out sequence values before commit (two transactions could make theirs visible out of
order), so its trigger function takes the write lock before taking an id (migration 0004,
db.transaction): the id order is the commit order there too, whoever writes. A PostgreSQL
id that a rolled-back transaction took is never used (a gap); the only consequence is a
rare "everything" answer below, never a missed change.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.schema import LibraryChange

# More changes than this since the token are not listed: the reader re-reads everything it
# holds (a whole-library flag recompute, a first scan), which costs less than the list.
LISTED_MAX = 2_000


@dataclass(frozen=True)
class LibraryChanges:
    """What changed after a token, and the token to ask with next time."""

    token: int
    content_ids: frozenset[int] = frozenset()  # contents whose review or flags changed
    image_ids: frozenset[int] = frozenset()  # images new, moved, re-read or now missing
    # Too many to list, or older than the log keeps: everything held may be stale.
    everything: bool = False

    @property
    def any(self) -> bool:
        return self.everything or bool(self.content_ids or self.image_ids)


def current_token(session: Session) -> int:
    """The token meaning "as of now" (take it before reading what you will hold)."""
    return session.scalar(select(func.max(LibraryChange.id))) or 0


def changes_since(session: Session, token: int) -> LibraryChanges:
    """What changed after `token` (from current_token or a previous LibraryChanges)."""
    latest = current_token(session)
    if latest == token:
        return LibraryChanges(token)
    oldest = session.scalar(select(func.min(LibraryChange.id))) or latest
    # latest < token: the database was replaced; oldest > token + 1: the log was trimmed
    # past the token (ids are contiguous but for rolled-back PostgreSQL transactions, so a
    # gap there means rows were probably dropped unread: re-read everything to be safe).
    if latest < token or oldest > token + 1 or latest - token > LISTED_MAX:
        return LibraryChanges(latest, everything=True)
    contents: set[int] = set()
    images: set[int] = set()
    for content_id, image_id in session.execute(
            select(LibraryChange.content_id, LibraryChange.image_id)
            .where(LibraryChange.id > token, LibraryChange.id <= latest)):
        if image_id is not None:
            images.add(image_id)
        if content_id is not None:
            contents.add(content_id)
    return LibraryChanges(latest, frozenset(contents), frozenset(images))
