"""Combined exercises, the lessons attached to them, and release requests.

An exercise's participants (``nations``) decide who may see it; its planners who may
change it. Attached lessons keep their own visibility: the policy still checks each one
for each viewer, so an exercise never widens a lesson's REL TO.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.associationproxy import AssociationProxy, association_proxy
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lessons.extensions import db
from lessons.models.base import new_public_id, utcnow
from lessons.models.lesson import Lesson, Tag
from lessons.models.user import User

exercise_tags = Table(
    "exercise_tags",
    db.metadata,
    Column("exercise_id", Integer, ForeignKey("exercises.id", ondelete="CASCADE"),
           primary_key=True),
    Column("tag_id", Integer, ForeignKey("tags.id"), primary_key=True),
)

exercise_planners = Table(
    "exercise_planners",
    db.metadata,
    Column("exercise_id", Integer, ForeignKey("exercises.id", ondelete="CASCADE"),
           primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
)


class ExerciseNation(db.Model):
    """A participating nation (the lead nation always is one)."""

    __tablename__ = "exercise_nations"

    exercise_id: Mapped[int] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"),
                                             primary_key=True)
    nation_code: Mapped[str] = mapped_column(ForeignKey("nations.code"), primary_key=True,
                                             index=True)


class Objective(db.Model):
    """One training objective. Its public id stays when its text is edited, so lessons
    attached to it stay attached."""

    __tablename__ = "exercise_objectives"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(16), unique=True, default=new_public_id)
    exercise_id: Mapped[int] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"),
                                             index=True)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)


class Milestone(db.Model):
    """A planning milestone: one of the six standard ones or a custom one, by name."""

    __tablename__ = "exercise_milestones"
    __table_args__ = (UniqueConstraint("exercise_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exercise_id: Mapped[int] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"),
                                             index=True)
    name: Mapped[str] = mapped_column(String(60))
    due_on: Mapped[date | None] = mapped_column(Date)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Exercise(db.Model):
    __tablename__ = "exercises"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(16), unique=True, default=new_public_id)
    version: Mapped[int] = mapped_column(Integer, default=1)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))
    lead_nation: Mapped[str] = mapped_column(ForeignKey("nations.code"))
    starts_on: Mapped[date] = mapped_column(Date, index=True)
    ends_on: Mapped[date] = mapped_column(Date, index=True)
    location: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    nation_rows: Mapped[list[ExerciseNation]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by=ExerciseNation.nation_code)
    objectives: Mapped[list[Objective]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by=Objective.position)
    milestones: Mapped[list[Milestone]] = relationship(
        cascade="all, delete-orphan", lazy="selectin",
        order_by=(Milestone.position, Milestone.id))
    tag_objects: Mapped[list[Tag]] = relationship(
        secondary=exercise_tags, lazy="selectin", order_by=Tag.name)
    planners: Mapped[list[User]] = relationship(
        secondary=exercise_planners, lazy="selectin", order_by=User.username)

    nations: AssociationProxy[list[str]] = association_proxy(
        "nation_rows", "nation_code", creator=lambda code: ExerciseNation(nation_code=code))

    @property
    def tags(self) -> list[str]:
        return [t.name for t in self.tag_objects]

    def milestone(self, name: str) -> Milestone | None:
        return next((m for m in self.milestones if m.name == name), None)

    def objective(self, public_id: str) -> Objective | None:
        return next((o for o in self.objectives if o.public_id == public_id), None)

    # Version-checked UPDATEs, as on Lesson: of two racing edits exactly one succeeds.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}

    def __repr__(self) -> str:
        return f"<Exercise {self.public_id} {self.name}>"


class ExerciseLesson(db.Model):
    """A lesson taken up by an exercise, and how far it got: ``proposed`` → ``accepted``
    → ``incorporated`` → ``effective`` | ``not_effective``."""

    __tablename__ = "exercise_lessons"
    __table_args__ = (UniqueConstraint("exercise_id", "lesson_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exercise_id: Mapped[int] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"),
                                             index=True)
    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"),
                                           index=True)
    purpose: Mapped[str] = mapped_column(String(30))
    objective_id: Mapped[int | None] = mapped_column(ForeignKey("exercise_objectives.id"))
    milestone_id: Mapped[int | None] = mapped_column(ForeignKey("exercise_milestones.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="proposed", index=True)
    # Bumped by every change, so API clients cannot overwrite each other's.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    evidence: Mapped[str] = mapped_column(Text, default="")
    # For an ``effective`` outcome recorded by a planner of another nation than the
    # lesson's originator: "pending" until an originator analyst confirms or declines.
    confirmation: Mapped[str] = mapped_column(String(20), default="", index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    exercise: Mapped[Exercise] = relationship(lazy="joined", innerjoin=True)
    lesson: Mapped[Lesson] = relationship(lazy="joined", innerjoin=True)
    objective: Mapped[Objective | None] = relationship(lazy="joined")
    milestone: Mapped[Milestone | None] = relationship(lazy="joined")
    steps: Mapped[list[ExerciseLessonStep]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ExerciseLessonStep.id")

    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class ExerciseLessonStep(db.Model):
    """Who moved a link to which status, when (the link's own history)."""

    __tablename__ = "exercise_lesson_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("exercise_lessons.id", ondelete="CASCADE"),
                                         index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[User] = relationship(lazy="joined")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ReleaseRequest(db.Model):
    """A planner's request that a lesson's originator add nations to its REL TO, so the
    lesson can go into a packet for those nations."""

    __tablename__ = "release_requests"
    # One waiting request per lesson and exercise, held by the database itself: two
    # planners asking at the same moment cannot both store one.
    __table_args__ = (Index("uq_release_requests_pending", "lesson_id", "exercise_id",
                            unique=True, sqlite_where=text("status = 'pending'"),
                            postgresql_where=text("status = 'pending'")),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(16), unique=True, default=new_public_id)
    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"),
                                           index=True)
    exercise_id: Mapped[int | None] = mapped_column(
        ForeignKey("exercises.id", ondelete="SET NULL"))
    nations: Mapped[list] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Bumped by the decision: of two analysts deciding at once, exactly one decides.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    lesson: Mapped[Lesson] = relationship(lazy="joined", innerjoin=True)
    exercise: Mapped[Exercise | None] = relationship(lazy="joined")
    requested_by: Mapped[User] = relationship(foreign_keys=[requested_by_id], lazy="joined")
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id], lazy="joined")

    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}
