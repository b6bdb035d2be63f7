
import pytest
from sqlalchemy import inspect, text

from db.engine import DatabaseError, create_library_engine, open_library, session_factory
from db.migrate import current_revision, head_revision
from db.schema import Base, Content, Decision, Folder, Image


def test_empty_database_migrates_to_head_and_matches_the_models(engine):
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    if engine.dialect.name == "sqlite":
        assert "prompt_fts" in tables
    else:
        indexes = {i["name"] for i in inspect(engine).get_indexes("generation")}
        assert "ix_generation_prompt_trgm" in indexes


def test_migrations_match_the_orm_models(engine):
    """Autogenerate against a migrated database finds nothing to do: schema.py and the
    migrations agree (a change to one without the other fails here), on both backends."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(
            connection, opts={"compare_type": True}), Base.metadata)
    # Made by SQL, not by the models: FTS5's shadow tables, PostgreSQL's trigram index.
    diff = [d for d in diff
            if not (d[0] == "remove_table" and d[1].name.startswith("prompt_fts"))
            and not (d[0] == "remove_index" and d[1].name == "ix_generation_prompt_trgm")]
    assert diff == []


def test_every_connection_gets_the_pragmas(tmp_path):
    engine = create_library_engine(tmp_path / "p.sqlite3")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0


def test_reopening_keeps_data(tmp_path):
    path = tmp_path / "keep.sqlite3"
    engine = open_library(path)
    with session_factory(engine).begin() as session:
        folder = Folder(path="/pictures")
        content = Content(sha256="a" * 64, decision=Decision.ACCEPTED.value, rating=4)
        session.add_all([folder, content])
        session.flush()
        session.add(Image(path="/pictures/a.png", name="a.png", folder_id=folder.id,
                          content_id=content.id))
    engine.dispose()
    engine = open_library(path)
    with session_factory(engine)() as session:
        image = session.query(Image).one()
        assert image.content.decision == "accepted" and image.content.rating == 4


def test_prompt_index_follows_inserts_updates_and_deletes(Session, backend):
    from db.schema import Generation

    if backend == "postgresql":
        pytest.skip("SQLite's FTS5 table is kept by triggers; PostgreSQL's GIN index by "
                    "PostgreSQL itself (test_postgresql.py: test_prompt_search_uses_the_trigram_index)")
    with Session.begin() as session:
        content = Content(sha256="b" * 64)
        session.add(content)
        session.flush()
        session.add(Generation(content_id=content.id, prompt="a red fox in snow"))
    match = text("SELECT rowid FROM prompt_fts WHERE prompt_fts MATCH :q")
    with Session.begin() as session:
        assert session.execute(match, {"q": '"red fox"'}).scalars().all() == [content.id]
        session.get(Generation, content.id).prompt = "a blue whale"
    with Session.begin() as session:
        assert session.execute(match, {"q": '"red fox"'}).scalars().all() == []
        assert session.execute(match, {"q": '"blue wha"'}).scalars().all() == [content.id]
        session.delete(session.get(Generation, content.id))
    with Session() as session:
        assert session.execute(match, {"q": '"blue wha"'}).scalars().all() == []


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path):
    path = tmp_path / "not-a-db.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match="not-a-db.sqlite3"):
        open_library(path)


def test_foreign_keys_are_enforced(Session):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), Session.begin() as session:
        session.add(Image(path="/x.png", name="x.png", content_id=999))


def test_a_0002_library_gains_the_queue_lease_and_keeps_its_queue(tmp_path):
    """Upgrading a library made before queue leases keeps queued work, unleased."""
    from alembic import command

    from db.migrate import alembic_config
    from db.schema import QueuedAnalysis

    path = tmp_path / "old.sqlite3"
    engine = create_library_engine(path)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO contents (id, sha256, decision, rating, flagged,"
                                   " flag_nsfw, flag_incoherent, analysed)"
                                   " VALUES (1, 'c', 'none', 0, 0, 0, 0, 0)")
        connection.exec_driver_sql("INSERT INTO analysis_queue (content_id, priority,"
                                   " enqueued_at, attempts) VALUES (1, 0, '2026-01-01', 1)")
    engine.dispose()

    engine = open_library(path)
    try:
        assert current_revision(engine) == head_revision()
        with session_factory(engine)() as session:
            row = session.get(QueuedAnalysis, 1)
            assert (row.attempts, row.leased_by, row.leased_until) == (1, None, None)
    finally:
        engine.dispose()


def test_the_head_read_from_the_files_is_alembics_head():
    from db.migrate import declared_head

    assert declared_head() == head_revision()


def test_opening_a_library_at_head_imports_no_alembic(library_db):
    """The fast path of every open but the first after an update (alembic's import is a
    fifth of an unchanged rescan); a library one revision behind still goes through it."""
    import subprocess
    import sys
    from pathlib import Path

    engine = library_db.open()  # created and migrated
    engine.dispose()
    probe = ("import sys\nfrom db.engine import open_library\n"
             "open_library(sys.argv[1]).dispose()\nprint('alembic' in sys.modules)")
    repo = Path(__file__).resolve().parents[2]

    def alembic_imported() -> str:
        return subprocess.run([sys.executable, "-c", probe, library_db.target], cwd=repo,
                              capture_output=True, text=True, check=True,
                              timeout=120).stdout.strip()

    assert alembic_imported() == "False"
    from alembic import command

    from db.migrate import alembic_config

    engine = library_db.open()
    with engine.begin() as connection:  # revisions back, by the migrations' downgrades
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0007_clip_embeddings")
    engine.dispose()
    assert alembic_imported() == "True"  # migrated again, by alembic
    engine = library_db.open()
    try:
        assert current_revision(engine) == head_revision()
        assert "author" in {c["name"] for c in inspect(engine).get_columns("review_log")}
    finally:
        engine.dispose()


def test_the_postgresql_column_types_without_importing_the_postgresql_dialect():
    """JSON documents are JSONB and ordered text is byte-ordered on PostgreSQL — as the
    migrations create them — while opening a SQLite library never imports SQLAlchemy's
    PostgreSQL dialect (~40 ms of an unchanged rescan)."""
    import json
    import subprocess
    import sys

    from sqlalchemy.dialects import postgresql, sqlite

    from db.schema import AnalysisResult, Generation, Image

    for column, on_postgresql, on_sqlite in (
            (AnalysisResult.__table__.c.scores, "JSONB", "JSON"),
            (Generation.__table__.c.raw, "JSONB", "JSON"),
            (Image.__table__.c.path, 'TEXT COLLATE "C"', "TEXT")):
        assert column.type.compile(dialect=postgresql.dialect()) == on_postgresql
        assert column.type.compile(dialect=sqlite.dialect()) == on_sqlite
    probe = ("import json, sys, db.store, db.queries, library.scan, library.analysis\n"
             "print(json.dumps(sorted(m for m in sys.modules if 'postgresql' in m)))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout
    assert json.loads(loaded) == []
