"""style analyser Gram matrices

Revision ID: 0005_style_grams
Revises: 0004
Create Date: 2026-11-24 10:00:00

The `style` analyser (VGG19, for the report's style loss) keeps the Gram matrices of
conv1_1..conv5_1 per content, packed (~600 KiB), in their own table so the analysis results
table stays small and fast to scan. Versioned like analysis results; deleted with the content.
"""
import sqlalchemy as sa
from alembic import op

revision = '0005_style_grams'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'style_grams',
        sa.Column('content_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.String(length=80), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['content_id'], ['contents.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('content_id'),
    )


def downgrade() -> None:
    op.drop_table('style_grams')
