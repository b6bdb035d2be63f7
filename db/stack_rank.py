"""`images.stack_rank`: sort:stack's key, stored per image and kept by the database.

A stack's pictures go best first: the highest rating, then accepted, then the highest
aesthetic score (none counts lowest), then the newest file. As one text key per image:
`stack_key|5 - rating|0 accepted, else 1|1e9 - aesthetic score|2^62 - mtime_ns`, each number
at a fixed width so the key sorts as text (byte order: `COLLATE "C"` on PostgreSQL); NULL for
an image in no stack (no picture, or no prompt). Migration 0009 adds the column, fills it and
installs the triggers that keep it; the synthetic benchmark library, loaded with its triggers
off, fills it with `fill_statement`. Changing the rule means a migration that recreates those
triggers and fills the column again.
"""

from __future__ import annotations

# Large enough for any file time in nanoseconds (year 2116), small enough for a signed 64-bit.
TIME_BASE = 1 << 62


def _aesthetic(content: str) -> str:
    return ("(SELECT r.score FROM analysis_results r WHERE r.content_id = "
            f"{content} AND r.analyser = 'aesthetic' AND r.error IS NULL)")


def sqlite_rank(content_id: str, mtime_ns: str) -> str:
    """The rank of an image showing content `content_id` with file time `mtime_ns` (SQL
    expressions), NULL when it is in no stack."""
    return ("(SELECT printf('%s|%d|%d|%019.6f|%020d', c.stack_key, 5 - c.rating, "
            "CASE WHEN c.decision = 'accepted' THEN 0 ELSE 1 END, "
            f"1e9 - coalesce({_aesthetic('c.id')}, -1e9), {TIME_BASE} - {mtime_ns}) "
            f"FROM contents c WHERE c.id = {content_id} AND c.stack_key IS NOT NULL)")


def postgresql_rank(content_id: str, mtime_ns: str) -> str:
    """sqlite_rank in PostgreSQL: to_char's 12 integer digits and 6 decimals are printf's
    %019.6f for 0 <= x < 1e12. (No format(): a literal % would clash with the driver's
    placeholders.)"""
    return ("(SELECT c.stack_key || '|' || (5 - c.rating)::text || '|' || "
            "(CASE WHEN c.decision = 'accepted' THEN 0 ELSE 1 END)::text || '|' || "
            f"to_char((1e9 - coalesce({_aesthetic('c.id')}, -1e9))::float8, "
            "'FM000000000000.000000') || '|' || "
            f"lpad(({TIME_BASE} - {mtime_ns})::text, 20, '0') "
            f"FROM contents c WHERE c.id = {content_id} AND c.stack_key IS NOT NULL)")


def rank_expression(dialect: str, content_id: str, mtime_ns: str) -> str:
    rank = postgresql_rank if dialect == "postgresql" else sqlite_rank
    return rank(content_id, mtime_ns)


def fill_statement(dialect: str) -> str:
    """Every image's rank, computed afresh (`dialect`: "sqlite" or "postgresql")."""
    return ("UPDATE images SET stack_rank = "
            f"{rank_expression(dialect, 'images.content_id', 'images.mtime_ns')}")
