"""Alembic migrations applied on open (no alembic.ini needed: configured in code)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util import CommandError
from sqlalchemy import Engine

from db.transaction import WRITE_OPTION

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _check_known(revision: str | None) -> None:
    """A revision this version's migrations do not contain was written by a newer GenTriage
    (migrations are only ever added): say so, instead of alembic's "Can't locate revision"."""
    if revision is None:
        return
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except (CommandError, ResolutionError):
        known = None
    if known is None:
        from db.engine import DatabaseError

        raise DatabaseError(
            f"this library was made by a newer version of GenTriage (schema revision "
            f"{revision!r}, this version knows up to {head_revision()!r}); update GenTriage "
            "to open it — the database was not changed")


def upgrade_to_head(engine: Engine) -> None:
    """Bring the schema to head in ONE write transaction: a process killed half-way leaves
    the database as it was (SQLite's DDL is transactional once pysqlite stops committing
    around it, see db.engine; PostgreSQL's DDL is transactional anyway), and two processes
    creating a new library at once queue on the write lock (PostgreSQL: the advisory lock of
    every write transaction); the second finds the schema made and does nothing. A database
    from a newer GenTriage raises db.engine.DatabaseError and is left untouched."""
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return  # the common case: skip alembic's environment entirely
    _check_known(current)
    config = alembic_config()
    with engine.connect() as connection:
        connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():  # BEGIN IMMEDIATE: waits for another creator to finish
            current = MigrationContext.configure(connection).get_current_revision()
            if current == head:
                return
            _check_known(current)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
