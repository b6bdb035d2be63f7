"""The few places where SQLite and PostgreSQL spell the same query differently.

GenTriage keeps ONE query layer (db/): every statement is built once, with SQLAlchemy, and
these helpers hide the spots where the two databases disagree. Most are SQLAlchemy
constructs compiled per dialect (`@compiles`), so they can sit anywhere in a statement; the
rest take the session and choose. Nothing here opens connections or imports a driver.

Where they differ, and why:

- `insert_for`: the upsert (INSERT … ON CONFLICT) comes from each dialect's module.
- `no_index`: SQLite's planner is steered by hand (`+column` hides an index from it, see
  db.queries._Membership); PostgreSQL's planner decides from statistics, so it gets the
  plain column.
- `glob_match`: SQLite's GLOB (case-sensitive `*` patterns) is LIKE with `%` on PostgreSQL
  (case-sensitive there too).
- `contains_text`: a case-insensitive substring test, LIKE on SQLite (case-insensitive for
  ASCII), ILIKE on PostgreSQL (LIKE is case-sensitive there).
- `greatest`: two-argument max().
- `sortable_text`: SQLite compares text byte by byte; PostgreSQL by the database's locale
  unless told `COLLATE "C"` (keyset pages and path-prefix ranges need byte order).
- `ranking_rows`: a like:/similar: ranking as a (content_id, score) table: one JSON
  parameter on SQLite, two arrays unnested on PostgreSQL (compiling 1,000 VALUES rows costs
  ~100 ms; a parameter costs nothing).
- `serial_page_reads`: PostgreSQL may start parallel workers for a grid page; their start-up
  costs more than a 201-row page can win (SQLite has none).
- `prompt_listing`: the content ids whose prompt contains a term, from SQLite's FTS5 trigram
  table or PostgreSQL's pg_trgm GIN index on generation.prompt (migration 0001).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    Float,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import JSON, Boolean, TypeDecorator, TypeEngine

POSTGRESQL = "postgresql"
SQLITE = "sqlite"


def dialect_name(session: Session) -> str:
    """"sqlite" or "postgresql": the database the session talks to."""
    return session.get_bind().dialect.name


def insert_for(session: Session, target: Any) -> Any:
    """INSERT into `target` (a model or table) with the dialect's ON CONFLICT clauses (same
    API on both), as a Core statement on the table (the same statement on both backends;
    no ORM bulk-insert semantics)."""
    if dialect_name(session) == POSTGRESQL:
        from sqlalchemy.dialects import postgresql  # loaded already: the session uses it

        return postgresql.insert(getattr(target, "__table__", target))
    return sqlite.insert(getattr(target, "__table__", target))


def serial_page_reads(session: Session) -> None:
    """For the rest of the session's transaction, no parallel workers on PostgreSQL.

    A grid page is LIMIT 201 on an index walk; when the planner expects the walk to be long
    (a filter that most rows fail, e.g. `tag:a|b`) it starts a parallel worker, and launching
    it took 15–20 ms before the first row — bench_postgresql, first page of `tag:a|b` at 100k:
    56 → 39 ms without; the other first pages unchanged. Counts and reports keep parallelism."""
    if dialect_name(session) == POSTGRESQL:
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


# The PostgreSQL dialect module is imported only by a PostgreSQL connection (SQLAlchemy loads it
# for the URL): importing it costs ~40 ms, a tenth of an unchanged rescan of a SQLite library.
# So the two PostgreSQL-specific column types below are spelled without it.

# Text whose order the query layer relies on (paths, names, tags): byte order everywhere.
# (The generic type with a collation renders PostgreSQL's `TEXT COLLATE "C"`.)
def sortable_text() -> TypeEngine[str]:
    return Text().with_variant(Text(collation="C"), POSTGRESQL)


class _JsonDocument(TypeDecorator[Any]):
    """JSON, stored as JSONB on PostgreSQL: the dialect's type is chosen when a dialect asks."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> TypeEngine[Any]:
        if dialect.name == POSTGRESQL:
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


# JSON documents (results' per-label scores, the raw metadata): JSONB on PostgreSQL.
def json_document() -> TypeEngine[Any]:
    return _JsonDocument()


# --- per-dialect constructs ---------------------------------------------------------------------

class _NoIndex(ColumnElement[Any]):
    inherit_cache = True

    def __init__(self, target: ColumnElement[Any]) -> None:
        self.target = target
        self.type = target.type


@compiles(_NoIndex)
def _no_index_default(element: _NoIndex, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.target, **kw))


@compiles(_NoIndex, SQLITE)
def _no_index_sqlite(element: _NoIndex, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.target, **kw))


def no_index(target: ColumnElement[Any]) -> ColumnElement[Any]:
    """The same value, but SQLite will not pick an index on it (`+col`): used where a
    condition matches most rows and walking the sort index is far cheaper."""
    return _NoIndex(target)


class _GlobMatch(ColumnElement[bool]):
    inherit_cache = True
    type = Boolean()

    def __init__(self, target: ColumnElement[Any], pattern: str) -> None:
        self.target = target
        self.pattern = pattern


def _pattern_param(compiler: Any, value: str, **kw: Any) -> str:
    return str(compiler.process(bindparam(None, value, type_=String(), unique=True), **kw))


@compiles(_GlobMatch, SQLITE)
def _glob_sqlite(element: _GlobMatch, compiler: Any, **kw: Any) -> str:
    # `*` is the only wildcard people write: GLOB's own `?` and `[` are matched literally.
    pattern = element.pattern.replace("[", "[[]").replace("?", "[?]")
    return f"{compiler.process(element.target, **kw)} GLOB {_pattern_param(compiler, pattern, **kw)}"


@compiles(_GlobMatch)
def _glob_like(element: _GlobMatch, compiler: Any, **kw: Any) -> str:
    escaped = element.pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = escaped.replace("*", "%")
    return (f"{compiler.process(element.target, **kw)} LIKE "
            f"{_pattern_param(compiler, pattern, **kw)} ESCAPE '\\'")


def glob_match(target: ColumnElement[Any], pattern: str) -> ColumnElement[bool]:
    """`target` matches `pattern`, where `*` stands for any text (case-sensitive)."""
    return _GlobMatch(target, pattern)


def like_pattern(text: str) -> str:
    """`%text%` with LIKE's wildcards in `text` escaped by a backslash."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _ContainsText(ColumnElement[bool]):
    inherit_cache = True
    type = Boolean()

    def __init__(self, target: ColumnElement[Any], text: str) -> None:
        self.target = target
        self.text = text


@compiles(_ContainsText)
def _contains_like(element: _ContainsText, compiler: Any, **kw: Any) -> str:
    return (f"{compiler.process(element.target, **kw)} LIKE "
            f"{_pattern_param(compiler, like_pattern(element.text), **kw)} ESCAPE '\\'")


@compiles(_ContainsText, POSTGRESQL)
def _contains_ilike(element: _ContainsText, compiler: Any, **kw: Any) -> str:
    return (f"{compiler.process(element.target, **kw)} ILIKE "
            f"{_pattern_param(compiler, like_pattern(element.text), **kw)} ESCAPE '\\'")


def contains_text(target: ColumnElement[Any], text: str) -> ColumnElement[bool]:
    """`target` contains `text`, ignoring case (SQLite: ASCII letters only, as its LIKE)."""
    return _ContainsText(target, text)


class greatest(FunctionElement[Any]):  # noqa: N801 - reads like the SQL function it is
    """The larger of two values: max(a, b) on SQLite, greatest(a, b) on PostgreSQL."""

    name = "greatest"
    inherit_cache = True


@compiles(greatest)
def _greatest_default(element: greatest, compiler: Any, **kw: Any) -> str:
    return f"greatest({compiler.process(element.clauses, **kw)})"


@compiles(greatest, SQLITE)
def _greatest_sqlite(element: greatest, compiler: Any, **kw: Any) -> str:
    return f"max({compiler.process(element.clauses, **kw)})"


# --- per-dialect statements --------------------------------------------------------------------

def ranking_rows(dialect: str, pairs: Sequence[tuple[int, float]]) -> Any:
    """A CTE `ranked(content_id, score)` holding `pairs` (at least one pair)."""
    if dialect == SQLITE:
        rows = func.json_each(bindparam("ranking", json.dumps(list(pairs)))).table_valued("value")
        return select(
            cast(func.json_extract(rows.c.value, "$[0]"), Integer).label("content_id"),
            cast(func.json_extract(rows.c.value, "$[1]"), Float).label("score"),
        ).cte("ranked")
    ids = bindparam("ranking_ids", [int(cid) for cid, _ in pairs], type_=ARRAY(Integer))
    scores = bindparam("ranking_scores", [float(s) for _, s in pairs], type_=ARRAY(Float))
    rows = func.unnest(ids, scores).table_valued("content_id", "score")
    return select(cast(rows.c.content_id, Integer).label("content_id"),
                  cast(rows.c.score, Float).label("score")).cte("ranked")


# FTS5 trigram index over generation (SQLite, migration 0001).
_prompt_fts = table("prompt_fts", column("rowid"))


def _fts_phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def prompt_listing(dialect: str, prompt_table: Any, term: str) -> Select[Any]:
    """SELECT of the content ids whose prompt contains `term` (three characters or more),
    answered from the trigram index. `prompt_table`: the generation table."""
    if dialect == SQLITE:
        return select(_prompt_fts.c.rowid).where(
            literal_column("prompt_fts").op("MATCH")(f"prompt : {_fts_phrase(term)}"))
    return select(prompt_table.c.content_id).where(contains_text(prompt_table.c.prompt, term))
