"""Alembic migrations applied on open (no alembic.ini needed: configured in code).

Opening a library whose schema is already at head — every open but the first after an
update — imports no alembic: importing it costs ~100 ms, a fifth of an unchanged rescan. The
head is then read from the migration files' own `revision` / `down_revision` lines and the
library's from its `alembic_version` table; anything else goes through alembic."""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from db.transaction import WRITE_OPTION

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@functools.cache
def declared_head() -> str | None:
    """The head revision as the migration files declare it, read with `ast` (no import of
    the files, which import alembic): the one revision no other file names as its
    `down_revision`. None when that is not one revision (then alembic decides). A test
    checks it against alembic's own head. Hand-written because alembic offers no way to read
    its script directory without importing itself."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, expression = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, expression = node.target, node.value
            else:
                continue
            if not isinstance(target, ast.Name):
                continue
            if target.id == "revision":
                revisions.add(ast.literal_eval(expression))
            elif target.id == "down_revision":
                value = ast.literal_eval(expression)
                parents.update(value if isinstance(value, (tuple, list)) else [value])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(engine: Engine) -> str | None:
    """The library's schema revision read with plain SQL; None when there is none yet (a new
    library) or it cannot be read this way (alembic then looks)."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return None
    return rows[0][0] if len(rows) == 1 else None


def _check_known(revision: str | None) -> None:
    """A revision this version's migrations do not contain was written by a newer GenTriage
    (migrations are only ever added): say so, instead of alembic's "Can't locate revision"."""
    if revision is None:
        return
    from alembic.script import ScriptDirectory
    from alembic.script.revision import ResolutionError
    from alembic.util import CommandError

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
    stored = _stored_revision(engine)
    if stored is not None and stored == declared_head():
        return  # the common case: no alembic at all
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
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
