"""The one write helper (db.transaction): a read-then-write is atomic across processes, a
failed block leaves nothing behind, and schema creation is all-or-nothing — on SQLite and on
PostgreSQL (the `library_db` fixtures run each test on both)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from db.engine import open_library, session_factory
from db.migrate import current_revision, head_revision
from db.schema import Content, ReviewLog
from db.transaction import is_database_busy, write_transaction

REPO = Path(__file__).resolve().parents[2]

# Each process flips one picture's decision N times, one undo group per flip, starting
# together (a barrier file), so their read-then-write sequences interleave.
FLIPPER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from db.engine import open_library, session_factory
    from db.review import set_decision
    from db.transaction import write_transaction
    db, source, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    sessions = session_factory(open_library(db))
    while not go.exists():
        time.sleep(0.001)
    for i in range(n):
        decision = ("accepted", "rejected")[i % 2]
        with write_transaction(sessions) as session:
            set_decision(session, [1], decision, source=source)
""")


def _writers(db: object, tmp_path: Path, n: int) -> None:
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", FLIPPER, str(db), source, str(n), str(go)],
                              cwd=REPO, stderr=subprocess.PIPE, text=True)
             for source in ("app", "cli")]
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]


def test_two_processes_never_share_an_undo_group_or_log_a_stale_value(tmp_path, library_db):
    db = library_db.target
    engine = open_library(db)
    sessions = session_factory(engine)
    with write_transaction(sessions) as session:
        session.add(Content(sha256="a" * 64))
    _writers(db, tmp_path, 300)
    with sessions() as session:
        rows = session.scalars(select(ReviewLog).order_by(ReviewLog.id)).all()
        final = session.get(Content, 1)
    assert rows, "nothing was logged"
    sources_by_group: dict[int, set[str]] = {}
    for row in rows:
        sources_by_group.setdefault(row.group_id, set()).add(row.source)
    shared = {g: s for g, s in sources_by_group.items() if len(s) > 1}
    assert shared == {}, f"groups written by both processes: {sorted(shared)[:5]}"
    # The log is a chain: each change starts from the value the previous one left.
    stale = [(a.id, a.new_value, b.old_value) for a, b in zip(rows, rows[1:])
             if a.new_value != b.old_value]
    assert stale == [], f"stale old values logged: {stale[:5]}"
    assert rows[0].old_value == "none" and rows[-1].new_value == final.decision
    engine.dispose()


def test_a_failing_block_rolls_back_everything(Session):
    with pytest.raises(RuntimeError), write_transaction(Session) as session:
        session.add(Content(sha256="b" * 64))
        session.flush()
        raise RuntimeError("half-way")
    with Session() as session:
        assert session.scalars(select(Content)).all() == []


def test_the_write_lock_is_held_from_the_first_statement(tmp_path):
    """While a write transaction is open (even before it wrote anything), another writer
    cannot begin: it waits, and after the busy timeout gets 'database is locked'."""
    db = tmp_path / "lib.sqlite3"
    sessions = session_factory(open_library(db))
    import sqlite3

    with write_transaction(sessions) as session:
        session.execute(select(Content.id)).all()  # a read only
        other = sqlite3.connect(db, timeout=0.05, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()


def test_a_second_writer_waits_for_the_first_and_is_busy_after_its_timeout(Session):
    """Both backends: a writer that cannot get the write lock within its busy timeout gets
    an error is_database_busy recognises (SQLite: "database is locked"; PostgreSQL: a lock
    timeout on the advisory lock), and readers are never held up by a writer."""
    from sqlalchemy.exc import OperationalError

    with write_transaction(Session) as first:
        first.execute(select(Content.id)).all()  # a read only: the lock is already held
        with pytest.raises(OperationalError) as info, \
                write_transaction(Session, busy_timeout_ms=100):
            pass
        assert is_database_busy(info.value)
        with Session() as reader:  # readers never wait
            assert reader.scalars(select(Content)).all() == []
        first.add(Content(sha256="c" * 64))
    with write_transaction(Session, busy_timeout_ms=100) as second:  # free again
        assert len(second.scalars(select(Content)).all()) == 1


def test_busy_errors_are_recognised(tmp_path):
    from sqlalchemy.exc import OperationalError

    assert is_database_busy(OperationalError("BEGIN", {}, Exception("database is locked")))
    assert not is_database_busy(OperationalError("x", {}, Exception("no such table: x")))
    assert not is_database_busy(ValueError("locked"))

    class PostgreSQLError(Exception):  # what psycopg's errors carry: the SQLSTATE
        def __init__(self, sqlstate: str) -> None:
            super().__init__("canceling statement")
            self.sqlstate = sqlstate

    for busy in ("55P03", "40P01", "40001", "57014"):  # lock timeout, deadlock, ...
        assert is_database_busy(OperationalError("x", {}, PostgreSQLError(busy)))
    assert not is_database_busy(OperationalError("x", {}, PostgreSQLError("42P01")))


def test_schema_creation_is_all_or_nothing(blank_library_db, monkeypatch):
    """A creation that fails half-way (a kill, a full disk) leaves an empty database, which
    the next open creates properly — never "table … already exists"."""
    from alembic import command

    db = blank_library_db.target
    real_upgrade = command.upgrade

    def upgrade_then_crash(*args, **kwargs):
        real_upgrade(*args, **kwargs)  # every table and index made, not yet committed
        raise OSError("simulated crash during schema creation")

    monkeypatch.setattr(command, "upgrade", upgrade_then_crash)  # what db.migrate calls
    with pytest.raises(Exception, match="simulated crash"):
        open_library(db)
    monkeypatch.undo()
    from db.engine import create_library_engine

    bare = create_library_engine(db)
    assert inspect(bare).get_table_names() == []
    bare.dispose()
    engine = open_library(db)
    assert current_revision(engine) == head_revision()
    engine.dispose()


CREATOR = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from db.engine import open_library
    from db.migrate import current_revision, head_revision
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    assert current_revision(open_library(sys.argv[1])) == head_revision()
""")


def test_two_processes_creating_one_library_both_succeed(tmp_path, blank_library_db):
    db = blank_library_db.target
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", CREATOR, str(db), str(go)], cwd=REPO,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    engine = open_library(db)
    assert "images" in inspect(engine).get_table_names()
    if blank_library_db.path is not None:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    engine.dispose()
