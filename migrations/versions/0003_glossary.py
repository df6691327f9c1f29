"""Glossary of equivalent terms, seeded with the shipped default, and its revision counter.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 09:00:00.000000

"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa

from lessons.search.glossary import load_default_entries


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('glossary_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('terms', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_glossary_groups_updated_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_glossary_groups'))
    )
    op.create_table('glossary_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_glossary_state'))
    )

    # The shipped glossary, so a fresh database expands queries from the start; admins
    # edit it in the app afterwards. Read at upgrade time from the package's JSON file
    # (validated by tests/test_vocabulary.py), like 0001 reads the nation list.
    groups = sa.table('glossary_groups', sa.column('terms', sa.JSON),
                      sa.column('note', sa.Text), sa.column('updated_at', sa.DateTime),
                      sa.column('updated_by_id', sa.Integer))
    state = sa.table('glossary_state', sa.column('id', sa.Integer),
                     sa.column('revision', sa.Integer))
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(groups, [
        {'terms': entry.terms, 'note': entry.note, 'updated_at': now, 'updated_by_id': None}
        for entry in load_default_entries()
    ])
    op.bulk_insert(state, [{'id': 1, 'revision': 1}])


def downgrade():
    op.drop_table('glossary_state')
    op.drop_table('glossary_groups')
