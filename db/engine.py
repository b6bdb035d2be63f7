"""Opening the library database: where it is (a file or a server URL), the engine with its
per-connection setup, migrations on open, and storage errors in the user's terms.

Two backends share one schema and one query layer (db.dialect has the few differences):

- SQLite, the default: a plain path (`--db lib.sqlite3`, or `sqlite:///lib.sqlite3`). WAL,
  one writer at a time (BEGIN IMMEDIATE), readers on a snapshot.
- PostgreSQL, for a studio: a URL (`postgresql+psycopg://user@host/db`; `postgresql://` and
  `postgres://` mean the same). The same guarantees, spelled the PostgreSQL way: a write
  transaction first takes one transaction-scoped advisory lock (db.transaction explains why
  a lock rather than SERIALIZABLE), readers run REPEATABLE READ (one snapshot per
  transaction, as SQLite's deferred BEGIN), and the busy timeout is `lock_timeout`.

This is the one module that names the PostgreSQL driver (psycopg 3, the optional extra
`postgres`); SQLAlchemy loads it only for a postgresql URL.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from db.private_files import create_private_file, non_folder_on_path, private_directory
from db.transaction import (
    BUSY_SQLSTATES,
    LOCK_TIMEOUT_OPTION,
    POSTGRESQL_WRITE_LOCK,
    WRITE_OPTION,
)

# What callers outside db/ hold for an open library (desktop/ never imports SQLAlchemy).
LibraryEngine = Engine
# Where a library lives: a SQLite file, or a server database named by a SQLAlchemy URL.
DatabaseTarget: TypeAlias = Path | URL

log = logging.getLogger(__name__)

# How long a connection waits for another writer (the app and a headless scan may share one
# database) before SQLite reports "database is locked" (PostgreSQL: its lock_timeout).
BUSY_TIMEOUT_MS = 15_000
# How long opening a PostgreSQL connection may take before the server counts as unreachable.
CONNECT_TIMEOUT_S = 10
# The one driver GenTriage uses for PostgreSQL.
POSTGRESQL_DRIVER = "postgresql+psycopg"
POSTGRES_EXTRA_HINT = "pip install 'gentriage[postgres]'"


class DatabaseError(RuntimeError):
    """The library database cannot be opened or written; the message says what to do."""


# --- where the library is --------------------------------------------------------------------

def parse_database(value: str | os.PathLike[str]) -> DatabaseTarget:
    """A `--db` / GENTRIAGE_DB value as a target: a path (SQLite) or a PostgreSQL URL.
    Text with "://" is a URL; `sqlite:///PATH` is the path. Raises DatabaseError for a URL
    that does not parse or names another kind of database."""
    if not isinstance(value, str) or "://" not in value:
        return Path(value).expanduser()
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise DatabaseError(f"{value!r} is not a database URL (expected a file path or "
                            "postgresql+psycopg://USER@HOST/DATABASE)") from None
    backend, _, driver = url.drivername.partition("+")  # without loading any dialect
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise DatabaseError("a sqlite:/// URL needs a file path (sqlite:///PATH)")
        return Path(url.database).expanduser()
    if backend not in ("postgresql", "postgres"):
        raise DatabaseError(f"GenTriage libraries live in SQLite (a file path) or PostgreSQL "
                            f"(postgresql+psycopg://…), not {backend!r}")
    if driver and driver != "psycopg":
        raise DatabaseError(f"GenTriage talks to PostgreSQL through psycopg: use "
                            f"{POSTGRESQL_DRIVER}://…, not {url.drivername}://…")
    if not url.database:
        raise DatabaseError("the PostgreSQL URL names no database "
                            "(postgresql+psycopg://USER@HOST/DATABASE)")
    return url.set(drivername=POSTGRESQL_DRIVER)


def is_server(target: DatabaseTarget) -> bool:
    """A database server (PostgreSQL) rather than a SQLite file."""
    return isinstance(target, URL)


def describe_target(target: DatabaseTarget) -> str:
    """The target for messages: the path, or the URL without its password."""
    if isinstance(target, URL):
        return target.render_as_string(hide_password=True)
    return str(target)


def _postgresql_driver_problem() -> str | None:
    try:
        import psycopg  # noqa: F401 - only to say how to install it when it is missing
    except ImportError:
        return f"a PostgreSQL library needs the psycopg driver: {POSTGRES_EXTRA_HINT}"
    return None


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


def _begin_postgresql(connection: Connection) -> None:
    """Writers take the one write lock first (waiting at most their lock timeout), so what
    they read cannot change before they write, as under SQLite's BEGIN IMMEDIATE; they run
    READ COMMITTED, so every statement after the lock sees everything committed before it
    (REPEATABLE READ would keep the snapshot taken while waiting). Readers get one snapshot
    for the whole transaction (REPEATABLE READ, which never fails a reader). psycopg sends
    the isolation level with its BEGIN: no round trip of its own."""
    from psycopg import IsolationLevel, pq

    options = connection.get_execution_options()
    write = bool(options.get(WRITE_OPTION, False))
    driver = connection.connection.driver_connection
    assert driver is not None  # a live connection: begin runs on one
    if driver.info.transaction_status == pq.TransactionStatus.IDLE:  # else: already begun
        driver.isolation_level = (IsolationLevel.READ_COMMITTED if write
                                  else IsolationLevel.REPEATABLE_READ)
    if write:
        timeout_ms = int(options.get(LOCK_TIMEOUT_OPTION) or BUSY_TIMEOUT_MS)
        connection.exec_driver_sql(
            f"SELECT set_config('lock_timeout', '{timeout_ms}ms', true), "
            f"pg_advisory_xact_lock({POSTGRESQL_WRITE_LOCK})")


def _postgresql_engine(url: URL) -> Engine:
    problem = _postgresql_driver_problem()
    if problem is not None:
        raise DatabaseError(problem)
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    if "application_name" not in url.query:
        connect_args["application_name"] = "gentriage"
    # pool_pre_ping: a connection the server dropped (a restart) is replaced, not reported.
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    event.listen(engine, "begin", _begin_postgresql)
    return engine


def create_library_engine(target: DatabaseTarget | str) -> Engine:
    """An engine for the library at `target` (a path or URL, see parse_database). SQLite:
    every connection has WAL, synchronous=NORMAL, foreign keys and a busy timeout, and a new
    database (and its folder) is created private to the user (db.private_files; its -wal and
    -shm files inherit the mode). PostgreSQL: see _begin_postgresql. Does not migrate: use
    open_library for that."""
    if isinstance(target, str):
        target = parse_database(target)
    if isinstance(target, URL):
        return _postgresql_engine(target)
    path = Path(target)
    private_directory(path.parent)
    create_private_file(path)
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _set_pragmas)
    event.listen(engine, "begin", _begin)
    event.listen(engine, "close", _optimize_on_close)
    return engine


def database_path_problem(path: DatabaseTarget | str) -> str | None:
    """Why `path` cannot be a library database, or None. Checked before SQLite touches it: a
    FIFO would block the open forever, a folder or a file standing where a parent folder
    should be would end in a traceback. A server URL: only whether its driver is installed
    (the server itself answers when the library is opened)."""
    if isinstance(path, URL):
        return _postgresql_driver_problem()
    path = Path(path)
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        blocker = non_folder_on_path(path.parent)
        if blocker is not None:
            return f"{blocker} is a file, not a folder, so {path} cannot be created"
        return None
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if stat.S_ISDIR(info.st_mode):
        return f"{path} is a folder, not a database file"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file (a pipe or device?)"
    return None


def open_library(target: DatabaseTarget | str) -> Engine:
    """Open (creating if needed) the library at `target` (a path, or a URL: the PostgreSQL
    database must exist; its tables are created) and bring its schema to head. Raises
    DatabaseError with a one-line reason when it cannot."""
    from db.migrate import upgrade_to_head  # alembic import is deferred to first open

    if isinstance(target, str):
        target = parse_database(target)
    where = describe_target(target)
    problem = database_path_problem(target)
    if problem is not None:
        raise DatabaseError(f"cannot open the library database: {problem}")
    try:
        engine = create_library_engine(target)
    except OSError as exc:
        raise DatabaseError(f"cannot create the library database {where}: "
                            f"{exc.strerror or exc}") from exc
    try:
        upgrade_to_head(engine)
    except DatabaseError:
        engine.dispose()
        raise
    except Exception as exc:  # turned into one clear message
        engine.dispose()
        path = target if isinstance(target, Path) else None
        reason = describe_database_error(exc, path) or _first_line(exc)
        raise DatabaseError(f"cannot open the library database {where}: {reason}") from exc
    return engine


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def _is_postgresql_error(cause: BaseException) -> bool:
    return type(cause).__module__.split(".")[0] == "psycopg"


def _describe_postgresql_error(cause: BaseException) -> str | None:
    """The PostgreSQL counterpart of describe_database_error, by SQLSTATE (psycopg's errors
    carry it; a failed connection has none and says "connection ..." instead)."""
    state = getattr(cause, "sqlstate", None)
    text = str(cause).lower()
    if state in BUSY_SQLSTATES:
        return ("the library database stayed locked by another program for too long; "
                "nothing was lost — run the command again (is another GenTriage scan running?)")
    if state == "53100":
        return ("the database server's disk is full; free some space there and run the "
                "command again (nothing recorded so far was lost)")
    if state in ("28000", "28P01"):
        return ("the PostgreSQL server refused the login (check the user and password in the "
                "URL, ~/.pgpass or PGPASSWORD)")
    if state == "3D000":
        return ("the PostgreSQL database does not exist; create it first "
                "(createdb -O USER DATABASE), GenTriage then creates its tables")
    if state == "42501":
        return ("the PostgreSQL user may not do this (it needs to own the database, or "
                "CREATE rights in it; pg_trgm needs PostgreSQL 13 or newer, or a superuser to "
                "run CREATE EXTENSION pg_trgm once)")
    if state is None and ("connection" in text or "could not connect" in text
                          or "server closed" in text):
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        return f"cannot reach the PostgreSQL server ({first})"
    return None


def describe_database_error(exc: BaseException,
                            path: DatabaseTarget | str | None = None) -> str | None:
    """A one-line reason for an error the database reported, in the user's terms, or None
    when it is not a storage problem. "disk I/O error" is what SQLite says when a write fails
    for a reason it does not classify; on a full file system that is the disk being full, so
    the free space of the database's folder decides which to say."""
    cause = getattr(exc, "orig", None) or exc
    if _is_postgresql_error(cause):
        return _describe_postgresql_error(cause)
    if not isinstance(cause, sqlite3.Error):
        return None
    text = str(cause).lower()
    if "locked" in text or "busy" in text:
        return ("the library database stayed locked by another program for too long; "
                "nothing was lost — run the command again (is another GenTriage scan running?)")
    if is_disk_full(cause, path):
        return ("the disk is full; free some space and run the command again (nothing "
                "recorded so far was lost)")
    if "disk i/o error" in text:
        return "a disk I/O error (is the disk failing or was it removed?)"
    if "readonly" in text or "read-only" in text:
        return "the library database is read-only"
    if "not a database" in text or "malformed" in text:
        return "the file is not a GenTriage library, or it is damaged"
    if "unable to open" in text:
        return "the file cannot be opened (check the folder exists and is writable)"
    return None


def _disk_full(path: DatabaseTarget | str | None) -> bool:
    if path is None or isinstance(path, URL):
        return False
    try:
        info = os.statvfs(Path(path).parent)
    except OSError:
        return False
    # "Full" as the writer saw it: less room than one SQLite page batch plus slack.
    return info.f_bavail * info.f_frsize < DISK_FULL_MARGIN_BYTES


# Free space below which a failed write is reported as a full disk.
DISK_FULL_MARGIN_BYTES = 1024 * 1024


def database_path_of(engine_or_session: object) -> Path | None:
    """The file behind an engine or session (for error messages), if it is a SQLite file."""
    bind = getattr(engine_or_session, "bind", None) or engine_or_session
    url = getattr(bind, "url", None)
    if not isinstance(url, URL) or url.get_backend_name() != "sqlite":
        return None
    return Path(url.database) if url.database else None


def is_disk_full(exc: BaseException, path: DatabaseTarget | str | None = None) -> bool:
    """The database could not write because the disk is full (see describe_database_error)."""
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
        return True
    if _is_postgresql_error(cause):
        return getattr(cause, "sqlstate", None) == "53100"
    if not isinstance(cause, sqlite3.Error):
        return False
    text = str(cause).lower()
    return "disk is full" in text or ("disk i/o error" in text and _disk_full(path))


def session_factory(engine: Engine, reviewer: str | None = None) -> sessionmaker[Session]:
    """Sessions on the library. `reviewer`: whose review changes they log and whose undo
    stack they walk (db.review; None: the OS user name)."""
    from db.review import REVIEWER_KEY

    # expire_on_commit=False: rows read in a short session stay usable after it closes
    # (the grid and the CLI hand them to other code).
    return sessionmaker(engine, expire_on_commit=False,
                        info={REVIEWER_KEY: reviewer} if reviewer else None)


def set_reviewer(sessions: sessionmaker[Session], reviewer: str | None) -> None:
    """From now on, sessions made by `sessions` write (and undo) as `reviewer` (None: the OS
    user name): the app's reviewer setting changed while it runs."""
    from db.review import REVIEWER_KEY

    sessions.configure(info={REVIEWER_KEY: reviewer} if reviewer else None)
