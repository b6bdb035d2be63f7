"""query indexes for the grid (db.queries)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 17:00:00

The analyser label/score indexes gain content_id as their last column, so a filter or sort on
a result ("nsfw-vit:nsfw", "aesthetic>=6", "sort:-aesthetic") reads the content ids from the
index alone instead of one table lookup per matching row. They replace the two-column
indexes, which are their prefixes.

PostgreSQL also gets extended statistics on (analyser, label): a label belongs to one
analyser ("incoherent" only to coherence), which the planner cannot know from per-column
statistics; without them it underestimated `coherence:incoherent` sevenfold and sorted every
match instead of walking the time index (53 ms for the first page of 100,000 images, 13 ms
with them; benchmarks/bench_postgresql.py).
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('analysis_results', schema=None) as batch_op:
        batch_op.drop_index('ix_results_analyser_label')
        batch_op.drop_index('ix_results_analyser_score')
        batch_op.create_index('ix_results_analyser_label', ['analyser', 'label', 'content_id'],
                              unique=False)
        batch_op.create_index('ix_results_analyser_score', ['analyser', 'score', 'content_id'],
                              unique=False)
    if op.get_context().dialect.name == "postgresql":
        op.execute("CREATE STATISTICS st_results_analyser_label (dependencies, mcv) "
                   "ON analyser, label FROM analysis_results")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_results_analyser_label")
    with op.batch_alter_table('analysis_results', schema=None) as batch_op:
        batch_op.drop_index('ix_results_analyser_score')
        batch_op.drop_index('ix_results_analyser_label')
        batch_op.create_index('ix_results_analyser_label', ['analyser', 'label'], unique=False)
        batch_op.create_index('ix_results_analyser_score', ['analyser', 'score'], unique=False)
