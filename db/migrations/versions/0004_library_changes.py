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
"""
import sqlalchemy as sa
from alembic import op

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


def upgrade() -> None:
    op.create_table(
        'library_changes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('content_id', sa.Integer(), nullable=True),
        sa.Column('image_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    for name, body in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table('library_changes')
