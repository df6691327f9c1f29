"""Writing and reading the change log (``lessons.models.changes``): how lesson changes
reach every host's index in commit order.

Writers call ``queue`` inside their transaction. At commit (SQLAlchemy's
``before_commit``), ``_write_queued`` flushes the transaction's own changes, then takes
the next numbers from the head row with one ``UPDATE ... RETURNING`` and inserts the log
rows. The UPDATE locks the head row until the transaction ends, so the next writer's
numbers are handed out only after this one has committed (or rolled back, giving its
numbers back): numbers follow commit order, with no gaps. That is what lets every index
keep a single position and read "everything after it" without ever skipping a
transaction that took a lower number and committed after a higher one. Writers wait for
each other only for their final statements (the head row is taken last, after the
flush), not for their whole transaction. SQLite serialises writers anyway.

Readers (``lessons.search.index``) call ``head``, ``after`` and ``register``; pruning
(``prune``) deletes rows every registered index has applied.
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, event, func, insert, select, update
from sqlalchemy.orm import Session

from lessons.extensions import db
from lessons.models import ChangeLog, ChangeLogHead, Lesson, SearchIndex
from lessons.models.base import utcnow

_QUEUE = "muster.changes"  # Session.info key: lessons whose change this transaction logs
_WRITTEN = "muster.changes.written"  # Session.info key: the last number its commit took
HEAD_ID = 1
INSERT_BATCH = 1000


def queue(lesson: Lesson) -> None:
    """Log ``lesson``'s change when the current transaction commits (nothing if it rolls
    back). Queue a deleted lesson before the delete is flushed: its id is kept."""
    if lesson.id is None:
        db.session.flush()
    db.session.info.setdefault(_QUEUE, {})[lesson.id] = lesson


def queue_ids(lesson_ids: list[int]) -> None:
    """``queue`` by id, for bulk statements that load no objects."""
    queued = db.session.info.setdefault(_QUEUE, {})
    for lesson_id in lesson_ids:
        queued.setdefault(lesson_id, None)


def last_written(session: Session | None = None) -> int | None:
    """The highest log number the session's last commit wrote, if it wrote any."""
    return (session or db.session).info.get(_WRITTEN)


@event.listens_for(Session, "before_commit")
def _write_queued(session: Session) -> None:
    queued: dict[int, Lesson | None] = session.info.pop(_QUEUE, None) or {}
    session.info.pop(_WRITTEN, None)
    if not queued:
        return
    session.flush()  # the transaction's own row locks first, the head row last
    rows = []
    for lesson_id, lesson in queued.items():
        version = lesson.version if lesson is not None else None
        rows.append({"lesson_id": lesson_id, "version": version})
    missing = [row["lesson_id"] for row in rows if row["version"] is None]
    if missing:
        versions = dict(session.execute(select(Lesson.id, Lesson.version)
                                        .where(Lesson.id.in_(missing))).all())
        for row in rows:
            if row["version"] is None:
                row["version"] = versions.get(row["lesson_id"], 0)
    last = _take_numbers(session, len(rows))
    now = utcnow()
    first = last - len(rows) + 1
    for number, row in enumerate(rows, start=first):
        row.update(id=number, created_at=now)
    for start in range(0, len(rows), INSERT_BATCH):
        session.execute(insert(ChangeLog), rows[start:start + INSERT_BATCH])
    session.info[_WRITTEN] = last


@event.listens_for(Session, "after_rollback")
def _forget_queued(session: Session) -> None:
    session.info.pop(_QUEUE, None)


def _take_numbers(session: Session, count: int) -> int:
    """The last of ``count`` new numbers, the head row locked until the commit."""
    bump = (update(ChangeLogHead).where(ChangeLogHead.id == HEAD_ID)
            .values(last_id=ChangeLogHead.last_id + count)
            .returning(ChangeLogHead.last_id))
    last = session.execute(bump).scalar()
    if last is None:
        _create_head(session)
        last = session.execute(bump).scalar_one()
    return last


def _create_head(session: Session) -> None:
    """The head row, if no other transaction created it first (a database whose schema
    was made without the migrations, as the tests make it)."""
    values = {"id": HEAD_ID, "last_id": 0, "pruned_through": 0, "epoch": FIRST_EPOCH}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    session.execute(dialect_insert(ChangeLogHead).values(**values).on_conflict_do_nothing())


# The epoch of a log whose head row does not exist yet: readers report it without
# writing, and the first writer creates the row with it.
FIRST_EPOCH = "0"


def new_epoch() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Head:
    last_id: int
    pruned_through: int
    epoch: str


def head() -> Head:
    """Where the log stands. Reads only (searches call it): a log whose head row does
    not exist yet has logged nothing."""
    row = db.session.execute(select(ChangeLogHead.last_id, ChangeLogHead.pruned_through,
                                    ChangeLogHead.epoch)
                             .where(ChangeLogHead.id == HEAD_ID)).first()
    if row is None:
        return Head(0, 0, FIRST_EPOCH)
    return Head(*row)


def after(position: int, limit: int) -> list[Any]:
    """Log rows after ``position``, oldest first, at most ``limit``."""
    return list(db.session.execute(
        select(ChangeLog.id, ChangeLog.lesson_id, ChangeLog.version)
        .where(ChangeLog.id > position).order_by(ChangeLog.id).limit(limit)).all())


def oldest_after(position: int) -> datetime | None:
    """When the oldest change an index at ``position`` has not applied was logged."""
    return db.session.scalar(select(ChangeLog.created_at).where(ChangeLog.id > position)
                             .order_by(ChangeLog.id).limit(1))


def renew_epoch() -> str:
    """A new epoch (after a restore): every index built from the old history rebuilds,
    and the registrations of the old history are dropped. Committed here."""
    _create_head(db.session)
    epoch = new_epoch()
    db.session.execute(update(ChangeLogHead).where(ChangeLogHead.id == HEAD_ID)
                       .values(epoch=epoch))
    db.session.execute(delete(SearchIndex))
    db.session.commit()
    return epoch


def register(index_id: str, folder: str, generation: str | None, epoch: str,
             position: int, applied: bool) -> None:
    """Record where index ``index_id`` stands (and that it was seen now). Committed here,
    in its own short transaction after the index commit."""
    now = utcnow()
    values = {"host": socket.gethostname()[:255], "folder": folder[:1000],
              "generation": generation, "epoch": epoch, "position": position,
              "seen_at": now}
    if applied:
        values["applied_at"] = now
    changed = db.session.execute(update(SearchIndex).where(SearchIndex.id == index_id)
                                 .values(**values)).rowcount
    if not changed:
        db.session.add(SearchIndex(id=index_id, **values))
    try:
        db.session.commit()
    except Exception:  # noqa: BLE001 - two first registrations at once: the other won
        db.session.rollback()
        db.session.execute(update(SearchIndex).where(SearchIndex.id == index_id)
                           .values(**values))
        db.session.commit()


def registered() -> list[SearchIndex]:
    return list(db.session.scalars(select(SearchIndex).order_by(SearchIndex.host,
                                                                SearchIndex.folder)))


@dataclass(frozen=True)
class Pruned:
    deleted: int
    pruned_through: int
    forgotten: list[str]


def prune(forget_after: timedelta) -> Pruned:
    """Delete the rows every registered index of this epoch has applied. An index not
    seen for ``forget_after`` is forgotten first (it rebuilds if it comes back), so a
    host taken away for good does not keep the log growing. Committed here."""
    where = head()
    cutoff = utcnow() - forget_after
    stale = list(db.session.scalars(select(SearchIndex.id).where(
        (SearchIndex.seen_at < cutoff) | (SearchIndex.epoch != where.epoch))))
    if stale:
        db.session.execute(delete(SearchIndex).where(SearchIndex.id.in_(stale)))
    lowest = db.session.scalar(select(func.min(SearchIndex.position)))
    through = min(lowest, where.last_id) if lowest is not None else where.pruned_through
    deleted = 0
    if through > where.pruned_through:
        deleted = db.session.execute(delete(ChangeLog).where(ChangeLog.id <= through)).rowcount
        db.session.execute(update(ChangeLogHead).where(
            ChangeLogHead.id == HEAD_ID, ChangeLogHead.pruned_through < through)
            .values(pruned_through=through))
    db.session.commit()
    return Pruned(deleted, max(through, where.pruned_through), stale)


def forget(index_id: str) -> bool:
    """Drop one registration (a host retired for good). Committed here."""
    gone = db.session.execute(delete(SearchIndex).where(SearchIndex.id == index_id)).rowcount
    db.session.commit()
    return bool(gone)
