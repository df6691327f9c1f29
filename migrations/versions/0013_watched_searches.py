"""Watched searches: a user's saved search checked once a day for new lessons, the
lessons each of its notifications reported, and the notification's link to its watch.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 12:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'watched_searches',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.String(length=16), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('query_string', sa.String(length=2000), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_checked_at', sa.DateTime(), nullable=True),
        sa.Column('last_lesson_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['owner_id'], ['users.id'],
                                name=op.f('fk_watched_searches_owner_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_watched_searches')),
        sa.UniqueConstraint('owner_id', 'name', name=op.f('uq_watched_searches_owner_id')),
        sa.UniqueConstraint('public_id', name=op.f('uq_watched_searches_public_id')),
    )
    with op.batch_alter_table('watched_searches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_watched_searches_owner_id'), ['owner_id'],
                              unique=False)
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('watched_search_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_notifications_watched_search_id_watched_searches'),
            'watched_searches', ['watched_search_id'], ['id'], ondelete='CASCADE')
    op.create_table(
        'watched_search_hits',
        sa.Column('notification_id', sa.Integer(), nullable=False),
        sa.Column('lesson_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['lesson_id'], ['lessons.id'],
                                name=op.f('fk_watched_search_hits_lesson_id_lessons'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['notification_id'], ['notifications.id'],
                                name=op.f('fk_watched_search_hits_notification_id_notifications'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('notification_id', 'lesson_id',
                                name=op.f('pk_watched_search_hits')),
    )


def downgrade():
    op.drop_table('watched_search_hits')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_notifications_watched_search_id_watched_searches'),
            type_='foreignkey')
        batch_op.drop_column('watched_search_id')
    with op.batch_alter_table('watched_searches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_watched_searches_owner_id'))
    op.drop_table('watched_searches')
