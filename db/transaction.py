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

PostgreSQL (a studio library shared by several machines): the same guarantee, by the same
means. A write transaction begins by taking one transaction-scoped advisory lock
(`pg_advisory_xact_lock(POSTGRESQL_WRITE_LOCK)`, db.engine), held until it commits or rolls
back: writers take turns, as under SQLite's write lock, and readers never wait (MVCC). Its
statements run READ COMMITTED, so each one sees everything committed before the lock was
granted. Chosen over the alternatives because every write in GenTriage is a read-then-write
written and tested for one-writer-at-a-time: SERIALIZABLE would abort conflicting writers,
and a `with` block cannot be re-run, so every call site would need its own retry loop; row
locks (SELECT … FOR UPDATE) would need a proof per write path that it locks everything it
reads, including rows that do not exist yet (the next review-log group, a path about to be
recorded). The lock makes review-log group ids (max + 1) unique and commit-ordered, and the
change log's ids commit-ordered (its triggers take the same lock, db.changes). Work that
only needs a row at a time still avoids waiting where it can: queue leases pick their rows
FOR UPDATE SKIP LOCKED (db.queue). The busy timeout is PostgreSQL's `lock_timeout` for the
lock; running out of it is "busy" like SQLite's "database is locked" (is_database_busy).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeAlias

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

# What the layers above db/ hold to reach the library: they open reads (`with sessions() as
# session:`) and writes (write_transaction) and hand the session to db/ functions, never
# building SQL themselves, so desktop/ needs no SQLAlchemy import of its own.
Sessions: TypeAlias = sessionmaker[Session]

# Connection execution option read by db.engine's "begin" listener: this transaction writes.
WRITE_OPTION = "gentriage_write"
# PostgreSQL: how long (ms) this write transaction waits for the write lock (lock_timeout).
LOCK_TIMEOUT_OPTION = "gentriage_lock_timeout_ms"
# PostgreSQL: the advisory lock key every write transaction takes ("GenTriag" in ASCII).
# Advisory locks are per database, so two libraries on one server do not share it.
POSTGRESQL_WRITE_LOCK = 0x47656E5472696167
# PostgreSQL errors that mean "another writer held on too long": lock_not_available
# (lock_timeout), query_canceled (statement_timeout), deadlock_detected and
# serialization_failure (both resolved by running again).
BUSY_SQLSTATES = frozenset({"55P03", "57014", "40P01", "40001"})

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
        session.connection(execution_options={WRITE_OPTION: True,
                                              LOCK_TIMEOUT_OPTION: int(busy_timeout_ms)})
        yield session
        session.commit()


@contextmanager
def _busy_timeout(sessions: Sessions, busy_timeout_ms: int) -> Iterator[Connection]:
    """A connection of the sessions' engine whose SQLite busy timeout is `busy_timeout_ms`
    until it goes back to the pool (then the engine's own value again).

    The timeout has to be in place before BEGIN IMMEDIATE, which is where the wait happens,
    so it is set on the driver connection before any transaction starts; the session is then
    bound to this connection. PostgreSQL reads the wait from the transaction's execution
    options instead (LOCK_TIMEOUT_OPTION, applied with the lock by db.engine)."""
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
    """Another process held the write lock for longer than the busy timeout (SQLite:
    "database is locked"; PostgreSQL: a lock timeout, deadlock or serialization failure)."""
    if not isinstance(exc, DBAPIError):
        return False
    cause = exc.orig
    if getattr(cause, "sqlstate", None) in BUSY_SQLSTATES:
        return True
    text = str(cause).lower()
    return isinstance(exc, OperationalError) and ("locked" in text or "busy" in text)
