"""Writing audit records: called by services inside their transaction, never committed here."""

from __future__ import annotations

from lessons.extensions import db
from lessons.models import AuditRecord, Exercise, Lesson, User


def record(action: str, *, actor: User | None, lesson: Lesson | None = None,
           exercise: Exercise | None = None,
           from_status: str | None = None, to_status: str | None = None,
           comment: str = "", changes: list[str] | None = None) -> AuditRecord:
    """Add an audit row to the session; the caller's commit makes it durable with the change.

    An entry about a lesson's part in an exercise names both, so either's trail shows it.
    """
    entry = AuditRecord(
        action=action, actor=actor, lesson_id=lesson.id if lesson else None,
        exercise_id=exercise.id if exercise else None,
        from_status=from_status, to_status=to_status, comment=comment,
        changes=changes,
        version=lesson.version if lesson else (exercise.version if exercise else None),
    )
    db.session.add(entry)
    return entry
