"""Federation: the bundles written for each peer, kept until it acknowledges them (the
online feed serves one again, byte for byte).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 18:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'peer_bundles',
        sa.Column('peer_id', sa.Integer(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('body', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['peer_id'], ['peers.id'],
                                name=op.f('fk_peer_bundles_peer_id_peers'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('peer_id', 'sequence', name=op.f('pk_peer_bundles')),
    )


def downgrade():
    op.drop_table('peer_bundles')
