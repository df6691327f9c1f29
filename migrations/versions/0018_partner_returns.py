"""Federation: outcomes and release requests travelling back to a lesson's originating
instance (return_messages), those received from partners (partner_requests), and one
stored copy per lesson of another instance (uq_lessons_origin).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 19:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('uq_lessons_origin', 'lessons', ['origin_instance', 'origin_id'],
                    unique=True)
    op.create_table(
        'return_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('peer_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=30), nullable=False),
        sa.Column('key', sa.String(length=80), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['peer_id'], ['peers.id'],
                                name=op.f('fk_return_messages_peer_id_peers'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_return_messages')),
        sa.UniqueConstraint('peer_id', 'kind', 'key',
                            name=op.f('uq_return_messages_peer_id')),
    )
    with op.batch_alter_table('return_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_return_messages_peer_id'), ['peer_id'],
                              unique=False)
    op.create_table(
        'partner_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.String(length=16), nullable=False),
        sa.Column('peer_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('remote_id', sa.String(length=80), nullable=False),
        sa.Column('lesson_id', sa.Integer(), nullable=False),
        sa.Column('exercise_name', sa.String(length=200), nullable=False),
        sa.Column('exercise_starts', sa.String(length=10), nullable=False),
        sa.Column('exercise_ends', sa.String(length=10), nullable=False),
        sa.Column('planner_nation', sa.String(length=10), nullable=False),
        sa.Column('result', sa.String(length=20), nullable=False),
        sa.Column('nations', sa.JSON(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('decision_note', sa.Text(), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.Column('version', sa.Integer(), server_default='1', nullable=False),
        sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'],
                                name=op.f('fk_partner_requests_decided_by_id_users')),
        sa.ForeignKeyConstraint(['lesson_id'], ['lessons.id'],
                                name=op.f('fk_partner_requests_lesson_id_lessons'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['peer_id'], ['peers.id'],
                                name=op.f('fk_partner_requests_peer_id_peers'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_partner_requests')),
        sa.UniqueConstraint('peer_id', 'kind', 'remote_id',
                            name=op.f('uq_partner_requests_peer_id')),
        sa.UniqueConstraint('public_id', name=op.f('uq_partner_requests_public_id')),
    )
    with op.batch_alter_table('partner_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_partner_requests_lesson_id'), ['lesson_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_partner_requests_peer_id'), ['peer_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_partner_requests_status'), ['status'],
                              unique=False)


def downgrade():
    op.drop_table('partner_requests')
    op.drop_table('return_messages')
    op.drop_index('uq_lessons_origin', table_name='lessons')
