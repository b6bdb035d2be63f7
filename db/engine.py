"""Opening the library database: engine factory, SQLite pragmas, migrations on open."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from db.private_files import create_private_file, non_folder_on_path, private_directory
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
    timeout. Does not migrate: use open_library for that. A new database (and its folder) is
    created private to the user (db.private_files); its -wal and -shm files inherit the mode."""
    path = Path(path)
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


def database_path_problem(path: Path | str) -> str | None:
    """Why `path` cannot be a library database, or None. Checked before SQLite touches it: a
    FIFO would block the open forever, a folder or a file standing where a parent folder
    should be would end in a traceback."""
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


def open_library(path: Path | str) -> Engine:
    """Open (creating if needed) the library at `path` and bring its schema to head.
    Raises DatabaseError with a one-line reason when it cannot."""
    from db.migrate import upgrade_to_head  # alembic import is deferred to first open

    problem = database_path_problem(path)
    if problem is not None:
        raise DatabaseError(f"cannot open the library database: {problem}")
    try:
        engine = create_library_engine(path)
    except OSError as exc:
        raise DatabaseError(f"cannot create the library database {path}: "
                            f"{exc.strerror or exc}") from exc
    try:
        upgrade_to_head(engine)
    except DatabaseError:
        engine.dispose()
        raise
    except Exception as exc:  # turned into one clear message
        engine.dispose()
        reason = describe_database_error(exc, path) or str(exc)
        raise DatabaseError(f"cannot open the library database {path}: {reason}") from exc
    return engine


def describe_database_error(exc: BaseException, path: Path | str | None = None) -> str | None:
    """A one-line reason for an error SQLite reported, in the user's terms, or None when it
    is not a storage problem. "disk I/O error" is what SQLite says when a write fails for a
    reason it does not classify; on a full file system that is the disk being full, so the
    free space of the database's folder decides which to say."""
    cause = getattr(exc, "orig", None) or exc
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


def _disk_full(path: Path | str | None) -> bool:
    if path is None:
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
    database = getattr(url, "database", None)
    return Path(database) if database else None


def is_disk_full(exc: BaseException, path: Path | str | None = None) -> bool:
    """SQLite could not write because the disk is full (see describe_database_error)."""
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
        return True
    if not isinstance(cause, sqlite3.Error):
        return False
    text = str(cause).lower()
    return "disk is full" in text or ("disk i/o error" in text and _disk_full(path))


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: rows read in a short session stay usable after it closes
    # (the grid and the CLI hand them to other code).
    return sessionmaker(engine, expire_on_commit=False)
