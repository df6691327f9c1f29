"""Writing audit records: called by services inside their transaction, never committed here."""

from __future__ import annotations

from flask import has_request_context, request

from lessons.extensions import db
from lessons.models import AuditRecord, Exercise, Lesson, User

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
    return entry
