"""Security events on the audit trail: the account an event is about and the client
address of the request, so log-ins, failed log-ins, tokens, account changes, imports and
exports can be read and filtered at /admin/audit.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 04:40:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('address', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_audit_records_subject'), ['subject'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_records_action'), ['action'], unique=False)


def downgrade():
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_records_action'))
        batch_op.drop_index(batch_op.f('ix_audit_records_subject'))
        batch_op.drop_column('address')
        batch_op.drop_column('subject')
