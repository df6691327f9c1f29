"""Watched searches: a user's saved search, checked once a day for new lessons they may
see (``services/watches.py``), and the lessons each resulting notification names."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lessons.extensions import db
from lessons.models.base import new_public_id, utcnow
from lessons.models.lesson import Lesson
from lessons.models.user import User
from lessons.rules import WATCH_NAME_MAX, WATCH_QUERY_MAX


class WatchedSearch(db.Model):
    __tablename__ = "watched_searches"
    # One name per owner: the name is how the owner tells their watches apart.
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(16), unique=True, default=new_public_id)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                          index=True)
    name: Mapped[str] = mapped_column(String(WATCH_NAME_MAX))
    # The search page's URL state (q, filters, sort), normalised, so the watch links back
    # to exactly the search that was saved and is run again the same way.
    query_string: Mapped[str] = mapped_column(String(WATCH_QUERY_MAX))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The newest lesson id when the watch was saved (the high-water mark): lessons above
    # it that the owner may see are new until a notification of this watch reports them.
    last_lesson_id: Mapped[int] = mapped_column(Integer, default=0)

    owner: Mapped[User] = relationship(lazy="select")


class WatchedSearchHit(db.Model):
    """A lesson one watch notification reported; shown only while the owner may see it."""

    __tablename__ = "watched_search_hits"

    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True)
    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"),
                                           primary_key=True)

    lesson: Mapped[Lesson] = relationship(lazy="select")
