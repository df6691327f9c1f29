"""The search outbox: one row per committed lesson change, written in the same transaction.

The index is derived from the database. A row here says "lesson X changed to version V";
the indexer applies rows after commit, so a rolled-back change never reaches the index
and a crash between commit and index write is repaired by the next apply.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer
from sqlalchemy.orm import Mapped, mapped_column

from lessons.extensions import db
from lessons.models.base import utcnow


class IndexOutbox(db.Model):
    __tablename__ = "index_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No foreign key: the row must outlive nothing, and a deleted lesson still needs
    # its document removed from the index.
    lesson_id: Mapped[int] = mapped_column(Integer, index=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
