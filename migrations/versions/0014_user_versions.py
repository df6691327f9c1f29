"""User versions: ``users.version``, raised by every change of the account row, so an
administrator's edit made on an older version of the account is refused instead of
silently undoing another administrator's newer save.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 14:45:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1',
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('version')
