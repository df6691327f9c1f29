"""Audit records: written by services inside their transaction (never committed here),
and read back as the admins' audit trail."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time

from flask import has_request_context, request
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select, and_, func, or_, select, text

from lessons import policy
from lessons.extensions import db
from lessons.models import AuditRecord, Exercise, Lesson, User
from lessons.services import notifications

SUBJECT_MAX = 64


def client_address() -> str | None:
    """The request's client address (the connection's, or what the configured proxies
    reported through ProxyFix), or ``None`` outside a request (the command line)."""
    if not has_request_context():
        return None
    return (request.remote_addr or "unknown")[:64]


def record(action: str, *, actor: User | None, lesson: Lesson | None = None,
           exercise: Exercise | None = None,
           from_status: str | None = None, to_status: str | None = None,
           comment: str = "", changes: list[str] | None = None,
           subject: str | None = None) -> AuditRecord:
    """Add an audit row to the session; the caller's commit makes it durable with the change.

    An entry about a lesson's part in an exercise names both, so either's trail shows it.
    ``subject`` is the account a security event is about (see ``AuditRecord.subject``);
    the client address is taken from the request, so no caller can forget or forge it.
    """
    entry = AuditRecord(
        action=action, actor=actor, lesson_id=lesson.id if lesson else None,
        exercise_id=exercise.id if exercise else None,
        from_status=from_status, to_status=to_status, comment=comment,
        changes=changes,
        version=lesson.version if lesson else (exercise.version if exercise else None),
        subject=subject.strip().lower()[:SUBJECT_MAX] if subject else None,
        address=client_address(),
    )
    db.session.add(entry)
    notifications.on_audit(entry, actor=actor, lesson=lesson, exercise=exercise)
    return entry


# --- reading the trail (the admins' audit page and its CSV) -----------------------------------
TRAIL_PER_PAGE = 50
# The CSV is read in slices of this many rows (keyset, newest first): memory stays flat
# however long the trail, and no cursor is held open while the client reads slowly.
CSV_CHUNK = 500
CSV_COLUMNS = ("time_utc", "actor", "actor_nation", "action", "subject", "address",
               "lesson", "lesson_title", "exercise", "exercise_name", "from_status",
               "to_status", "changes", "comment", "withheld")
WITHHELD = "withheld: about a lesson or exercise not releasable to you"


@dataclass(frozen=True)
class TrailFilter:
    """The audit page's filters, already checked by its form."""

    user: str = ""  # an actor's username or a subject
    action: str = ""
    nation: str = ""  # the actor's nation
    since: date | None = None  # inclusive, UTC days
    until: date | None = None

    def query_args(self) -> dict[str, str]:
        """The filters as the page's query string (pager and CSV links keep them)."""
        return {key: value for key, value in (
            ("user", self.user), ("action", self.action), ("nation", self.nation),
            ("from", self.since.isoformat() if self.since else ""),
            ("to", self.until.isoformat() if self.until else "")) if value}


@dataclass
class TrailEntry:
    """One audit record as an admin may read it. ``withheld`` entries keep who, when,
    what kind of event and from where, but not which lesson or exercise nor anything
    said about it (comment, changed fields, statuses, version)."""

    created_at: datetime
    actor: str
    actor_nation: str
    action: str
    subject: str
    address: str
    lesson_id: str = ""
    lesson_title: str = ""
    exercise_id: str = ""
    exercise_name: str = ""
    from_status: str = ""
    to_status: str = ""
    changes: list[str] = field(default_factory=list)
    comment: str = ""
    withheld: bool = False


def known_actions() -> list[str]:
    """Every action the trail holds, for the page's select: read from the records, so a
    new kind of event appears without a list to keep in step. A loose index scan (one
    index probe per distinct action), not a scan of the whole trail."""
    found = db.session.execute(text(
        "WITH RECURSIVE a(action) AS ("
        " SELECT MIN(action) FROM audit_records"
        " UNION ALL"
        " SELECT (SELECT MIN(action) FROM audit_records WHERE action > a.action) FROM a"
        " WHERE a.action IS NOT NULL)"
        " SELECT action FROM a WHERE action IS NOT NULL"))
    return [row[0] for row in found]


def _query(flt: TrailFilter) -> Select:
    query = select(AuditRecord)
    if flt.user:
        name = flt.user.strip().lower()
        query = query.where(or_(
            AuditRecord.actor_id.in_(select(User.id).where(User.username == name)),
            AuditRecord.subject == name))
    if flt.action:
        query = query.where(AuditRecord.action == flt.action)
    if flt.nation:
        query = query.where(AuditRecord.actor_id.in_(
            select(User.id).where(User.nation_code == flt.nation)))
    if flt.since:
        query = query.where(AuditRecord.created_at >= datetime.combine(flt.since, time.min))
    if flt.until:
        query = query.where(AuditRecord.created_at <= datetime.combine(flt.until, time.max))
    return query


def _newest_first(query: Select) -> Select:
    return query.order_by(AuditRecord.created_at.desc(), AuditRecord.id.desc())


def _entries(viewer: User, records: Sequence[AuditRecord]) -> list[TrailEntry]:
    """``records`` as ``viewer`` may read them: the lessons and exercises named are looked
    up once per slice, under the one policy, and entries about others are withheld."""
    lesson_ids = {r.lesson_id for r in records if r.lesson_id is not None}
    exercise_ids = {r.exercise_id for r in records if r.exercise_id is not None}
    lessons = {lesson.id: lesson for lesson in db.session.scalars(
        select(Lesson).where(Lesson.id.in_(lesson_ids), policy.visible_lessons(viewer)))
        if policy.can_view(viewer, lesson)} if lesson_ids else {}
    exercises = {exercise.id: exercise for exercise in db.session.scalars(
        select(Exercise).where(Exercise.id.in_(exercise_ids),
                               policy.visible_exercises(viewer)))
        if policy.can_view_exercise(viewer, exercise)} if exercise_ids else {}
    entries = []
    for record in records:
        entry = TrailEntry(
            created_at=record.created_at, action=record.action,
            actor=record.actor.username if record.actor else "",
            actor_nation=record.actor.nation_code if record.actor else "",
            subject=record.subject or "", address=record.address or "")
        lesson = lessons.get(record.lesson_id) if record.lesson_id is not None else None
        exercise = (exercises.get(record.exercise_id) if record.exercise_id is not None
                    else None)
        if (record.lesson_id is not None and lesson is None) or (
                record.exercise_id is not None and exercise is None):
            entry.withheld = True
        else:
            entry.lesson_id = lesson.public_id if lesson else ""
            entry.lesson_title = lesson.title if lesson else ""
            entry.exercise_id = exercise.public_id if exercise else ""
            entry.exercise_name = exercise.name if exercise else ""
            entry.from_status = record.from_status or ""
            entry.to_status = record.to_status or ""
            entry.changes = list(record.changes or [])
            entry.comment = record.comment or ""
        entries.append(entry)
    return entries


@dataclass
class TrailPage:
    entries: list[TrailEntry]
    pagination: Pagination


def trail(viewer: User, flt: TrailFilter, page: int = 1,
          per_page: int = TRAIL_PER_PAGE) -> TrailPage:
    """One page of the audit trail, newest first, for an administrator.

    Releasability: an entry about a lesson or exercise ``viewer`` may not see is shown
    *withheld* (who, when, which kind of event, from where; no lesson or exercise identity,
    comment, changed fields or statuses) rather than left out. The trail is for holding
    accounts to account: leaving such entries out would hide what an account did and
    make its counts disagree between admins of different nations, while the withheld
    fields are exactly those that could tell a lesson's content or existence apart.
    Read only: no service changes or deletes an audit record.
    """
    policy.require_admin(viewer)
    pagination = db.paginate(_newest_first(_query(flt)), page=page, per_page=per_page,
                             error_out=False, max_per_page=200)
    return TrailPage(entries=_entries(viewer, pagination.items), pagination=pagination)


def _csv_line(values: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue()


def _csv_row(entry: TrailEntry) -> list[str]:
    from lessons.services.spreadsheet import protect_cell

    cells = [entry.created_at.isoformat(timespec="seconds"), entry.actor, entry.actor_nation,
             entry.action, entry.subject, entry.address, entry.lesson_id, entry.lesson_title,
             entry.exercise_id, entry.exercise_name, entry.from_status, entry.to_status,
             ";".join(entry.changes), entry.comment, WITHHELD if entry.withheld else ""]
    return [protect_cell(cell) for cell in cells]


def trail_csv(viewer: User, flt: TrailFilter) -> Iterator[str]:
    """The filtered trail as CSV, newest first, withheld entries as on the page; cells a
    spreadsheet would run as formulas are neutralised as in the lessons' CSV. The
    download itself is audited (and committed) before the first row. Streamed in slices
    of ``CSV_CHUNK`` rows, each read after the previous one's last row (keyset), so
    neither the trail's length nor a slow client holds memory or a cursor."""
    from lessons.services.exchange import record_export

    policy.require_admin(viewer)
    query = _query(flt)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    described = ", ".join(f"{k}={v}" for k, v in flt.query_args().items())
    record_export(viewer, f"audit trail ({described or 'unfiltered'})", total, "csv",
                  unit="row")
    return _csv_stream(viewer, query)


def _csv_stream(viewer: User, query: Select) -> Iterator[str]:
    from lessons.services.spreadsheet import BOM

    yield BOM + _csv_line(CSV_COLUMNS)
    after: tuple[datetime, int] | None = None
    while True:
        sliced = query
        if after is not None:
            sliced = sliced.where(or_(
                AuditRecord.created_at < after[0],
                and_(AuditRecord.created_at == after[0], AuditRecord.id < after[1])))
        records = list(db.session.scalars(_newest_first(sliced).limit(CSV_CHUNK)))
        if not records:
            return
        for entry in _entries(viewer, records):
            yield _csv_line(_csv_row(entry))
        # The session's identity map holds records weakly: a written slice is let go.
        after = (records[-1].created_at, records[-1].id)
        if len(records) < CSV_CHUNK:
            return
