"""stored sort:stack rank

Revision ID: 0009_stack_rank
Revises: 0008_review_authors
Create Date: 2026-12-01 10:00:00

`sort:stack` orders a stack's pictures best first (highest rating, accepted, highest aesthetic
score, newest file: the Stack view's "best image"). Computed per query, that key had to be
built for every stacked image before the first row came back (100k images: 143 ms in SQLite,
465 ms in PostgreSQL, on the GUI thread). Stored per image as one text key and indexed, the
first page is an index walk.

`images.stack_rank` (db.stack_rank: the key and its SQL) is written by the database itself,
so every writer keeps it right (this process, another one, plain SQL): triggers recompute it
when an image is added or shows another picture or file time, when a content's stack, rating
or decision changes, and when its aesthetic result is written or deleted. They write
`stack_rank` only, which none of them (nor the change log's, migration 0004) listens to.
NOTE: SQLite drops a table's triggers when batch mode recreates it: a later migration that
recreates `images`, `contents` or `analysis_results` must create these again
(tests/db/test_stack_rank.py fails otherwise).
"""
import sqlalchemy as sa
from alembic import op

from db.stack_rank import fill_statement, postgresql_rank, sqlite_rank

revision = '0009_stack_rank'
down_revision = '0008_review_authors'
branch_labels = None
depends_on = None

_CONTENT_COLUMNS = ("stack_key", "rating", "decision")
_AESTHETIC_ROW = "{row}.analyser = 'aesthetic'"


def _sqlite_triggers() -> dict[str, str]:
    def refresh_images_of(content: str) -> str:
        return (f"UPDATE images SET stack_rank = {sqlite_rank(content, 'images.mtime_ns')} "
                f"WHERE content_id = {content};")

    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _CONTENT_COLUMNS)
    return {
        "stack_rank_image_insert": (
            "AFTER INSERT ON images BEGIN UPDATE images SET stack_rank = "
            f"{sqlite_rank('NEW.content_id', 'NEW.mtime_ns')} WHERE id = NEW.id; END"),
        "stack_rank_image_update": (
            "AFTER UPDATE OF content_id, mtime_ns ON images BEGIN UPDATE images SET "
            f"stack_rank = {sqlite_rank('NEW.content_id', 'NEW.mtime_ns')} "
            "WHERE id = NEW.id; END"),
        "stack_rank_content_update": (
            f"AFTER UPDATE OF {', '.join(_CONTENT_COLUMNS)} ON contents WHEN {changed} "
            f"BEGIN {refresh_images_of('NEW.id')} END"),
        "stack_rank_aesthetic_insert": (
            f"AFTER INSERT ON analysis_results WHEN {_AESTHETIC_ROW.format(row='NEW')} "
            f"BEGIN {refresh_images_of('NEW.content_id')} END"),
        "stack_rank_aesthetic_update": (
            "AFTER UPDATE ON analysis_results WHEN "
            f"{_AESTHETIC_ROW.format(row='NEW')} OR {_AESTHETIC_ROW.format(row='OLD')} "
            f"BEGIN {refresh_images_of('NEW.content_id')} END"),
        "stack_rank_aesthetic_moved": (  # a result moved to another picture (plain SQL)
            "AFTER UPDATE OF content_id ON analysis_results WHEN "
            f"{_AESTHETIC_ROW.format(row='OLD')} AND OLD.content_id IS NOT NEW.content_id "
            f"BEGIN {refresh_images_of('OLD.content_id')} END"),
        "stack_rank_aesthetic_delete": (
            f"AFTER DELETE ON analysis_results WHEN {_AESTHETIC_ROW.format(row='OLD')} "
            f"BEGIN {refresh_images_of('OLD.content_id')} END"),
    }


def _postgresql_functions() -> list[str]:
    def refresh(content: str) -> str:
        return (f"UPDATE images SET stack_rank = {postgresql_rank(content, 'images.mtime_ns')} "
                f"WHERE content_id = {content};")

    return [
        # An image's own row: set before it is written (no second UPDATE of the row).
        "CREATE FUNCTION stack_rank_of_image() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"NEW.stack_rank := {postgresql_rank('NEW.content_id', 'NEW.mtime_ns')}; "
        "RETURN NEW; END $$",
        # A content's review or stack: every image showing it.
        "CREATE FUNCTION stack_rank_of_content() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"{refresh('NEW.id')} RETURN NULL; END $$",
        # Its aesthetic result. (Nested IFs: PL/pgSQL resolves every field of a condition,
        # and OLD has none on INSERT, NEW none on DELETE.)
        "CREATE FUNCTION stack_rank_of_aesthetic() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        f"IF TG_OP <> 'INSERT' THEN {refresh('OLD.content_id')} END IF; "
        f"IF TG_OP = 'INSERT' THEN {refresh('NEW.content_id')} "
        "ELSIF TG_OP = 'UPDATE' THEN "
        f"IF NEW.content_id IS DISTINCT FROM OLD.content_id THEN {refresh('NEW.content_id')} "
        "END IF; END IF; "
        "RETURN NULL; END $$",
    ]


def _postgresql_triggers() -> dict[str, tuple[str, str]]:
    """name -> (table, CREATE TRIGGER's middle)."""
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _CONTENT_COLUMNS)
    aesthetic = "EXECUTE FUNCTION stack_rank_of_aesthetic()"
    return {
        "stack_rank_image": (
            "images", "BEFORE INSERT OR UPDATE OF content_id, mtime_ns ON images FOR EACH ROW "
            "EXECUTE FUNCTION stack_rank_of_image()"),
        "stack_rank_content_update": (
            "contents", f"AFTER UPDATE OF {', '.join(_CONTENT_COLUMNS)} ON contents "
            f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION stack_rank_of_content()"),
        "stack_rank_aesthetic_insert": (
            "analysis_results", "AFTER INSERT ON analysis_results FOR EACH ROW "
            f"WHEN ({_AESTHETIC_ROW.format(row='NEW')}) {aesthetic}"),
        "stack_rank_aesthetic_update": (
            "analysis_results", "AFTER UPDATE ON analysis_results FOR EACH ROW WHEN "
            f"({_AESTHETIC_ROW.format(row='NEW')} OR {_AESTHETIC_ROW.format(row='OLD')}) "
            f"{aesthetic}"),
        "stack_rank_aesthetic_delete": (
            "analysis_results", "AFTER DELETE ON analysis_results FOR EACH ROW "
            f"WHEN ({_AESTHETIC_ROW.format(row='OLD')}) {aesthetic}"),
    }


def upgrade() -> None:
    # Plain ALTER TABLE (no batch mode): recreating `images` would drop migration 0004's
    # triggers on SQLite.
    op.add_column('images', sa.Column(
        'stack_rank', sa.Text().with_variant(sa.Text(collation="C"), "postgresql"),
        nullable=True))
    op.create_index('ix_images_stack_rank', 'images', ['stack_rank', 'id'], unique=False)
    if op.get_context().dialect.name == "postgresql":
        op.execute(fill_statement("postgresql"))
        for function in _postgresql_functions():
            op.execute(function)
        for name, (_table, middle) in _postgresql_triggers().items():
            op.execute(f"CREATE TRIGGER {name} {middle}")
        return
    op.execute(fill_statement("sqlite"))
    for name, body in _sqlite_triggers().items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for name, (table, _middle) in _postgresql_triggers().items():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS stack_rank_of_image()")
        op.execute("DROP FUNCTION IF EXISTS stack_rank_of_content()")
        op.execute("DROP FUNCTION IF EXISTS stack_rank_of_aesthetic()")
    else:
        for name in _sqlite_triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index('ix_images_stack_rank', table_name='images')
    op.drop_column('images', 'stack_rank')
