"""Uploaded lesson files waiting for an analyst to confirm their import after the preview.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 06:21:58.589280

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('staged_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(length=10), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('field_map', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_staged_imports_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staged_imports')),
    sa.UniqueConstraint('token', name=op.f('uq_staged_imports_token'))
    )
    with op.batch_alter_table('staged_imports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staged_imports_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_staged_imports_user_id'), ['user_id'], unique=False)



def downgrade():
    with op.batch_alter_table('staged_imports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staged_imports_user_id'))
        batch_op.drop_index(batch_op.f('ix_staged_imports_created_at'))

    op.drop_table('staged_imports')
