"""The one way anything writes to the library: `with write_transaction(sessions) as session:`.

Why one helper: every write in GenTriage is a read-then-write (the review log reads the current
decision and the next group id, the queue reads which rows are free before leasing them, the
scanner reads what a path held before recording it). pysqlite sends BEGIN only before the
first INSERT/UPDATE/DELETE, so those reads ran outside any transaction, and two processes (the
app and `gentriage review`) could both read, then both write: a shared undo group, a stale old
value in the log. Here the transaction begins before the first read and holds the write lock
from its first statement (SQLite: BEGIN IMMEDIATE), so what was read is still true when it is
written, and the transaction commits on success and rolls back on any exception.

Reads need no helper: `with sessions() as session:` reads in a transaction of its own (a
deferred BEGIN, see db.engine), a consistent snapshot that takes no write lock.

A writer that waits longer than the busy timeout for another process's lock gets
`sqlalchemy.exc.OperationalError` ("database is locked"); `is_database_busy` recognises it.
The GUI thread writes with a short busy timeout of its own (`busy_timeout_ms`): a keypress
must not freeze the window for the engine's 15 s while a scan in another process holds the
lock; the window queues the change and retries instead (desktop.review_controller).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeAlias

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

# What the layers above db/ hold to reach the library: they open reads (`with sessions() as
# session:`) and writes (write_transaction) and hand the session to db/ functions, never
# building SQL themselves, so desktop/ needs no SQLAlchemy import of its own.
Sessions: TypeAlias = sessionmaker[Session]

# Connection execution option read by db.engine's "begin" listener: this transaction writes.
WRITE_OPTION = "gentriage_write"

# SQLite's write lock is not fair: a writer waiting for it sleeps in its busy handler and
# polls, at most MAX_POLL_GAP_S apart (sqlite3's default busy handler), so a job that
# commits and re-locks at once can keep a waiting writer out for the whole job. Jobs that
# write chunk after chunk leave a gap as long as they held the lock (capped at this), so a
# review keypress waits about one chunk, not the whole job.
MAX_POLL_GAP_S = 0.1


@contextmanager
def write_transaction(sessions: Sessions, *,
                      busy_timeout_ms: int | None = None) -> Iterator[Session]:
    """A session inside one write transaction that already holds the write lock; commits
    when the block ends normally, rolls back when it raises.

    `busy_timeout_ms`: wait at most this long for another writer's lock (instead of the
    connection's own busy timeout) before raising the "database is locked" error."""
    if busy_timeout_ms is None:
        with sessions() as session:
            session.connection(execution_options={WRITE_OPTION: True})  # BEGIN IMMEDIATE now
            yield session
            session.commit()
        return
    with _busy_timeout(sessions, busy_timeout_ms) as connection, \
            sessions(bind=connection) as session:
        session.connection(execution_options={WRITE_OPTION: True})
        yield session
        session.commit()


@contextmanager
def _busy_timeout(sessions: Sessions, busy_timeout_ms: int) -> Iterator[Connection]:
    """A connection of the sessions' engine whose SQLite busy timeout is `busy_timeout_ms`
    until it goes back to the pool (then the engine's own value again).

    The timeout has to be in place before BEGIN IMMEDIATE, which is where the wait happens,
    so it is set on the driver connection before any transaction starts; the session is then
    bound to this connection. Other databases keep their own lock waits."""
    engine = sessions.kw["bind"]
    with engine.connect() as connection:
        if engine.dialect.name != "sqlite":
            yield connection
            return
        driver = connection.connection.driver_connection
        previous = driver.execute("PRAGMA busy_timeout").fetchone()[0]
        driver.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        try:
            yield connection
        finally:
            driver.execute(f"PRAGMA busy_timeout={int(previous)}")


def pause_for_other_writers(held_s: float) -> None:
    """Between two write transactions of a long job: let a waiting writer in (see
    MAX_POLL_GAP_S)."""
    time.sleep(min(max(held_s, 0.0), MAX_POLL_GAP_S))


def commit_and_continue(session: Session, held_since: float) -> float:
    """Inside write_transaction: commit what was written so far, give waiting writers their
    turn, and take the write lock again for the rest. Long jobs (a folder of thousands of
    files renamed at once) commit in steps, so they never hold the lock past the busy timeout
    of other writers (the app's review keys). `held_since` is the time.monotonic() at which
    the lock was taken; returns the time it is taken again."""
    session.commit()
    pause_for_other_writers(time.monotonic() - held_since)
    session.connection(execution_options={WRITE_OPTION: True})
    return time.monotonic()


def is_database_busy(exc: BaseException) -> bool:
    """Another process held the write lock for longer than the busy timeout."""
    cause = exc.orig if isinstance(exc, OperationalError) else exc
    text = str(cause).lower()
    return isinstance(exc, OperationalError) and ("locked" in text or "busy" in text)
