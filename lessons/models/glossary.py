"""The admins' glossary of equivalent terms, and the revision that tells processes it changed.

Each row is one group of equivalent terms (``lessons.search.glossary`` explains the
matching). Every app process keeps a built ``Glossary`` in memory; rather than compare
hundreds of rows on each search, it reads the single ``glossary_state`` row, whose
``revision`` the glossary service bumps in the same transaction as every edit. A process
whose cached revision differs rebuilds, so an edit applies to the next search anywhere,
without a restart or a reindex (expansion happens at query time, not in the index).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lessons.extensions import db
from lessons.models.base import utcnow
from lessons.models.user import User

# The one row of ``glossary_state``.
STATE_ID = 1


class GlossaryGroup(db.Model):
    __tablename__ = "glossary_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Cleaned terms (``glossary.clean_group``), in the admin's order. A JSON list rather
    # than a term table: the group is always read, edited and validated whole, and the
    # whole glossary (at most MAX_GROUPS rows) is loaded at once to build the matcher.
    # Assign a new list to change it; in-place mutation is not tracked.
    terms: Mapped[list[str]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_by: Mapped[User | None] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<GlossaryGroup {self.id} {self.terms[:3]!r}>"


class GlossaryState(db.Model):
    """One row (``id == STATE_ID``): the glossary's revision, bumped by every edit.

    The bump is also the edit's lock: it is the use case's first write, so on PostgreSQL
    a second admin's edit waits on the row and then validates against the first one's
    committed groups, and on SQLite it takes the database's write lock before the reads.
    """

    __tablename__ = "glossary_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
