"""Opening the library database: engine factory, SQLite pragmas, migrations on open."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from db.transaction import WRITE_OPTION

# What callers outside db/ hold for an open library (desktop/ never imports SQLAlchemy).
LibraryEngine = Engine

log = logging.getLogger(__name__)

# How long a connection waits for another writer (the app and a headless scan may share one
# database) before SQLite reports "database is locked".
BUSY_TIMEOUT_MS = 15_000


class DatabaseError(RuntimeError):
    """The library database cannot be opened or written; the message says what to do."""


def _set_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # pysqlite's own transaction handling (a BEGIN sent only before the first INSERT/UPDATE/
    # DELETE, none around DDL) is switched off: _begin sends every BEGIN itself, so reads
    # and schema changes happen inside the transaction too (SQLAlchemy's documented recipe
    # for pysqlite, "Serializable isolation / Savepoints / Transactional DDL").
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA temp_store=MEMORY")
    finally:
        cursor.close()


def _begin(connection: Connection) -> None:
    """Writers (db.transaction.write_transaction) take the write lock at once, so nothing they
    read can change before they write; readers begin a deferred, lock-free snapshot."""
    write = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _optimize_on_close(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # SQLite's advice: run "PRAGMA optimize" before closing, so the planner has statistics
    # (folder counts and tag suggestions measured ~3x faster with them at 100k images).
    try:
        dbapi_connection.execute("PRAGMA optimize")
    except sqlite3.Error:
        pass  # a busy or read-only database only loses the statistics refresh


def create_library_engine(path: Path | str) -> Engine:
    """An engine whose every connection has WAL, synchronous=NORMAL, foreign keys and a busy
    timeout. Does not migrate: use open_library for that."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _set_pragmas)
    event.listen(engine, "begin", _begin)
    event.listen(engine, "close", _optimize_on_close)
    return engine


def open_library(path: Path | str) -> Engine:
    """Open (creating if needed) the library at `path` and bring its schema to head."""
    from db.migrate import upgrade_to_head  # alembic import is deferred to first open

    engine = create_library_engine(path)
    try:
        upgrade_to_head(engine)
    except Exception as exc:  # noqa: BLE001 - turned into one clear message
        engine.dispose()
        raise DatabaseError(f"cannot open the library database {path}: {exc}") from exc
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: rows read in a short session stay usable after it closes
    # (the grid and the CLI hand them to other code).
    return sessionmaker(engine, expire_on_commit=False)
