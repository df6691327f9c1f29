"""Lessons, their list-valued fields, tags and remedial actions.

List fields live in child tables (not JSON) so that the policy's SQL filter, list
filters and later the exchange format work the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Column, Date, DateTime, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.ext.associationproxy import AssociationProxy, association_proxy
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lessons.extensions import db
from lessons.models.base import new_public_id, utcnow
from lessons.models.user import User

if TYPE_CHECKING:
    from lessons.models.exercise import Exercise
    from lessons.models.lesson_file import LessonFile

lesson_tags = Table(
    "lesson_tags",
    db.metadata,
    Column("lesson_id", Integer, ForeignKey("lessons.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", Integer, ForeignKey("tags.id"), primary_key=True),
)


class Tag(db.Model):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class LessonRelease(db.Model):
    """One nation in a lesson's REL TO (already expanded from groups)."""

    __tablename__ = "lesson_releasability"

    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"),
                                           primary_key=True)
    nation_code: Mapped[str] = mapped_column(ForeignKey("nations.code"), primary_key=True)


class LessonNation(db.Model):
    """A partner nation involved in what happened (a facet, not access)."""

    __tablename__ = "lesson_nations"

    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"),
                                           primary_key=True)
    nation_code: Mapped[str] = mapped_column(ForeignKey("nations.code"), primary_key=True)


class LessonDomain(db.Model):
    __tablename__ = "lesson_domains"

    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"),
                                           primary_key=True)
    slug: Mapped[str] = mapped_column(String(30), primary_key=True)


class LessonFunction(db.Model):
    __tablename__ = "lesson_functions"

    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"),
                                           primary_key=True)
    slug: Mapped[str] = mapped_column(String(30), primary_key=True)


class RemedialAction(db.Model):
    __tablename__ = "remedial_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"),
                                           index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(Text)
    owner_org: Mapped[str] = mapped_column(String(200), default="")
    owner_nation: Mapped[str | None] = mapped_column(ForeignKey("nations.code"))
    due_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default="open")

    def to_contract(self) -> dict:
        return {
            "description": self.description,
            "owner_org": self.owner_org,
            "owner_nation": self.owner_nation,
            "due_on": self.due_on.isoformat() if self.due_on else None,
            "status": self.status,
        }


def _sorted_proxy(attr: str, child: type, key: str) -> AssociationProxy:
    return association_proxy(attr, key, creator=lambda value: child(**{key: value}))


class Lesson(db.Model):
    __tablename__ = "lessons"
    # One copy per lesson of another instance (own lessons have no origin: NULLs differ).
    __table_args__ = (Index("uq_lessons_origin", "origin_instance", "origin_id",
                            unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(16), unique=True, default=new_public_id)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default="draft", index=True)

    title: Mapped[str] = mapped_column(String(300))
    observation: Mapped[str] = mapped_column(Text, default="")
    discussion: Mapped[str] = mapped_column(Text, default="")
    conclusion: Mapped[str] = mapped_column(Text, default="")
    recommendation: Mapped[str] = mapped_column(Text, default="")

    kind: Mapped[str] = mapped_column(String(20), default="lesson", index=True)
    friction: Mapped[str] = mapped_column(Text, default="")
    workaround: Mapped[str] = mapped_column(Text, default="")
    limits: Mapped[str] = mapped_column(Text, default="")
    permanence: Mapped[str] = mapped_column(String(20), default="")

    source_event: Mapped[str] = mapped_column(String(200), default="")
    # The Muster exercise the observation came from, when there is one.
    source_exercise_id: Mapped[int | None] = mapped_column(
        ForeignKey("exercises.id", ondelete="SET NULL"), index=True)
    # The lesson this one follows up (an exercise outcome "not effective"); its REL TO
    # bounded this one's at creation.
    derived_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("lessons.id", ondelete="SET NULL"))
    observed_on: Mapped[date | None] = mapped_column(Date)
    location: Mapped[str] = mapped_column(String(200), default="")
    unit: Mapped[str] = mapped_column(String(200), default="")

    originator_nation: Mapped[str] = mapped_column(ForeignKey("nations.code"), index=True)
    classification: Mapped[str] = mapped_column(String(40), default="UNCLASSIFIED")

    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    author: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    # A lesson received from another Muster instance (``lessons.federation``): which
    # instance wrote it, its id and version there, and when it arrived. None for this
    # instance's own lessons; the policy keeps the others read-only.
    origin_instance: Mapped[str | None] = mapped_column(String(64), index=True)
    origin_id: Mapped[str | None] = mapped_column(String(64))
    origin_version: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow,
                                                 index=True)

    release_rows: Mapped[list[LessonRelease]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by=LessonRelease.nation_code)
    nation_rows: Mapped[list[LessonNation]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by=LessonNation.nation_code)
    domain_rows: Mapped[list[LessonDomain]] = relationship(
        cascade="all, delete-orphan", lazy="selectin")
    function_rows: Mapped[list[LessonFunction]] = relationship(
        cascade="all, delete-orphan", lazy="selectin")
    tag_objects: Mapped[list[Tag]] = relationship(
        secondary=lesson_tags, lazy="selectin", order_by=Tag.name)
    actions: Mapped[list[RemedialAction]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by=RemedialAction.position)

    releasable_to: AssociationProxy[list[str]] = _sorted_proxy(
        "release_rows", LessonRelease, "nation_code")
    nations: AssociationProxy[list[str]] = _sorted_proxy(
        "nation_rows", LessonNation, "nation_code")
    domains: AssociationProxy[list[str]] = _sorted_proxy("domain_rows", LessonDomain, "slug")
    functions: AssociationProxy[list[str]] = _sorted_proxy(
        "function_rows", LessonFunction, "slug")

    # Which viewers may follow it is the policy's call (``can_view_exercise``).
    source_exercise: Mapped[Exercise | None] = relationship(
        lazy="select", foreign_keys=[source_exercise_id])

    # Attached files (``models/lesson_file.py``), oldest first. Read-only here: the files
    # service adds and removes them (and their bytes on disk) with their audit records.
    files: Mapped[list[LessonFile]] = relationship(
        lazy="select", viewonly=True, order_by="LessonFile.id")

    @property
    def tags(self) -> list[str]:
        return [t.name for t in self.tag_objects]

    @property
    def marking(self) -> str:
        """The one-line access label shown at the top and bottom of every page."""
        return f"{self.classification} // REL TO {', '.join(sorted(self.releasable_to))}"

    @property
    def open_actions(self) -> list[RemedialAction]:
        return [a for a in self.actions if a.status == "open"]

    # Every UPDATE of the row says ``WHERE version = <the version this session loaded>``,
    # so of two racing writers exactly one succeeds (``StaleDataError`` for the other) on
    # SQLite, where FOR UPDATE does nothing, as on PostgreSQL. The services bump the
    # number themselves (it names the audit record), hence no generator.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}

    def __repr__(self) -> str:
        return f"<Lesson {self.public_id} {self.status}>"
