"""Lesson links: "see also" pointers between lessons, shown on both lessons' pages.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 12:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('lesson_links',
    sa.Column('lesson_id', sa.Integer(), nullable=False),
    sa.Column('linked_lesson_id', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('lesson_id <> linked_lesson_id', name=op.f('ck_lesson_links_not_self')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_lesson_links_created_by_id_users')),
    sa.ForeignKeyConstraint(['lesson_id'], ['lessons.id'], name=op.f('fk_lesson_links_lesson_id_lessons'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['linked_lesson_id'], ['lessons.id'], name=op.f('fk_lesson_links_linked_lesson_id_lessons'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('lesson_id', 'linked_lesson_id', name=op.f('pk_lesson_links'))
    )
    with op.batch_alter_table('lesson_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lesson_links_linked_lesson_id'), ['linked_lesson_id'], unique=False)


def downgrade():
    with op.batch_alter_table('lesson_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lesson_links_linked_lesson_id'))

    op.drop_table('lesson_links')
