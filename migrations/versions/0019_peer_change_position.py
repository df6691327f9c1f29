"""Federation: where the change log stood when a peer's lessons were last read, so the
feed answers "nothing new" without reading them again.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 19:10:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('peers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change_position', sa.String(length=60), nullable=True))


def downgrade():
    with op.batch_alter_table('peers', schema=None) as batch_op:
        batch_op.drop_column('change_position')
