"""The PostgreSQL backend's own guarantees (the shared behaviour runs on both backends in the
other db tests): URLs everywhere a database is named, the trigram prompt index, REPEATABLE
READ readers, the change log's commit order under concurrent plain-SQL writers, queue leases
that skip rows another runner is taking, and storage errors in the user's terms."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import URL, create_engine, select, text
from sqlalchemy.exc import OperationalError

from db import queue, store
from db.changes import changes_since, current_token
from db.engine import (
    DatabaseError,
    database_path_of,
    describe_database_error,
    describe_target,
    open_library,
    parse_database,
    session_factory,
)
from db.filters import parse_filter
from db.queries import count_images, fetch_page
from db.schema import Content, Generation, QueuedAnalysis, utcnow
from db.transaction import is_database_busy, write_transaction

# --- naming the database (no server needed) ---------------------------------------------------


def test_a_plain_path_is_sqlite_and_a_url_is_a_server(tmp_path):
    assert parse_database(str(tmp_path / "lib.sqlite3")) == tmp_path / "lib.sqlite3"
    assert parse_database(f"sqlite:///{tmp_path}/lib.sqlite3") == tmp_path / "lib.sqlite3"
    assert parse_database("~/lib.sqlite3") == Path.home() / "lib.sqlite3"
    for spelling in ("postgresql://ann@db.studio/triage", "postgres://ann@db.studio/triage",
                     "postgresql+psycopg://ann@db.studio/triage"):
        target = parse_database(spelling)
        assert isinstance(target, URL)
        assert target.drivername == "postgresql+psycopg"
        assert (target.username, target.host, target.database) == ("ann", "db.studio", "triage")


@pytest.mark.parametrize("value, message", [
    ("mysql://ann@dbhost/triage", "not 'mysql'"),
    ("postgresql+psycopg2://ann@dbhost/triage", "through psycopg"),
    ("postgresql://ann@db.studio", "names no database"),
    ("sqlite://", "needs a file path"),
    ("postgresql://ann@db:notaport/triage", "not a database URL"),
])
def test_a_url_gentriage_cannot_use_is_a_clear_error(value, message):
    with pytest.raises(DatabaseError, match=message):
        parse_database(value)


def test_messages_never_show_the_password():
    target = parse_database("postgresql://ann:s3cret@db.studio/triage")
    assert "s3cret" not in describe_target(target)
    assert "ann" in describe_target(target) and "db.studio/triage" in describe_target(target)


def test_an_unreachable_server_is_one_clear_line(tmp_path):
    socket_dir = tmp_path / "nothing-listens-here"
    socket_dir.mkdir()
    with pytest.raises(DatabaseError) as info:
        open_library(f"postgresql://ann@/triage?host={socket_dir}&connect_timeout=2")
    message = str(info.value)
    assert "cannot reach the PostgreSQL server" in message
    assert "\n" not in message and "Traceback" not in message


# --- a PostgreSQL library ---------------------------------------------------------------------

@pytest.fixture
def pg(postgres_server, tmp_path):
    """(engine, sessions, URL) of a fresh PostgreSQL library (skips without binaries)."""
    if postgres_server is None:
        from postgres_server import missing_reason

        pytest.skip(missing_reason())
    name = postgres_server.create_database()
    url = postgres_server.url(name)
    engine = open_library(url)
    yield engine, session_factory(engine), url
    engine.dispose()
    postgres_server.drop_database(name)


def _content_with_prompt(sessions, sha: str, prompt: str) -> int:
    with write_transaction(sessions) as session:
        folder = store.add_folder(session, "/lib")
        recorded = store.record_image(session, store.FileFacts(
            path=f"/lib/{sha[:8]}.png", size=1, mtime_ns=1, sha256=sha, width=8, height=8,
            format="PNG", has_thumbnail=False), folder.id)
        content_id = recorded.content_id
        session.add(Generation(content_id=content_id, prompt=prompt, raw={}))
    return content_id


def test_the_opened_library_knows_it_is_no_file(pg):
    engine, _sessions, url = pg
    assert database_path_of(engine) is None
    assert engine.url.database == parse_database(url).database


def test_prompt_search_uses_the_trigram_index(pg):
    engine, sessions, _url = pg
    fox = _content_with_prompt(sessions, "a" * 64, "A Red FOX in snow")
    _content_with_prompt(sessions, "b" * 64, "a blue whale")
    with sessions() as session:
        assert count_images(session, parse_filter('prompt:"red fox"')) == 1
        rows, _ = fetch_page(session, parse_filter('prompt:"red fox"'))
        assert [r.content_id for r in rows] == [fox]
        assert count_images(session, parse_filter("prompt:ox")) == 1  # shorter: no index
    with engine.connect() as connection:
        connection.exec_driver_sql("SET enable_seqscan = off")  # a tiny table: force the index
        plan = "\n".join(connection.execute(text(
            "EXPLAIN SELECT content_id FROM generation WHERE prompt ILIKE :pattern"),
            {"pattern": "%red fox%"}).scalars())
    assert "ix_generation_prompt_trgm" in plan


def test_readers_see_one_snapshot_for_their_whole_transaction(pg):
    """REPEATABLE READ, as SQLite's deferred BEGIN: a page read in several statements
    never mixes two states of the library."""
    _engine, sessions, _url = pg
    _content_with_prompt(sessions, "a" * 64, "first")
    with sessions() as reader:
        before = reader.scalar(select(Content.decision))
        with write_transaction(sessions) as writer:
            writer.execute(text("UPDATE contents SET decision = 'accepted'"))
        assert reader.scalar(select(Content.decision)) == before == "none"
    with sessions() as fresh:
        assert fresh.scalar(select(Content.decision)) == "accepted"


def test_change_log_ids_follow_commit_order_even_for_plain_sql_writers(pg):
    """Two programs that write without GenTriage (no write lock of their own): the second
    one's change must not get a log id before the first one commits, or a reader holding
    a token taken in between would never see the first change. The trigger function takes
    the write lock before the id, so the second writer waits."""
    engine, sessions, _url = pg
    a = _content_with_prompt(sessions, "a" * 64, "a")
    b = _content_with_prompt(sessions, "b" * 64, "b")
    plain = create_engine(engine.url)
    try:
        with plain.connect() as first, plain.connect() as second:
            first_tx = first.begin()
            first.execute(text("UPDATE contents SET rating = 3 WHERE id = :id"), {"id": a})
            with pytest.raises(OperationalError) as info, second.begin():
                second.execute(text("SET LOCAL lock_timeout = '200ms'"))
                second.execute(text("UPDATE contents SET rating = 4 WHERE id = :id"), {"id": b})
            assert is_database_busy(info.value)
            with sessions() as reader:
                token = current_token(reader)
            first_tx.commit()
            with second.begin():
                second.execute(text("UPDATE contents SET rating = 4 WHERE id = :id"), {"id": b})
    finally:
        plain.dispose()
    with sessions() as reader:
        assert changes_since(reader, token).content_ids == {a, b}


def test_leases_skip_rows_another_runner_is_taking(pg):
    """Two runners leasing at the same moment, in overlapping transactions: neither waits
    for the other and no row is leased twice (SELECT … FOR UPDATE SKIP LOCKED)."""
    _engine, sessions, _url = pg
    ids = [_content_with_prompt(sessions, f"{k:064x}", f"p{k}") for k in range(1, 7)]
    with write_transaction(sessions) as session:
        session.execute(text("DELETE FROM analysis_queue"))
        session.add_all(QueuedAnalysis(content_id=cid, enqueued_at=utcnow()) for cid in ids)
    until = utcnow() + timedelta(minutes=5)
    with sessions() as first, sessions() as second:
        # Plain transactions, not write_transaction: the write lock would make them take
        # turns; here the row locks alone must keep the leases apart.
        taken_first = queue.lease_next(first, "runner-1", 4, until)
        second.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting would be a failure
        taken_second = queue.lease_next(second, "runner-2", 4, until)
        first.commit()
        second.commit()
    first_ids = {t.content_id for t in taken_first}
    second_ids = {t.content_id for t in taken_second}
    assert len(first_ids) == 4 and len(second_ids) == 2
    assert first_ids.isdisjoint(second_ids) and first_ids | second_ids == set(ids)
    with sessions() as session:
        holders = dict(session.execute(select(QueuedAnalysis.content_id,
                                              QueuedAnalysis.leased_by)).all())
    assert {cid for cid, who in holders.items() if who == "runner-2"} == second_ids


def test_concurrent_runners_lease_every_row_exactly_once(pg):
    """Four threads draining one queue through write transactions, as the app, scans and
    Ray workers do: every row is leased once, none twice."""
    _engine, sessions, _url = pg
    ids = [_content_with_prompt(sessions, f"{k:064x}", f"p{k}") for k in range(1, 41)]
    with write_transaction(sessions) as session:
        session.execute(text("DELETE FROM analysis_queue"))
        session.add_all(QueuedAnalysis(content_id=cid, enqueued_at=utcnow()) for cid in ids)
    taken: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def runner(name: str) -> None:
        try:
            mine = taken.setdefault(name, [])
            while True:
                with write_transaction(sessions) as session:
                    leased = queue.lease_next(session, name, 3, utcnow() + timedelta(hours=1))
                if not leased:
                    return
                mine.extend(item.content_id for item in leased)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(f"r{k}",)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    everything = [cid for mine in taken.values() for cid in mine]
    assert sorted(everything) == sorted(ids)


def test_errors_the_server_reports_are_explained(pg):
    engine, sessions, url = pg

    class ServerError(Exception):
        __module__ = "psycopg.errors"

        def __init__(self, message: str, sqlstate: str | None) -> None:
            super().__init__(message)
            self.sqlstate = sqlstate

    assert "disk is full" in describe_database_error(ServerError("no space", "53100"))
    assert "refused the login" in describe_database_error(ServerError("auth", "28P01"))
    assert "does not exist" in describe_database_error(ServerError("no db", "3D000"))
    assert "locked" in describe_database_error(ServerError("timeout", "55P03"))
    assert describe_database_error(ServerError("syntax", "42601")) is None
    missing = parse_database(url).set(database="no_such_library")
    with pytest.raises(DatabaseError, match="does not exist"):
        open_library(missing)


def test_grid_pages_are_read_without_parallel_workers(pg):
    """A grid page is LIMIT 201: launching parallel workers cost more than they won
    (bench_postgresql: first page of `tag:a|b` 56 → 39 ms). Only that read's transaction is
    affected: counts and reports keep the server's parallelism."""
    _engine, sessions, _url = pg
    show = text("SHOW max_parallel_workers_per_gather")
    with sessions() as session:
        configured = session.execute(show).scalar()
        assert configured != "0"
        fetch_page(session, parse_filter("tag:a|b"))
        assert session.execute(show).scalar() == "0"
    with sessions() as session:
        assert session.execute(show).scalar() == configured
