"""clip embeddings

Revision ID: 0007_clip_embeddings
Revises: 0006_families
Create Date: 2026-11-24 10:00:00

The `clip` analyser stores one CLIP ViT-L/14 image embedding per content (float16 bytes, the
weights version beside it) for `gentriage search`/`similar` and the app's like:/similar:
terms. `stored_seq` (indexed) lets the in-memory search index load only what was written
since it last looked.
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_clip_embeddings'
down_revision = '0006_families'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'clip_embeddings',
        sa.Column('content_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.String(length=80), nullable=False),
        sa.Column('dim', sa.Integer(), nullable=False),
        sa.Column('vector', sa.LargeBinary(), nullable=False),
        sa.Column('stored_seq', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['content_id'], ['contents.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('content_id'),
    )
    with op.batch_alter_table('clip_embeddings', schema=None) as batch_op:
        batch_op.create_index('ix_clip_embeddings_seq', ['stored_seq'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('clip_embeddings', schema=None) as batch_op:
        batch_op.drop_index('ix_clip_embeddings_seq')
    op.drop_table('clip_embeddings')
