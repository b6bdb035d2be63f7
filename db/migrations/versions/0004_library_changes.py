"""library change log

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 10:00:00

An open window must see what other processes change: a `gentriage scan` that flags an image,
`gentriage review` clearing a decision, another reviewer. Triggers append one row per change
of what the grid shows — a content's review or flags, an image row that is new, moved, changed
status or now shows another picture — to `library_changes`, whoever wrote it (this process,
another one, plain SQL). Readers ask db.changes "what changed since token T" (T = the last id
seen): one indexed max() when nothing did.

The log keeps the last KEEP rows (a trigger on the log trims it as it grows); a reader whose
token is older than that re-reads everything it holds. NOTE: SQLite drops a table's triggers
when batch mode recreates it: a later migration that recreates `contents` or `images` must
create these triggers again (tests/db/test_changes.py fails otherwise).

PostgreSQL: the same triggers in PL/pgSQL (one function, three triggers). Sequence values
are handed out before commit, so two transactions could make their rows visible out of id
order and a reader's token would skip the later-committed, smaller id; the function takes
the write lock every GenTriage write transaction holds (db.transaction) before it takes an
id, so ids are handed out in commit order whoever writes — a plain-SQL writer included.
"""
import sqlalchemy as sa
from alembic import op

from db.transaction import POSTGRESQL_WRITE_LOCK

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

KEEP = 10_000  # log rows kept; ~0.5 MB

_CONTENT_COLUMNS = ("decision", "rating", "flagged", "flag_nsfw", "flag_incoherent", "analysed")
_IMAGE_COLUMNS = ("content_id", "status", "path")


def _differs(columns: tuple[str, ...]) -> str:
    return " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)


TRIGGERS = {
    "library_changes_contents": (
        f"AFTER UPDATE OF {', '.join(_CONTENT_COLUMNS)} ON contents "
        f"WHEN {_differs(_CONTENT_COLUMNS)} BEGIN "
        "INSERT INTO library_changes (content_id) VALUES (NEW.id); END"),
    "library_changes_images_insert": (
        "AFTER INSERT ON images BEGIN "
        "INSERT INTO library_changes (content_id, image_id) VALUES (NEW.content_id, NEW.id); "
        "END"),
    "library_changes_images_update": (
        f"AFTER UPDATE OF {', '.join(_IMAGE_COLUMNS)} ON images "
        f"WHEN {_differs(_IMAGE_COLUMNS)} BEGIN "
        "INSERT INTO library_changes (content_id, image_id) VALUES (NEW.content_id, NEW.id); "
        "END"),
    "library_changes_trim": (
        "AFTER INSERT ON library_changes BEGIN "
        f"DELETE FROM library_changes WHERE id <= NEW.id - {KEEP}; END"),
}


def _distinct(columns: tuple[str, ...]) -> str:
    return " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)


# Trimming checks every TRIM_EVERY-th id only (one index probe then), so the log holds
# between KEEP and KEEP + TRIM_EVERY rows.
TRIM_EVERY = 64

POSTGRESQL_FUNCTION = f"""
CREATE FUNCTION library_changes_log() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({POSTGRESQL_WRITE_LOCK});
    IF TG_TABLE_NAME = 'contents' THEN
        INSERT INTO library_changes (content_id) VALUES (NEW.id) RETURNING id INTO new_id;
    ELSE
        INSERT INTO library_changes (content_id, image_id) VALUES (NEW.content_id, NEW.id)
            RETURNING id INTO new_id;
    END IF;
    IF mod(new_id, {TRIM_EVERY}) = 0 THEN
        DELETE FROM library_changes WHERE id <= new_id - {KEEP};
    END IF;
    RETURN NULL;
END
$$
"""

POSTGRESQL_TRIGGERS = {
    "library_changes_contents": (
        f"AFTER UPDATE OF {', '.join(_CONTENT_COLUMNS)} ON contents FOR EACH ROW "
        f"WHEN ({_distinct(_CONTENT_COLUMNS)})"),
    "library_changes_images_insert": "AFTER INSERT ON images FOR EACH ROW",
    "library_changes_images_update": (
        f"AFTER UPDATE OF {', '.join(_IMAGE_COLUMNS)} ON images FOR EACH ROW "
        f"WHEN ({_distinct(_IMAGE_COLUMNS)})"),
}


def upgrade() -> None:
    op.create_table(
        'library_changes',
        # 64-bit on PostgreSQL too (SQLite's INTEGER is): a busy studio writes many changes.
        sa.Column('id', sa.Integer().with_variant(sa.BigInteger(), "postgresql"),
                  nullable=False),
        sa.Column('content_id', sa.Integer(), nullable=True),
        sa.Column('image_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute(POSTGRESQL_FUNCTION)
        for name, when in POSTGRESQL_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION library_changes_log()")
        return
    for name, body in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for name in POSTGRESQL_TRIGGERS:
            table = "contents" if name.endswith("contents") else "images"
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS library_changes_log()")
    else:
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table('library_changes')
