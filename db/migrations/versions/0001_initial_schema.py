"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 16:04:04.023618

Runs on SQLite and PostgreSQL alike; the dialect-specific parts are the prompt search index
(SQLite: an FTS5 trigram table kept by triggers; PostgreSQL: a pg_trgm GIN index on
generation.prompt), JSON (JSONB on PostgreSQL) and the byte-order collation of the text
columns the queries sort or compare by range (db.dialect).
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# The types of db.dialect.json_document / sortable_text, spelled out: a migration does not
# change when the models do.
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_SORTABLE = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('format', sa.String(length=16), nullable=True),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.Column('flag_nsfw', sa.Boolean(), nullable=False),
    sa.Column('flag_incoherent', sa.Boolean(), nullable=False),
    sa.Column('analysed', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sha256')
    )
    with op.batch_alter_table('contents', schema=None) as batch_op:
        batch_op.create_index('ix_contents_decision', ['decision'], unique=False)
        batch_op.create_index('ix_contents_flagged', ['flagged'], unique=False)
        batch_op.create_index('ix_contents_rating', ['rating'], unique=False)

    op.create_table('folders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', _SORTABLE, nullable=False),
    sa.Column('sensitive', sa.Boolean(), nullable=False),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.Column('last_scan_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('path')
    )
    op.create_table('saved_filters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('analysis_queue',
    sa.Column('content_id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['content_id'], ['contents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('content_id')
    )
    with op.batch_alter_table('analysis_queue', schema=None) as batch_op:
        batch_op.create_index('ix_queue_order', ['priority', 'enqueued_at'], unique=False)

    op.create_table('analysis_results',
    sa.Column('content_id', sa.Integer(), nullable=False),
    sa.Column('analyser', sa.String(length=32), nullable=False),
    sa.Column('version', sa.String(length=80), nullable=False),
    sa.Column('label', sa.String(length=32), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('scores', _JSON, nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('analysed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['content_id'], ['contents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('content_id', 'analyser')
    )
    with op.batch_alter_table('analysis_results', schema=None) as batch_op:
        batch_op.create_index('ix_results_analyser_label', ['analyser', 'label'], unique=False)
        batch_op.create_index('ix_results_analyser_score', ['analyser', 'score'], unique=False)

    op.create_table('generation',
    sa.Column('content_id', sa.Integer(), nullable=False),
    sa.Column('generator', sa.String(length=32), nullable=True),
    sa.Column('generator_detail', sa.Text(), nullable=True),
    sa.Column('prompt', sa.Text(), nullable=True),
    sa.Column('negative_prompt', sa.Text(), nullable=True),
    sa.Column('seed', sa.String(length=24), nullable=True),
    sa.Column('steps', sa.Integer(), nullable=True),
    sa.Column('sampler', sa.Text(), nullable=True),
    sa.Column('scheduler', sa.Text(), nullable=True),
    sa.Column('cfg_scale', sa.Float(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('model', sa.Text(), nullable=True),
    sa.Column('model_hash', sa.String(length=80), nullable=True),
    sa.Column('raw', _JSON, nullable=False),
    sa.ForeignKeyConstraint(['content_id'], ['contents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('content_id')
    )
    with op.batch_alter_table('generation', schema=None) as batch_op:
        batch_op.create_index('ix_generation_generator', ['generator'], unique=False)
        batch_op.create_index('ix_generation_model', ['model'], unique=False)
        batch_op.create_index('ix_generation_sampler', ['sampler'], unique=False)

    op.create_table('images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', _SORTABLE, nullable=False),
    sa.Column('name', _SORTABLE, nullable=False),
    sa.Column('folder_id', sa.Integer(), nullable=True),
    sa.Column('content_id', sa.Integer(), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('first_seen', sa.DateTime(), nullable=False),
    sa.Column('indexed_at', sa.DateTime(), nullable=False),
    sa.Column('has_thumbnail', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['content_id'], ['contents.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['folder_id'], ['folders.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('path')
    )
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index('ix_images_content', ['content_id'], unique=False)
        batch_op.create_index('ix_images_folder_mtime', ['folder_id', 'mtime_ns', 'id'], unique=False)
        batch_op.create_index('ix_images_mtime', ['mtime_ns', 'id'], unique=False)
        batch_op.create_index('ix_images_name', ['name', 'id'], unique=False)
        batch_op.create_index('ix_images_status', ['status'], unique=False)

    op.create_table('review_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('content_id', sa.Integer(), nullable=True),
    sa.Column('field', sa.String(length=16), nullable=False),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('reverts_group', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['content_id'], ['contents.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('review_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_log_content_id'), ['content_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_log_group_id'), ['group_id'], unique=False)

    op.create_table('tags',
    sa.Column('content_id', sa.Integer(), nullable=False),
    sa.Column('analyser', sa.String(length=32), nullable=False),
    sa.Column('tag', _SORTABLE, nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['content_id'], ['contents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('content_id', 'analyser', 'tag')
    )
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.create_index('ix_tags_tag', ['tag', 'content_id'], unique=False)

    op.create_table('loras',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('content_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('weight', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['content_id'], ['generation.content_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('loras', schema=None) as batch_op:
        batch_op.create_index('ix_loras_content', ['content_id'], unique=False)
        batch_op.create_index('ix_loras_name', ['name'], unique=False)

    # Prompt search: a trigram index makes `prompt contains "x"` (case-insensitive
    # substring, three characters or more) an index lookup instead of a scan of every prompt.
    if op.get_context().dialect.name == "postgresql":
        # pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_generation_prompt_trgm ON generation "
                   "USING gin (prompt gin_trgm_ops)")
        return
    op.execute(
        "CREATE VIRTUAL TABLE prompt_fts USING fts5(prompt, negative_prompt, "
        "content='generation', content_rowid='content_id', tokenize='trigram')"
    )
    op.execute(
        "CREATE TRIGGER generation_fts_insert AFTER INSERT ON generation BEGIN "
        "INSERT INTO prompt_fts(rowid, prompt, negative_prompt) "
        "VALUES (new.content_id, new.prompt, new.negative_prompt); END"
    )
    op.execute(
        "CREATE TRIGGER generation_fts_delete AFTER DELETE ON generation BEGIN "
        "INSERT INTO prompt_fts(prompt_fts, rowid, prompt, negative_prompt) "
        "VALUES ('delete', old.content_id, old.prompt, old.negative_prompt); END"
    )
    op.execute(
        "CREATE TRIGGER generation_fts_update AFTER UPDATE ON generation BEGIN "
        "INSERT INTO prompt_fts(prompt_fts, rowid, prompt, negative_prompt) "
        "VALUES ('delete', old.content_id, old.prompt, old.negative_prompt); "
        "INSERT INTO prompt_fts(rowid, prompt, negative_prompt) "
        "VALUES (new.content_id, new.prompt, new.negative_prompt); END"
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_generation_prompt_trgm")
    else:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS generation_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS prompt_fts")
    with op.batch_alter_table('loras', schema=None) as batch_op:
        batch_op.drop_index('ix_loras_name')
        batch_op.drop_index('ix_loras_content')

    op.drop_table('loras')
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.drop_index('ix_tags_tag')

    op.drop_table('tags')
    with op.batch_alter_table('review_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_log_group_id'))
        batch_op.drop_index(batch_op.f('ix_review_log_content_id'))

    op.drop_table('review_log')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index('ix_images_status')
        batch_op.drop_index('ix_images_name')
        batch_op.drop_index('ix_images_mtime')
        batch_op.drop_index('ix_images_folder_mtime')
        batch_op.drop_index('ix_images_content')

    op.drop_table('images')
    with op.batch_alter_table('generation', schema=None) as batch_op:
        batch_op.drop_index('ix_generation_sampler')
        batch_op.drop_index('ix_generation_model')
        batch_op.drop_index('ix_generation_generator')

    op.drop_table('generation')
    with op.batch_alter_table('analysis_results', schema=None) as batch_op:
        batch_op.drop_index('ix_results_analyser_score')
        batch_op.drop_index('ix_results_analyser_label')

    op.drop_table('analysis_results')
    with op.batch_alter_table('analysis_queue', schema=None) as batch_op:
        batch_op.drop_index('ix_queue_order')

    op.drop_table('analysis_queue')
    op.drop_table('saved_filters')
    op.drop_table('folders')
    with op.batch_alter_table('contents', schema=None) as batch_op:
        batch_op.drop_index('ix_contents_rating')
        batch_op.drop_index('ix_contents_flagged')
        batch_op.drop_index('ix_contents_decision')

    op.drop_table('contents')
