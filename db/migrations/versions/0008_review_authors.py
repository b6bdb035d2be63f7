"""review authors

Revision ID: 0008_review_authors
Revises: 0007_clip_embeddings
Create Date: 2026-11-26 10:00:00

Several reviewers may share one library (a PostgreSQL server): the review log records who
made each change (`author`), and undo/redo are per author (db.review). Rows logged before
this revision were made on a single-user library by its owner: they are credited to the
account that upgrades it (the OS user name, db.review.local_reviewer), so that person can
still undo them. The index serves the per-author walk down the undo stack.
"""
import sqlalchemy as sa
from alembic import op

from db.review import local_reviewer

revision = '0008_review_authors'
down_revision = '0007_clip_embeddings'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('review_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('author', sa.String(length=64), nullable=True))
    op.execute(sa.text("UPDATE review_log SET author = :author")
               .bindparams(author=local_reviewer()))
    with op.batch_alter_table('review_log', schema=None) as batch_op:
        batch_op.alter_column('author', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index('ix_review_log_author_group', ['author', 'group_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('review_log', schema=None) as batch_op:
        batch_op.drop_index('ix_review_log_author_group')
        batch_op.drop_column('author')
