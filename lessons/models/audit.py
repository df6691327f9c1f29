"""Audit records: who changed what, when, and why. Written by services only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lessons.extensions import db
from lessons.models.base import utcnow
from lessons.models.lesson import Lesson
from lessons.models.user import User


class AuditRecord(db.Model):
    __tablename__ = "audit_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lesson_id: Mapped[int | None] = mapped_column(
        ForeignKey("lessons.id", ondelete="CASCADE"), index=True)
    exercise_id: Mapped[int | None] = mapped_column(
        ForeignKey("exercises.id", ondelete="CASCADE"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[User | None] = relationship(lazy="joined")
    lesson: Mapped[Lesson | None] = relationship(lazy="select")
    # created, edited, submitted, withdrawn, returned, validated, rejected,
    # action_assigned, learned, archived, action_added, action_updated, imported
    action: Mapped[str] = mapped_column(String(40), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    version: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    # Names of the fields an edit changed: enough to follow history, without copying text.
    changes: Mapped[list | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # Security events: the account the event is about (a log-in's typed name, a user an
    # admin changed), which may differ from the actor or name nobody at all; and the
    # client address of the request (None from the command line).
    subject: Mapped[str | None] = mapped_column(String(64), index=True)
    address: Mapped[str | None] = mapped_column(String(64))
