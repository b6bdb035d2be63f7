"""analysis queue lease

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:00:00

The app and a headless `gentriage scan` may drain the same persisted queue at once. A runner
now leases the rows it takes (who, until when); other runners skip leased rows until the
lease ends, so no content is analysed twice at the same time, and the rows of a process that
was killed become takeable again once its lease expires.
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('analysis_queue', schema=None) as batch_op:
        batch_op.add_column(sa.Column('leased_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('leased_until', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('analysis_queue', schema=None) as batch_op:
        batch_op.drop_column('leased_until')
        batch_op.drop_column('leased_by')
