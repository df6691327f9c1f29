"""The change log: every committed lesson change, in commit order, for the search indexes.

Each host keeps its own index and its own position in this log (``SearchIndex``); no
index deletes what it applied, so every host sees every change. Rows are numbered by
``ChangeLogHead.last_id`` under that row's lock, taken at commit time
(``lessons.search.changelog``): numbers are therefore handed out in commit order with no
gaps, and a reader that moves forward past the highest number it saw can never skip a
transaction that took a lower number and committed later (the classic outbox gap).
Rows every registered index has applied are pruned.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lessons.extensions import db
from lessons.models.base import utcnow


class ChangeLog(db.Model):
    __tablename__ = "change_log"

    # Assigned from ChangeLogHead, never by the database: see the module docstring.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=False)
    # No foreign key: a deleted lesson still needs its document removed from the index.
    lesson_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ChangeLogHead(db.Model):
    """One row (id 1): the last number handed out, how far the log was pruned, and the
    log's epoch (renewed by a restore, so an index built from another history rebuilds)."""

    __tablename__ = "change_log_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                         default=0)
    pruned_through: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                                default=0)
    epoch: Mapped[str] = mapped_column(String(32))


class SearchIndex(db.Model):
    """A registered index (one per host): where it is and how far it has applied the log.

    The index's own folder holds the truth of its position (written after each index
    commit); this row mirrors it for ``flask search status``, ``/health`` and pruning.
    An index not seen for ``SEARCH_INDEX_FORGET_HOURS`` is forgotten, so pruning no
    longer waits for it; if it comes back, it finds the log pruned past it and rebuilds."""

    __tablename__ = "search_indexes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    folder: Mapped[str] = mapped_column(String(1000))
    generation: Mapped[str | None] = mapped_column(String(64))
    epoch: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                          default=0)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime)
    seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
