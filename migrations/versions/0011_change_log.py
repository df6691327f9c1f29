"""The search outbox becomes an ordered change log that every host's index follows from
its own position (no index deletes what it applied), with the registry of indexes.

Every existing lesson is logged once, so the log is complete from the start: a new host
can build its index from empty by applying it. Indexes built before this revision have
no position and rebuild at their next start (or `flask search reindex`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 08:00:00.000000

"""
import secrets

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        'change_log',
        sa.Column('id', BIG, autoincrement=False, nullable=False),
        sa.Column('lesson_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_change_log')),
    )
    op.create_table(
        'change_log_head',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('last_id', BIG, nullable=False),
        sa.Column('pruned_through', BIG, nullable=False),
        sa.Column('epoch', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_change_log_head')),
    )
    op.create_table(
        'search_indexes',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('folder', sa.String(length=1000), nullable=False),
        sa.Column('generation', sa.String(length=64), nullable=True),
        sa.Column('epoch', sa.String(length=32), nullable=False),
        sa.Column('position', BIG, nullable=False),
        sa.Column('applied_at', sa.DateTime(), nullable=True),
        sa.Column('seen_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_search_indexes')),
    )
    op.execute(
        "INSERT INTO change_log (id, lesson_id, version, created_at) "
        "SELECT ROW_NUMBER() OVER (ORDER BY id), id, version, CURRENT_TIMESTAMP FROM lessons")
    bind = op.get_bind()
    logged = bind.execute(sa.text("SELECT COUNT(*) FROM change_log")).scalar_one()
    bind.execute(sa.text("INSERT INTO change_log_head (id, last_id, pruned_through, epoch) "
                         "VALUES (1, :last, 0, :epoch)"),
                 {"last": logged, "epoch": secrets.token_hex(8)})
    with op.batch_alter_table('index_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_index_outbox_lesson_id'))
    op.drop_table('index_outbox')


def downgrade():
    op.create_table(
        'index_outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('lesson_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_index_outbox')),
    )
    with op.batch_alter_table('index_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_index_outbox_lesson_id'), ['lesson_id'],
                              unique=False)
    op.drop_table('search_indexes')
    op.drop_table('change_log_head')
    op.drop_table('change_log')
