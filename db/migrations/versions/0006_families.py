"""families: stack keys, perceptual hashes, duplicate groups

Revision ID: 0006_families
Revises: 0005_style_grams
Create Date: 2026-11-24 10:00:00

Three nullable columns on contents (library.families explains them), each indexed where a
filter reads it (`stack:ID`, `is:stacked`, `dup:GROUP`, `is:duplicate`). Libraries made
before this revision get their values filled in on first use, not here: stack keys need the
normalisation rule and perceptual hashes need pixels, both in library/ (which db/ may not
import). library.family_ops.backfill fills them at the end of the next scan (the app scans
at every start) and when `gentriage duplicates` runs: stack keys from the stored
generation metadata, hashes from the thumbnail cache (the file itself where there is none).
"""
import sqlalchemy as sa
from alembic import op

revision = '0006_families'
down_revision = '0005_style_grams'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stack_key', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('phash', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('dup_group', sa.Integer(), nullable=True))
        batch_op.create_index('ix_contents_stack_key', ['stack_key'], unique=False)
        batch_op.create_index('ix_contents_dup_group', ['dup_group'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('contents', schema=None) as batch_op:
        batch_op.drop_index('ix_contents_dup_group')
        batch_op.drop_index('ix_contents_stack_key')
        batch_op.drop_column('dup_group')
        batch_op.drop_column('phash')
        batch_op.drop_column('stack_key')
