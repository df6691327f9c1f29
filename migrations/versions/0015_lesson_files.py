"""Lesson files: slides, photos, PDFs and documents attached to a lesson, stored on disk
under random names (FILES_DIR) and described here, with their text for search.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 15:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'lesson_files',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.String(length=16), nullable=False),
        sa.Column('lesson_id', sa.Integer(), nullable=False),
        sa.Column('original_name', sa.String(length=200), nullable=False),
        sa.Column('media_type', sa.String(length=120), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('storage_key', sa.String(length=64), nullable=False),
        sa.Column('uploaded_by_id', sa.Integer(), nullable=False),
        sa.Column('uploaded_at', sa.DateTime(), nullable=False),
        sa.Column('extracted_text', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['lesson_id'], ['lessons.id'],
                                name=op.f('fk_lesson_files_lesson_id_lessons'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['uploaded_by_id'], ['users.id'],
                                name=op.f('fk_lesson_files_uploaded_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_lesson_files')),
        sa.UniqueConstraint('public_id', name=op.f('uq_lesson_files_public_id')),
        sa.UniqueConstraint('storage_key', name=op.f('uq_lesson_files_storage_key')),
    )
    with op.batch_alter_table('lesson_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lesson_files_lesson_id'), ['lesson_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('lesson_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lesson_files_lesson_id'))
    op.drop_table('lesson_files')
