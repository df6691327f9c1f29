"""Federation: peers (other Muster instances), what was sent to each, and the origin of
lessons received from them.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 16:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'peers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('nations_csv', sa.String(length=400), nullable=False),
        sa.Column('public_key', sa.String(length=64), nullable=False),
        sa.Column('url', sa.String(length=500), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_out_sequence', sa.Integer(), nullable=False),
        sa.Column('last_out_at', sa.DateTime(), nullable=True),
        sa.Column('acked_sequence', sa.Integer(), nullable=False),
        sa.Column('last_in_sequence', sa.Integer(), nullable=False),
        sa.Column('last_in_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_peers')),
        sa.UniqueConstraint('name', name=op.f('uq_peers_name')),
    )
    op.create_table(
        'peer_lessons',
        sa.Column('peer_id', sa.Integer(), nullable=False),
        sa.Column('lesson_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('revoked', sa.Boolean(), nullable=False),
        sa.Column('acked', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['lesson_id'], ['lessons.id'],
                                name=op.f('fk_peer_lessons_lesson_id_lessons'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['peer_id'], ['peers.id'],
                                name=op.f('fk_peer_lessons_peer_id_peers'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('peer_id', 'lesson_id', name=op.f('pk_peer_lessons')),
    )
    with op.batch_alter_table('lessons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin_instance', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('origin_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('origin_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('received_at', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_lessons_origin_instance'), ['origin_instance'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('lessons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lessons_origin_instance'))
        batch_op.drop_column('received_at')
        batch_op.drop_column('origin_version')
        batch_op.drop_column('origin_id')
        batch_op.drop_column('origin_instance')
    op.drop_table('peer_lessons')
    op.drop_table('peers')
