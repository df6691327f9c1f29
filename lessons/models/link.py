"""Links between lessons: "see also" pointers a contributor or analyst sets by hand.

A link is stored once, from the lesson whose editor made it (``lesson_id``) to the
lesson it points at (``linked_lesson_id``), and shows on both lessons' pages; the pair
is unique and the service refuses the reverse of an existing link, so A-B is one link
whichever side made it. Which links a viewer is shown is the policy's business: a link
shows only when the viewer may see the lesson at its other end.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from lessons.extensions import db
from lessons.models.base import utcnow


class LessonLink(db.Model):
    __tablename__ = "lesson_links"
    __table_args__ = (CheckConstraint("lesson_id <> linked_lesson_id", name="not_self"),)

    # The composite key is the unique pair and serves look-ups from the linking side.
    lesson_id: Mapped[int] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"),
                                           primary_key=True)
    linked_lesson_id: Mapped[int] = mapped_column(
        ForeignKey("lessons.id", ondelete="CASCADE"), primary_key=True, index=True)
    # Users are deactivated, never deleted, so the creator stays known.
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<LessonLink {self.lesson_id}->{self.linked_lesson_id}>"
