"""Lesson use cases: capture, edit, review transitions, remedial actions, listing.

Every public function loads through the policy (``NotFound`` for what the user may not
see), checks the one rule set, writes the audit record and commits once. Nothing is
stored when any check fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import current_app
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError

from lessons import policy, search
from lessons.errors import NotAllowed, NotFound, ValidationFailed
from lessons.extensions import db
from lessons.models import AuditRecord, Lesson, RemedialAction, Tag, User
from lessons.models.base import new_public_id
from lessons.rules import (
    ACTIONS_MAX,
    KINDS,
    STATUSES,
    check_action,
    check_lesson,
    check_note,
    normalise_codes,
    normalise_tags,
)
from lessons.services import audit
from lessons.services.nations import expand, known_codes, nation_codes
from lessons.workflow import NOTE_LABELS

# Contract keys a lesson form or API body may set. originator_nation is not among them:
# it is the submitter's nation (operators set it on import).
EDITABLE_SCALARS = (
    "title", "observation", "discussion", "conclusion", "recommendation",
    "kind", "friction", "workaround", "limits", "permanence",
    "source_event", "observed_on", "location", "unit", "classification",
)
EDITABLE_LISTS = ("domains", "functions", "tags", "nations", "releasable_to")

TABS = ("mine", "review", "all")


def normalise_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """Trim strings and normalise list values; keep only contract keys that were given."""
    clean: dict[str, Any] = {}
    for key in EDITABLE_SCALARS:
        if key in data:
            value = data[key]
            clean[key] = value.strip() if isinstance(value, str) else value
            if key == "observed_on" and clean[key] == "":
                clean[key] = None
    for key in ("domains", "functions"):
        if key in data:
            clean[key] = sorted({str(v).strip().lower() for v in data[key] or [] if str(v).strip()})
    if "tags" in data:
        clean["tags"] = normalise_tags(data["tags"] or [])
    for key in ("nations", "releasable_to"):
        if key in data:
            clean[key] = normalise_codes(data[key] or [])
    return clean


def _check(values: Mapping[str, Any], *, submitting: bool) -> None:
    errors = check_lesson(values, submitting=submitting, known_nations=known_codes(),
                          classifications=current_app.config["CLASSIFICATIONS"])
    if errors:
        raise ValidationFailed(errors)


def lesson_values(lesson: Lesson) -> dict[str, Any]:
    """The lesson's contract keys and values (what forms prefill and rules check)."""
    values: dict[str, Any] = {key: getattr(lesson, key) for key in EDITABLE_SCALARS}
    values.update(domains=list(lesson.domains), functions=list(lesson.functions),
                  tags=lesson.tags, nations=list(lesson.nations),
                  releasable_to=list(lesson.releasable_to),
                  originator_nation=lesson.originator_nation)
    return values


def _tag_objects(names: list[str]) -> list[Tag]:
    """Existing tags by name, creating missing ones (safe against a concurrent creator)."""
    found = {t.name: t for t in db.session.scalars(select(Tag).where(Tag.name.in_(names)))}
    for name in names:
        if name not in found:
            try:
                with db.session.begin_nested():
                    tag = Tag(name=name)
                    db.session.add(tag)
            except IntegrityError:
                tag = db.session.scalar(select(Tag).where(Tag.name == name))
            found[name] = tag
    return [found[name] for name in names]


def apply_values(lesson: Lesson, values: Mapping[str, Any]) -> list[str]:
    """Write checked ``values`` onto ``lesson``; return the names of fields that changed."""
    changed: list[str] = []
    for key in EDITABLE_SCALARS:
        if key in values:
            new = values[key] if values[key] is not None or key == "observed_on" else ""
            if getattr(lesson, key) != new:
                setattr(lesson, key, new)
                changed.append(key)
    for key in ("domains", "functions", "nations"):
        if key in values and sorted(getattr(lesson, key)) != sorted(values[key]):
            setattr(lesson, key, sorted(values[key]))
            changed.append(key)
    if "releasable_to" in values:
        # Groups expand now; the originator can always see its own lesson.
        wanted = sorted(set(expand(values["releasable_to"])) | {lesson.originator_nation})
        if sorted(lesson.releasable_to) != wanted:
            lesson.releasable_to = wanted
            changed.append("releasable_to")
    if "tags" in values and lesson.tags != sorted(values["tags"]):
        lesson.tag_objects = _tag_objects(values["tags"])
        changed.append("tags")
    return changed


def _commit(lesson: Lesson) -> None:
    """Commit the use case with its index-outbox row, then bring the index up to date."""
    db.session.flush()
    search.queue_lesson(lesson)
    db.session.commit()
    search.after_commit()


def _load(user: User, public_id: str, *, for_update: bool = False) -> Lesson:
    query = select(Lesson).where(Lesson.public_id == public_id)
    if for_update:
        query = query.with_for_update(of=Lesson)
    return policy.require_view(user, db.session.scalar(query))


def get_lesson(user: User, public_id: str) -> Lesson:
    """The lesson if ``user`` may see it; raises ``NotFound`` otherwise."""
    return _load(user, public_id)


def create_lesson(user: User, data: Mapping[str, Any], *, submit: bool = False) -> Lesson:
    """Create a draft owned by ``user`` (and submit it when ``submit``); commits once.

    REL TO defaults to the originator alone; widening it is the author's explicit choice.
    Raises ``NotAllowed`` for non-contributors, ``ValidationFailed`` for bad input; when
    submitting, the submit rules apply before anything is stored.
    """
    if not policy.can_create_lesson(user):
        raise NotAllowed("Only contributors can write lessons.")
    values = normalise_values(data)
    values.setdefault("classification", current_app.config["CLASSIFICATIONS"][0])
    values.setdefault("kind", "lesson")
    values.setdefault("unit", user.unit)
    _check(values, submitting=submit)
    public_id = new_public_id()
    lesson = Lesson(author=user, originator_nation=user.nation_code, status="draft",
                    version=1, title=values["title"], public_id=public_id,
                    external_id=f"MUS-{public_id}")
    db.session.add(lesson)
    values.setdefault("releasable_to", [])
    with db.session.no_autoflush:
        apply_values(lesson, values)
    db.session.flush()
    audit.record("created", actor=user, lesson=lesson, to_status="draft")
    if submit:
        _move(user, lesson, "submitted", "")
    _commit(lesson)
    return lesson


def update_lesson(user: User, public_id: str, data: Mapping[str, Any]) -> Lesson:
    """Apply an edit by the author (draft) or an originator analyst; bumps ``version``.

    An edit that changes nothing stores nothing. Raises ``NotFound``, ``NotAllowed`` or
    ``ValidationFailed``; the submit rules apply to lessons already past draft.
    """
    lesson = _load(user, public_id, for_update=True)
    policy.require_edit(user, lesson)
    values = {**lesson_values(lesson), **normalise_values(data)}
    _check(values, submitting=lesson.status != "draft")
    changed = apply_values(lesson, values)
    if changed:
        lesson.version += 1
        audit.record("edited", actor=user, lesson=lesson, changes=changed)
        _commit(lesson)
    return lesson


def _move(user: User, lesson: Lesson, to: str, note: str) -> None:
    transition = policy.check_transition(user, lesson, to)
    if transition.needs == "required_fields":
        _check(lesson_values(lesson), submitting=True)
    elif transition.needs == "open_action" and not lesson.open_actions:
        raise ValidationFailed({"actions": "Add at least one open remedial action first."})
    elif transition.needs in NOTE_LABELS:
        problem = check_note(note, label=NOTE_LABELS[transition.needs], required=True)
        if problem:
            raise ValidationFailed({"note": problem})
    else:
        problem = check_note(note, label="comment", required=False)
        if problem:
            raise ValidationFailed({"note": problem})
    previous = lesson.status
    lesson.status = to
    lesson.version += 1
    audit.record(transition.audit_action, actor=user, lesson=lesson, from_status=previous,
                 to_status=to, comment=note.strip())


def transition_lesson(user: User, public_id: str, to: str, note: str = "") -> Lesson:
    """Move a lesson along the status table; commits the move and its audit record.

    Raises ``NotFound`` (not visible), ``InvalidTransition`` (no such move from here),
    ``NotAllowed`` (someone else's move) or ``ValidationFailed`` (a needed comment,
    reason, evidence, open action or submit field is missing).
    """
    lesson = _load(user, public_id, for_update=True)
    _move(user, lesson, to, note)
    _commit(lesson)
    return lesson


def _action_values(data: Mapping[str, Any]) -> dict[str, Any]:
    values = {
        "description": str(data.get("description") or "").strip(),
        "owner_org": str(data.get("owner_org") or "").strip(),
        "owner_nation": str(data.get("owner_nation") or "").strip().upper() or None,
        "due_on": data.get("due_on") or None,
        "status": str(data.get("status") or "open").strip().lower(),
    }
    errors = check_action(values, known_nations=nation_codes())
    if errors:
        raise ValidationFailed(errors)
    return values


def add_action(user: User, public_id: str, data: Mapping[str, Any]) -> Lesson:
    """Add a remedial action (originator analysts, lesson validated or later)."""
    lesson = _load(user, public_id, for_update=True)
    policy.require_manage_actions(user, lesson)
    if len(lesson.actions) >= ACTIONS_MAX:
        raise ValidationFailed({"description": f"At most {ACTIONS_MAX} actions per lesson."})
    values = _action_values(data)
    position = max((a.position for a in lesson.actions), default=0) + 1
    lesson.actions.append(RemedialAction(position=position, **values))
    lesson.version += 1
    audit.record("action_added", actor=user, lesson=lesson,
                 comment=f"Action {position}: {values['description'][:200]}")
    _commit(lesson)
    return lesson


def set_action_status(user: User, public_id: str, position: int, status: str) -> Lesson:
    """Mark remedial action ``position`` open or done."""
    lesson = _load(user, public_id, for_update=True)
    policy.require_manage_actions(user, lesson)
    action = next((a for a in lesson.actions if a.position == position), None)
    if action is None:
        raise NotFound("No such action.")
    if status not in ("open", "done"):
        raise ValidationFailed({"status": "Must be open or done."})
    if action.status != status:
        action.status = status
        lesson.version += 1
        audit.record("action_updated", actor=user, lesson=lesson,
                     comment=f"Action {position} marked {status}.")
        _commit(lesson)
    return lesson


def history(user: User, lesson: Lesson) -> list[AuditRecord]:
    """The lesson's audit trail, oldest first (the caller has already passed the policy)."""
    policy.require_view(user, lesson)
    return list(db.session.scalars(
        select(AuditRecord).where(AuditRecord.lesson_id == lesson.id)
        .order_by(AuditRecord.created_at, AuditRecord.id)))


@dataclass(frozen=True)
class LessonFilter:
    tab: str = "all"
    status: str = ""
    kind: str = ""

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> LessonFilter:
        """Read list filters from a query string, ignoring values that are not allowed."""
        tab = args.get("tab", "all")
        status = args.get("status", "")
        kind = args.get("kind", "")
        return cls(tab=tab if tab in TABS else "all",
                   status=status if status in STATUSES else "",
                   kind=kind if kind in KINDS else "")


def _list_query(user: User, flt: LessonFilter) -> Select:
    query = select(Lesson).where(policy.visible_lessons(user))
    if flt.tab == "mine":
        query = query.where(Lesson.author_id == user.id)
    elif flt.tab == "review":
        # Only analysts have a review queue: submitted lessons of their own nation.
        if not user.has_role("analyst"):
            query = query.where(Lesson.id.is_(None))
        query = query.where(Lesson.status == "submitted",
                            Lesson.originator_nation == user.nation_code)
    if flt.status:
        query = query.where(Lesson.status == flt.status)
    if flt.kind:
        query = query.where(Lesson.kind == flt.kind)
    return query


def list_lessons(user: User, flt: LessonFilter, page: int = 1,
                 per_page: int | None = None) -> Pagination:
    """One page of the lessons ``user`` may see, newest change first."""
    per_page = per_page or current_app.config["LESSONS_PER_PAGE"]
    query = _list_query(user, flt).order_by(Lesson.updated_at.desc(), Lesson.id.desc())
    return db.paginate(query, page=page, per_page=per_page, error_out=False, max_per_page=100)


def count_lessons(user: User, flt: LessonFilter) -> int:
    from sqlalchemy import func

    return db.session.scalar(
        select(func.count()).select_from(_list_query(user, flt).subquery())) or 0


def parse_date(value: str) -> date | None:
    """A ``YYYY-MM-DD`` string as a date; ``ValueError`` for anything else."""
    return date.fromisoformat(value) if value else None
