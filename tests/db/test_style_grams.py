"""The style_grams table: written and replaced per content, removed by a None payload or
with the content, and added to an existing library by migration 0005_style_grams."""

from __future__ import annotations

from sqlalchemy import inspect, select

from db.engine import create_library_engine, open_library, session_factory
from db.migrate import current_revision, head_revision
from db.schema import Content, StyleGram
from db.style_grams import gram_count, grams_of, save_grams
from db.transaction import write_transaction


def _contents(sessions, n):
    with write_transaction(sessions) as s:
        rows = [Content(sha256=f"{i:064x}") for i in range(n)]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def test_save_replace_read_and_remove(tmp_path):
    engine = open_library(tmp_path / "lib.sqlite3")
    sessions = session_factory(engine)
    try:
        a, b = _contents(sessions, 2)
        with write_transaction(sessions) as s:
            save_grams(s, [(a, "v1", b"one"), (b, "v1", b"two")])
        with write_transaction(sessions) as s:
            save_grams(s, [(a, "v2", b"new"), (b, "v2", None)])  # b's new result: an error
        with sessions() as s:
            assert dict(grams_of(s, [a, b], "v2")) == {a: b"new"}
            assert dict(grams_of(s, [a, b], "v1")) == {}
            assert (gram_count(s), gram_count(s, "v2"), gram_count(s, "v1")) == (1, 1, 0)
            assert s.scalar(select(StyleGram.version)) == "v2"
    finally:
        engine.dispose()


def test_a_0003_library_gains_the_table(tmp_path):
    from alembic import command

    from db.migrate import alembic_config

    path = tmp_path / "old.sqlite3"
    engine = create_library_engine(path)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    assert "style_grams" not in inspect(engine).get_table_names()
    engine.dispose()
    engine = open_library(path)
    try:
        assert current_revision(engine) == head_revision()
        assert "style_grams" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
