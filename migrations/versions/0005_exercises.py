"""Exercises: participants, objectives, milestones, planners, attached lessons with their
steps, release requests; lessons gain their source exercise and the lesson they follow up;
audit records can name an exercise.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 05:36:02.775558

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('exercises',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('lead_nation', sa.String(length=3), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_exercises_created_by_id_users')),
    sa.ForeignKeyConstraint(['lead_nation'], ['nations.code'], name=op.f('fk_exercises_lead_nation_nations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exercises')),
    sa.UniqueConstraint('public_id', name=op.f('uq_exercises_public_id'))
    )
    with op.batch_alter_table('exercises', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exercises_ends_on'), ['ends_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_exercises_starts_on'), ['starts_on'], unique=False)

    op.create_table('exercise_milestones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('exercise_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['exercise_id'], ['exercises.id'], name=op.f('fk_exercise_milestones_exercise_id_exercises'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exercise_milestones')),
    sa.UniqueConstraint('exercise_id', 'name', name=op.f('uq_exercise_milestones_exercise_id'))
    )
    with op.batch_alter_table('exercise_milestones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exercise_milestones_exercise_id'), ['exercise_id'], unique=False)

    op.create_table('exercise_nations',
    sa.Column('exercise_id', sa.Integer(), nullable=False),
    sa.Column('nation_code', sa.String(length=3), nullable=False),
    sa.ForeignKeyConstraint(['exercise_id'], ['exercises.id'], name=op.f('fk_exercise_nations_exercise_id_exercises'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['nation_code'], ['nations.code'], name=op.f('fk_exercise_nations_nation_code_nations')),
    sa.PrimaryKeyConstraint('exercise_id', 'nation_code', name=op.f('pk_exercise_nations'))
    )
    with op.batch_alter_table('exercise_nations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exercise_nations_nation_code'), ['nation_code'], unique=False)

    op.create_table('exercise_objectives',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=16), nullable=False),
    sa.Column('exercise_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['exercise_id'], ['exercises.id'], name=op.f('fk_exercise_objectives_exercise_id_exercises'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exercise_objectives')),
    sa.UniqueConstraint('public_id', name=op.f('uq_exercise_objectives_public_id'))
    )
    with op.batch_alter_table('exercise_objectives', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exercise_objectives_exercise_id'), ['exercise_id'], unique=False)

    op.create_table('exercise_planners',
    sa.Column('exercise_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['exercise_id'], ['exercises.id'], name=op.f('fk_exercise_planners_exercise_id_exercises'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_exercise_planners_user_id_users')),
    sa.PrimaryKeyConstraint('exercise_id', 'user_id', name=op.f('pk_exercise_planners'))
    )
    op.create_table('exercise_tags',
    sa.Column('exercise_id', sa.Integer(), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['exercise_id'], ['exercises.id'], name=op.f('fk_exercise_tags_exercise_id_exercises'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_exercise_tags_tag_id_tags')),
    sa.PrimaryKeyConstraint('exercise_id', 'tag_id', name=op.f('pk_exercise_tags'))
    )
    op.create_table('exercise_lessons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('exercise_id', sa.Integer(), nullable=False),
    sa.Column('lesson_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=30), nullable=False),
    sa.Column('objective_id', sa.Integer(), nullable=True),
    sa.Column('milestone_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('confirmation', sa.String(length=20), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_exercise_lessons_created_by_id_users')),
    sa.ForeignKeyConstraint(['exercise_id'], ['exercises.id'], name=op.f('fk_exercise_lessons_exercise_id_exercises'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lesson_id'], ['lessons.id'], name=op.f('fk_exercise_lessons_lesson_id_lessons'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['milestone_id'], ['exercise_milestones.id'], name=op.f('fk_exercise_lessons_milestone_id_exercise_milestones')),
    sa.ForeignKeyConstraint(['objective_id'], ['exercise_objectives.id'], name=op.f('fk_exercise_lessons_objective_id_exercise_objectives')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exercise_lessons')),
    sa.UniqueConstraint('exercise_id', 'lesson_id', name=op.f('uq_exercise_lessons_exercise_id'))
    )
    with op.batch_alter_table('exercise_lessons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exercise_lessons_confirmation'), ['confirmation'], unique=False)
        batch_op.create_index(batch_op.f('ix_exercise_lessons_exercise_id'), ['exercise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_exercise_lessons_lesson_id'), ['lesson_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_exercise_lessons_status'), ['status'], unique=False)

    op.create_table('release_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=16), nullable=False),
    sa.Column('lesson_id', sa.Integer(), nullable=False),
    sa.Column('exercise_id', sa.Integer(), nullable=True),
    sa.Column('nations', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_release_requests_decided_by_id_users')),
    sa.ForeignKeyConstraint(['exercise_id'], ['exercises.id'], name=op.f('fk_release_requests_exercise_id_exercises'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['lesson_id'], ['lessons.id'], name=op.f('fk_release_requests_lesson_id_lessons'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_release_requests_requested_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_release_requests')),
    sa.UniqueConstraint('public_id', name=op.f('uq_release_requests_public_id'))
    )
    with op.batch_alter_table('release_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_release_requests_lesson_id'), ['lesson_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_release_requests_status'), ['status'], unique=False)

    op.create_table('exercise_lesson_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_exercise_lesson_steps_actor_id_users')),
    sa.ForeignKeyConstraint(['link_id'], ['exercise_lessons.id'], name=op.f('fk_exercise_lesson_steps_link_id_exercise_lessons'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exercise_lesson_steps'))
    )
    with op.batch_alter_table('exercise_lesson_steps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exercise_lesson_steps_link_id'), ['link_id'], unique=False)

    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('exercise_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_audit_records_exercise_id'), ['exercise_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_audit_records_exercise_id_exercises'), 'exercises', ['exercise_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('lessons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_exercise_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('derived_from_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_lessons_source_exercise_id'), ['source_exercise_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_lessons_source_exercise_id_exercises'), 'exercises', ['source_exercise_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_lessons_derived_from_id_lessons'), 'lessons', ['derived_from_id'], ['id'], ondelete='SET NULL')



def downgrade():
    with op.batch_alter_table('lessons', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_lessons_derived_from_id_lessons'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_lessons_source_exercise_id_exercises'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_lessons_source_exercise_id'))
        batch_op.drop_column('derived_from_id')
        batch_op.drop_column('source_exercise_id')

    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_audit_records_exercise_id_exercises'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_audit_records_exercise_id'))
        batch_op.drop_column('exercise_id')

    with op.batch_alter_table('exercise_lesson_steps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exercise_lesson_steps_link_id'))

    op.drop_table('exercise_lesson_steps')
    with op.batch_alter_table('release_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_release_requests_status'))
        batch_op.drop_index(batch_op.f('ix_release_requests_lesson_id'))

    op.drop_table('release_requests')
    with op.batch_alter_table('exercise_lessons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exercise_lessons_status'))
        batch_op.drop_index(batch_op.f('ix_exercise_lessons_lesson_id'))
        batch_op.drop_index(batch_op.f('ix_exercise_lessons_exercise_id'))
        batch_op.drop_index(batch_op.f('ix_exercise_lessons_confirmation'))

    op.drop_table('exercise_lessons')
    op.drop_table('exercise_tags')
    op.drop_table('exercise_planners')
    with op.batch_alter_table('exercise_objectives', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exercise_objectives_exercise_id'))

    op.drop_table('exercise_objectives')
    with op.batch_alter_table('exercise_nations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exercise_nations_nation_code'))

    op.drop_table('exercise_nations')
    with op.batch_alter_table('exercise_milestones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exercise_milestones_exercise_id'))

    op.drop_table('exercise_milestones')
    with op.batch_alter_table('exercises', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exercises_starts_on'))
        batch_op.drop_index(batch_op.f('ix_exercises_ends_on'))

    op.drop_table('exercises')
