"""Notifications: one row per recipient and event, written in the transaction of the change
that caused it (``services/notifications.py``), read in the app and delivered by e-mail by
``flask notify send``; and each user's choice per kind of event."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lessons.extensions import db
from lessons.models.base import new_public_id, utcnow
from lessons.models.exercise import Exercise
from lessons.models.lesson import Lesson
from lessons.models.user import User
from lessons.models.watch import WatchedSearch


class Notification(db.Model):
    __tablename__ = "notifications"
    # The header's unread count and the list read by recipient, newest first; the sender
    # reads what is due by state and time.
    __table_args__ = (
        Index("ix_notifications_recipient_read", "recipient_id", "read_at"),
        Index("ix_notifications_email_due", "email_state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The id the "mark as read" form names (database ids never leave the server).
    public_id: Mapped[str] = mapped_column(String(16), unique=True, default=new_public_id)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # A kind of event users choose about (services.notifications.EVENTS) and the audit
    # action that raised it (validated, release_requested...), for the wording.
    event: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(40))
    lesson_id: Mapped[int | None] = mapped_column(
        ForeignKey("lessons.id", ondelete="CASCADE"))
    # The second lesson of a link (shown only while the recipient may see it too).
    other_lesson_id: Mapped[int | None] = mapped_column(
        ForeignKey("lessons.id", ondelete="CASCADE"))
    exercise_id: Mapped[int | None] = mapped_column(
        ForeignKey("exercises.id", ondelete="CASCADE"))
    # The watched search a "watched_search" notification reports on (its lessons are in
    # watched_search_hits); deleting the watch deletes its notifications.
    watched_search_id: Mapped[int | None] = mapped_column(
        ForeignKey("watched_searches.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(DateTime)
    # E-mail: "immediate" or "digest" (the user's choice when it was made); its state is
    # pending, sent, failed (retried after next_attempt_at while attempts remain) or
    # skipped (no mail server or address, or the lesson is no longer the recipient's to see).
    email_mode: Mapped[str] = mapped_column(String(10), default="immediate")
    email_state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    emailed_at: Mapped[datetime | None] = mapped_column(DateTime)

    recipient: Mapped[User] = relationship(foreign_keys=[recipient_id], lazy="select")
    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id], lazy="select")
    lesson: Mapped[Lesson | None] = relationship(foreign_keys=[lesson_id], lazy="select")
    other_lesson: Mapped[Lesson | None] = relationship(foreign_keys=[other_lesson_id],
                                                       lazy="select")
    exercise: Mapped[Exercise | None] = relationship(lazy="select")
    watched_search: Mapped[WatchedSearch | None] = relationship(lazy="select")


class NotificationPreference(db.Model):
    """How a user wants one kind of event: ``immediately``, ``digest`` (in the app at once,
    by e-mail once a day) or ``never``. No row: the event's default."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    event: Mapped[str] = mapped_column(String(40), primary_key=True)
    delivery: Mapped[str] = mapped_column(String(12))
