"""Lesson use cases: capture, edit, review transitions, remedial actions, listing.

Every public function loads through the policy (``NotFound`` for what the user may not
see), checks the one rule set, writes the audit record and commits once. Nothing is
stored when any check fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from typing import Any

from flask import current_app
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import ColumnElement, Select, and_, case, delete, func, or_, select, text
from sqlalchemy.exc import IntegrityError

from lessons import policy, search
from lessons.errors import NotAllowed, NotFound, PreconditionFailed, ValidationFailed
from lessons.extensions import db
from lessons.federation import returns
from lessons.models import (
    AuditRecord,
    Exercise,
    Lesson,
    LessonLink,
    ReleaseRequest,
    RemedialAction,
    Tag,
    User,
)
from lessons.models.base import new_public_id, utcnow
from lessons.rules import (
    ACTIONS_MAX,
    KINDS,
    LINKABLE_STATUSES,
    LINKS_MAX,
    LINKS_ON_CREATE_MAX,
    NATIONS_MAX,
    STATUSES,
    check_action,
    check_lesson,
    check_note,
    normalise_codes,
    normalise_tags,
)
from lessons.services import audit
from lessons.services.nations import expand, known_codes, nation_codes
from lessons.sorting import Sort, SortColumn, SortColumns
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
            if key in ("kind", "classification") and not clean[key]:
                del clean[key]  # "not given": the default or the current value stands
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


def commit_lesson(lesson: Lesson) -> None:
    """Commit the use case with its change-log row, then bring the index up to date."""
    db.session.flush()
    search.queue_lesson(lesson)
    db.session.commit()
    search.after_commit()


def locked(query: Select, of: type) -> Select:
    """``query`` locking its rows until commit (PostgreSQL; SQLite has no row locks) and
    overwriting whatever this session loaded of them before: a writer that waited for
    the lock must check the other writer's result, not its own earlier read. The
    version-checked UPDATE (``version_id_col``) is what holds on both databases; the lock
    makes the loser wait and fail with a clear reason instead."""
    return query.with_for_update(of=of).execution_options(populate_existing=True)


def _load(user: User, public_id: str, *, for_update: bool = False) -> Lesson:
    """The visibility rule is part of the one query, so a hidden lesson and one that does
    not exist cost the same (one statement, no row) and their 404s cannot be told apart
    by timing; ``require_view`` re-checks what was found."""
    query = select(Lesson).where(Lesson.public_id == str(public_id),
                                 policy.visible_lessons(user))
    if for_update:
        query = locked(query, Lesson)
    return policy.require_view(user, db.session.scalar(query))


def get_lesson(user: User, public_id: str) -> Lesson:
    """The lesson if ``user`` may see it; raises ``NotFound`` otherwise."""
    return _load(user, public_id)


def create_lesson(user: User, data: Mapping[str, Any], *, submit: bool = False,
                  link_to: Iterable[str] = (), exercise_id: str | None = None,
                  derived_from: str | None = None, commit: bool = True) -> Lesson:
    """Create a draft owned by ``user`` (and submit it when ``submit``); commits once,
    or, with ``commit=False``, leaves the commit (and ``search.after_commit``) to a
    caller creating several lessons in one transaction (drafts from a report).

    REL TO defaults to the originator alone; widening it is the author's explicit choice.
    ``link_to`` holds public ids of existing lessons (the "similar lessons" the author
    ticked) to link the new one to, in the same transaction. ``exercise_id`` names the
    exercise the observation comes from (its source event; the user's nation must take
    part). ``derived_from`` names the lesson this one follows up (an outcome "not
    effective"): the new lesson is linked to it and its REL TO may not go beyond the
    source's. Raises ``NotAllowed`` for non-contributors, ``NotFound`` for an exercise
    or source lesson the user may not see, ``ValidationFailed`` for bad input or a
    ``link_to`` lesson the user may not see; when submitting, the submit rules apply
    before anything is stored.
    """
    if not policy.can_create_lesson(user):
        raise NotAllowed("Only contributors can write lessons.")
    exercise = _source_exercise(user, exercise_id)
    source = _load_other(user, derived_from) if derived_from else None
    values = normalise_values(data)
    values.setdefault("classification", current_app.config["CLASSIFICATIONS"][0])
    values.setdefault("kind", "lesson")
    values.setdefault("unit", user.unit)
    if exercise is not None and not values.get("source_event"):
        values["source_event"] = exercise.name[:200]
    _check(values, submitting=submit)
    if source is not None:
        _check_derived_release(user, source, values.get("releasable_to") or [])
    targets = _link_targets(user, link_to, source)
    public_id = new_public_id()
    lesson = Lesson(author=user, originator_nation=user.nation_code, status="draft",
                    version=1, title=values["title"], public_id=public_id,
                    external_id=f"MUS-{public_id}",
                    source_exercise_id=exercise.id if exercise is not None else None,
                    derived_from_id=source.id if source is not None else None)
    db.session.add(lesson)
    values.setdefault("releasable_to", [])
    with db.session.no_autoflush:
        apply_values(lesson, values)
    db.session.flush()
    audit.record("created", actor=user, lesson=lesson, to_status="draft")
    if exercise is not None:
        audit.record("observation_written", actor=user, exercise=exercise, lesson=lesson)
    for other in targets:
        _add_link(user, lesson, other)
    if submit:
        _move(user, lesson, "submitted", "")
    if commit:
        commit_lesson(lesson)
    else:
        search.queue_lesson(lesson)
    return lesson


def _source_exercise(user: User, exercise_id: str | None) -> Exercise | None:
    if not exercise_id:
        return None
    exercise = db.session.scalar(select(Exercise).where(Exercise.public_id == str(exercise_id)))
    policy.require_view_exercise(user, exercise)
    return exercise


def _check_derived_release(user: User, source: Lesson, wanted: list[str]) -> None:
    """A follow-up starts with at most its source's REL TO (docs/ARCHITECTURE.md, section 3)."""
    expanded = set(expand(wanted)) | {user.nation_code}
    beyond = sorted(expanded - set(source.releasable_to))
    if beyond:
        raise ValidationFailed({"releasable_to": (
            f"At most the REL TO of the lesson this follows up "
            f"({', '.join(sorted(source.releasable_to))}); remove {', '.join(beyond)}.")})


def check_version(current: int, expected: int | None, what: str = "lesson") -> None:
    """Refuse a change based on an older version (no lost updates): ``expected`` is the
    version the client loaded (``None``: not checked)."""
    if expected is not None and expected != current:
        raise PreconditionFailed(f"The {what} is at version {current}; your change was based "
                                 f"on version {expected}. Reload it and apply your change "
                                 "again.")


def update_lesson(user: User, public_id: str, data: Mapping[str, Any], *,
                  expected_version: int | None = None) -> Lesson:
    """Apply an edit by the author (draft) or an originator analyst; bumps ``version``.

    An edit that changes nothing stores nothing. Raises ``NotFound``, ``NotAllowed``,
    ``PreconditionFailed`` (``expected_version`` is not the current one) or
    ``ValidationFailed``; the submit rules apply to lessons already past draft.
    """
    lesson = _load(user, public_id, for_update=True)
    policy.require_edit(user, lesson)
    check_version(lesson.version, expected_version)
    values = {**lesson_values(lesson), **normalise_values(data)}
    _check(values, submitting=lesson.status != "draft")
    changed = apply_values(lesson, values)
    if changed:
        lesson.version += 1
        audit.record("edited", actor=user, lesson=lesson, changes=changed)
        commit_lesson(lesson)
    return lesson


def _move(user: User, lesson: Lesson, to: str, note: str,
          changes: list[str] | None = None) -> None:
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
    comment = note.strip()
    if transition.separated:
        flag = policy.self_review_flag(user, lesson)
        comment = f"({flag}) {comment}".strip() if flag else comment
    audit.record(transition.audit_action, actor=user, lesson=lesson, from_status=previous,
                 to_status=to, comment=comment, changes=changes or None)
    if to == "archived":
        _decline_release_requests(user, lesson, note.strip())


def _decline_release_requests(user: User, lesson: Lesson, reason: str) -> None:
    """An archived lesson's release no longer changes, so requests still waiting on it
    are declined with the archive's reason: they leave the analysts' list, and the
    planners who asked see why (audited on their exercise, as a decision would be);
    so are those from partner instances, whose planners are told by the next bundle."""
    waiting = db.session.scalars(select(ReleaseRequest).where(
        ReleaseRequest.lesson_id == lesson.id, ReleaseRequest.status == "pending"))
    for request in waiting:
        request.status = "declined"
        request.version += 1
        request.decided_by_id = user.id
        request.decided_at = utcnow()
        request.decision_note = f"The lesson was archived: {reason}"
        if request.exercise is not None:
            audit.record("release_declined", actor=user, exercise=request.exercise,
                         lesson=lesson, comment=", ".join(request.nations))
    returns.decline_waiting(user, lesson, reason)


# The move that may widen REL TO in the same step: the analyst who validates a lesson
# often finds that more partners should see it.
WIDENING_MOVE = "validated"


def transition_lesson(user: User, public_id: str, to: str, note: str = "", *,
                      expected_version: int | None = None,
                      releasable_to: list[str] | None = None) -> Lesson:
    """Move a lesson along the status table; commits the move and its audit record.

    ``releasable_to`` (validation only; ``None``: unchanged) is the REL TO the lesson is
    to have once validated; it may only widen the current one (narrowing stays an edit,
    with its own audit). The move and the wider REL TO are one version and one audit
    record (the note as its comment, ``releasable_to`` among its changes).

    Raises ``NotFound`` (not visible), ``InvalidTransition`` (no such move from here),
    ``NotAllowed`` (someone else's move, or a review of one's own lesson) or
    ``ValidationFailed`` (a needed comment, reason, evidence, open action or submit
    field is missing; a REL TO that narrows, names unknown codes or comes with another
    move).
    """
    lesson = _load(user, public_id, for_update=True)
    policy.require_view(user, lesson)
    check_version(lesson.version, expected_version)
    changes: list[str] = []
    try:
        if releasable_to is not None:
            policy.check_transition(user, lesson, to)  # who may move it comes first
            wider = _widened_release(lesson, to, releasable_to)
            if wider != sorted(lesson.releasable_to):
                lesson.releasable_to = wider
                changes.append("releasable_to")
        _move(user, lesson, to, note, changes)
    except ValidationFailed:
        db.session.rollback()  # a wider REL TO set before a refused note is not kept
        raise
    commit_lesson(lesson)
    return lesson


def _widened_release(lesson: Lesson, to: str, wanted: list[str]) -> list[str]:
    """The REL TO ``wanted`` names (groups expanded, the originator kept), if it keeps
    every nation the lesson is releasable to now; ``ValidationFailed`` otherwise."""
    if to != WIDENING_MOVE:
        raise ValidationFailed({"releasable_to": "REL TO can change with validation only; "
                                                 "edit the lesson to change it."})
    codes = normalise_codes(wanted)
    if len(codes) > NATIONS_MAX:
        raise ValidationFailed({"releasable_to": f"At most {NATIONS_MAX} nations or groups."})
    unknown = sorted(set(codes) - known_codes())
    if unknown:
        raise ValidationFailed({"releasable_to": f"Unknown nation or group: "
                                                 f"{', '.join(unknown)}."})
    wider = sorted(set(expand(codes)) | {lesson.originator_nation})
    dropped = sorted(set(lesson.releasable_to) - set(wider))
    if dropped:
        raise ValidationFailed({"releasable_to": (
            f"Validating can only widen REL TO; it would remove {', '.join(dropped)}. "
            "To narrow REL TO, edit the lesson.")})
    return wider


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
    commit_lesson(lesson)
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
        commit_lesson(lesson)
    return lesson


def history(user: User, lesson: Lesson) -> list[AuditRecord]:
    """The lesson's audit trail, oldest first (the caller has already passed the policy).

    A link entry names the other lesson (its public id in ``comment``); it is left out
    when ``user`` may not see that lesson, so the trail reveals no hidden lesson. An
    entry about an exercise shows only to users whose nation takes part in it.
    """
    policy.require_view(user, lesson)
    entries = list(db.session.scalars(
        select(AuditRecord).where(AuditRecord.lesson_id == lesson.id)
        .order_by(AuditRecord.created_at, AuditRecord.id)))
    named = {e.comment for e in entries if e.action in LINK_ACTIONS}
    seen = {other.public_id for other in _visible_by_public_id(user, named)}
    exercise_ids = {e.exercise_id for e in entries if e.exercise_id is not None}
    shown = set(db.session.scalars(select(Exercise.id).where(
        Exercise.id.in_(sorted(exercise_ids)), policy.visible_exercises(user)))) \
        if exercise_ids else set()
    return [e for e in entries
            if (e.action not in LINK_ACTIONS or e.comment in seen)
            and (e.exercise_id is None or e.exercise_id in shown)]


# --- links between lessons ---------------------------------------------------------------
# Audit actions of links; their comment is the other lesson's public id.
LINK_ACTIONS = frozenset({"linked", "unlinked"})


def _visible_by_public_id(user: User, public_ids: Iterable[str]) -> list[Lesson]:
    wanted = sorted({str(p) for p in public_ids if p})
    if not wanted:
        return []
    found = db.session.scalars(select(Lesson).where(
        Lesson.public_id.in_(wanted), policy.visible_lessons(user)))
    return [lesson for lesson in found if policy.can_view(user, lesson)]


def linkable_lessons(user: User, public_ids: Iterable[str]) -> list[Lesson]:
    """The lessons among ``public_ids`` that ``user`` may see, in the order given (what
    the new-lesson form shows as already ticked). Reads only."""
    order = list(dict.fromkeys(str(p) for p in public_ids if p))
    found = {lesson.public_id: lesson for lesson in _visible_by_public_id(user, order)}
    return [found[p] for p in order if p in found]


# Its author may still read it, but nobody stands behind it any more.
_WITHDRAWN_NOT_LINKABLE = "A withdrawn lesson cannot be linked to."
_LINK_TARGET_UNAVAILABLE = ("A lesson you chose to link to is not available to you; "
                            "check the similar lessons again.")


def _link_targets(user: User, public_ids: Iterable[str],
                  source: Lesson | None = None) -> list[Lesson]:
    """Check the lessons a new lesson is to be linked to (those ticked, and the lesson it
    follows up): at most LINKS_ON_CREATE_MAX ticked, each visible to ``user`` (one
    message whether a lesson is hidden or absent), and none to which ``user``'s nation
    has made LINKS_MAX links already; they are held, as ``link_lessons`` holds its two,
    so creations sent at once cannot pass that cap together."""
    wanted = list(dict.fromkeys(str(p).strip() for p in public_ids if str(p).strip()))
    if len(wanted) > LINKS_ON_CREATE_MAX:
        raise ValidationFailed({"link_to": f"Link at most {LINKS_ON_CREATE_MAX} lessons."})
    targets = linkable_lessons(user, wanted)
    if len(targets) != len(wanted):
        raise ValidationFailed({"link_to": _LINK_TARGET_UNAVAILABLE})
    if any(target.status not in LINKABLE_STATUSES for target in targets):
        raise ValidationFailed({"link_to": _WITHDRAWN_NOT_LINKABLE})
    if source is not None and source not in targets:
        targets.append(source)
    if targets:
        hold_lessons(*targets)
        if not all(policy.can_view(user, target) for target in targets):
            db.session.rollback()  # its REL TO changed meanwhile
            raise ValidationFailed({"link_to": _LINK_TARGET_UNAVAILABLE})
        if any(_nation_link_count(user, target) >= LINKS_MAX for target in targets):
            db.session.rollback()
            raise ValidationFailed({"link_to": f"Your nation has made {LINKS_MAX} links to "
                                               "or from a lesson this one would be linked "
                                               "to, the most it may."})
    return targets


def _link_between(lesson: Lesson, other: Lesson) -> LessonLink | None:
    """The link joining the two lessons, stored in either direction."""
    return db.session.scalar(select(LessonLink).where(or_(
        and_(LessonLink.lesson_id == lesson.id, LessonLink.linked_lesson_id == other.id),
        and_(LessonLink.lesson_id == other.id, LessonLink.linked_lesson_id == lesson.id))))


def _link_count(user: User, lesson: Lesson) -> int:
    """The links of ``lesson`` whose other end ``user`` may see: what the page shows
    them. Links they cannot see do not count, or another nation could fill a lesson
    with links to its own private drafts and block its editors."""
    ids = select(LessonLink.linked_lesson_id).where(LessonLink.lesson_id == lesson.id).union(
        select(LessonLink.lesson_id).where(LessonLink.linked_lesson_id == lesson.id))
    return db.session.scalar(select(func.count()).select_from(Lesson).where(
        Lesson.id.in_(ids), policy.visible_lessons(user))) or 0


def _nation_link_count(user: User, lesson: Lesson) -> int:
    """The links of ``lesson``, in either direction, made by users of ``user``'s nation:
    what bounds storage now that the first count ignores hidden links (at most
    LINKS_MAX per nation and lesson), and one nation's links never use up another's."""
    return db.session.scalar(
        select(func.count()).select_from(LessonLink)
        .join(User, User.id == LessonLink.created_by_id)
        .where(or_(LessonLink.lesson_id == lesson.id, LessonLink.linked_lesson_id == lesson.id),
               User.nation_code == user.nation_code)) or 0


def hold_lessons(*lessons: Lesson) -> None:
    """Hold ``lessons`` until commit and read them afresh, before anything counted per
    lesson is counted (links, files): every link counts against both its ends
    (``_link_count``, ``_nation_link_count``), so two links to one lesson sent at once
    must be counted one after the other, or both find it one short of the cap and both
    are stored.

    PostgreSQL: both rows are locked in id order, so links sent from either end of one
    pair queue rather than deadlock. SQLite has no row locks, and its driver begins a
    transaction only at the first write, so counts read before it may be stale by the
    time the link is inserted; a write that changes nothing takes the database's one
    write lock first, and the counts that follow see every committed link and hold
    until this transaction ends."""
    ids = sorted({lesson.id for lesson in lessons})
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("UPDATE lessons SET id = id WHERE id = :id"), {"id": ids[0]})
    db.session.scalars(locked(select(Lesson).where(Lesson.id.in_(ids)).order_by(Lesson.id),
                              Lesson)).all()


def _check_link_cap(user: User, lesson: Lesson, other: Lesson) -> None:
    """LINKS_MAX, read two ways: the editor sees at most that many links on the lesson
    they link from, and no nation makes more than that many to or from any one lesson
    (so a lesson's stored links are bounded by LINKS_MAX per nation)."""
    if _link_count(user, lesson) >= LINKS_MAX:
        raise ValidationFailed({"other": f"A lesson can have at most {LINKS_MAX} links."})
    if any(_nation_link_count(user, side) >= LINKS_MAX for side in (lesson, other)):
        raise ValidationFailed({"other": f"Your nation has made {LINKS_MAX} links to or "
                                         "from one of these lessons, the most it may."})


def _add_link(user: User, lesson: Lesson, other: Lesson) -> None:
    if other.id == lesson.id:
        raise ValidationFailed({"other": "A lesson cannot be linked to itself."})
    if other.status not in LINKABLE_STATUSES:
        raise ValidationFailed({"other": _WITHDRAWN_NOT_LINKABLE})
    db.session.add(LessonLink(lesson_id=lesson.id, linked_lesson_id=other.id,
                              created_by_id=user.id))
    # Audited on the linking side only: an entry on the other lesson would tell its
    # readers that some lesson, perhaps one hidden from them, points at it.
    audit.record("linked", actor=user, lesson=lesson, comment=other.public_id)


def _load_other(user: User, reference: str) -> Lesson:
    """A lesson named by its public id or its exchange id (``MUS-...`` as its page
    shows), if ``user`` may see it; ``NotFound`` otherwise."""
    reference = (reference or "").strip()
    found = db.session.scalar(select(Lesson).where(
        or_(Lesson.public_id == reference, Lesson.external_id == reference),
        policy.visible_lessons(user)))
    return policy.require_view(user, found)


def linked_lessons(user: User, lesson: Lesson) -> list[Lesson]:
    """Lessons linked to ``lesson`` in either direction that ``user`` may see, by title.
    Links to lessons hidden from ``user`` are left out, uncounted. Reads only."""
    policy.require_view(user, lesson)
    ids = select(LessonLink.linked_lesson_id).where(LessonLink.lesson_id == lesson.id).union(
        select(LessonLink.lesson_id).where(LessonLink.linked_lesson_id == lesson.id))
    found = db.session.scalars(select(Lesson).where(
        Lesson.id.in_(ids), policy.visible_lessons(user)).order_by(Lesson.title, Lesson.id))
    return [other for other in found if policy.can_view(user, other)]


def link_lessons(user: User, public_id: str, other_reference: str) -> Lesson:
    """Link lesson ``public_id`` to another (named by public or exchange id); the link
    shows on both pages. Commits the link and an audit entry on the first lesson; an
    existing link (either direction) stores nothing. The index is untouched (it holds
    no links).

    ``user`` must be able to edit the first lesson and see both. Raises ``NotFound``
    (either is not visible), ``NotAllowed`` (may not edit the first) or
    ``ValidationFailed`` (the lesson itself, or LINKS_MAX reached).
    """
    lesson = _load(user, public_id)
    policy.require_edit(user, lesson)
    other = _load_other(user, other_reference)
    hold_lessons(lesson, other)
    policy.require_edit(user, lesson)  # as they are now, not as first read
    policy.require_view(user, other)
    try:
        if other.id != lesson.id and _link_between(lesson, other) is not None:
            db.session.rollback()  # nothing to store; let the next linker in now
            return lesson
        _check_link_cap(user, lesson, other)
        _add_link(user, lesson, other)
    except ValidationFailed:
        db.session.rollback()
        raise
    try:
        db.session.commit()
    except IntegrityError:
        # The same link, made at the same moment by someone else: it exists, as asked.
        db.session.rollback()
    return lesson


def unlink_lessons(user: User, public_id: str, other_public_id: str) -> Lesson:
    """Remove the link between lesson ``public_id`` and another, whichever side made
    it; commits the removal with an audit entry on the first lesson. Same rights as
    ``link_lessons``; ``NotFound`` also when the two are not linked."""
    lesson = _load(user, public_id, for_update=True)
    policy.require_edit(user, lesson)
    other = _load_other(user, other_public_id)
    # One statement that says whether it removed anything: of two removals sent at once,
    # the second finds nothing to remove and is refused, not audited twice.
    removed = db.session.execute(delete(LessonLink).where(or_(
        and_(LessonLink.lesson_id == lesson.id, LessonLink.linked_lesson_id == other.id),
        and_(LessonLink.lesson_id == other.id, LessonLink.linked_lesson_id == lesson.id))))
    if not removed.rowcount:
        db.session.rollback()
        raise NotFound("These lessons are not linked.")
    audit.record("unlinked", actor=user, lesson=lesson, comment=other.public_id)
    db.session.commit()
    return lesson


# The lessons list's sortable columns (``?sort=``), in the "Sort by" control's order.
LESSON_SORTS = SortColumns((
    SortColumn("updated", "Updated", "oldest first", "newest first", first_descending=True),
    SortColumn("observed", "Observed date", "oldest first", "newest first",
               first_descending=True),
    SortColumn("title", "Title", "A to Z", "Z to A"),
    SortColumn("status", "Status", "draft first", "archived first"),
    SortColumn("originator", "Originator", "A to Z", "Z to A"),
))
# Every tab's order when the URL names none; the review queue's "next" follows it too.
DEFAULT_SORT = "-updated"


@dataclass(frozen=True)
class LessonFilter:
    """What a lesson list shows. The home page builds its links from these and counts with
    the same filter, so a count and the list it opens cannot differ (``to_args`` and
    ``from_args`` round-trip). ``sort`` orders the list and never changes a count."""

    tab: str = "all"
    status: str = ""
    kind: str = ""
    returned: bool = False  # drafts an analyst sent back to their author
    validated_since: date | None = None  # validated on or after this day (UTC)
    overdue: bool = False  # the viewer's nation's lessons with an open action past due
    sort: str = ""  # a LESSON_SORTS value; "" is DEFAULT_SORT

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> LessonFilter:
        """Read list filters from a query string, ignoring values that are not allowed."""
        tab = args.get("tab", "all")
        status = args.get("status", "")
        kind = args.get("kind", "")
        try:
            since = parse_date(args.get("validated_since", ""))
        except ValueError:
            since = None
        return cls(tab=tab if tab in TABS else "all",
                   status=status if status in STATUSES else "",
                   kind=kind if kind in KINDS else "",
                   returned=args.get("returned") == "1",
                   validated_since=since,
                   overdue=args.get("overdue") == "1",
                   sort=LESSON_SORTS.parse(args.get("sort")))

    def to_args(self) -> dict[str, str]:
        """The query string that ``from_args`` reads back as this filter."""
        args = {"tab": self.tab, "status": self.status, "kind": self.kind,
                "returned": "1" if self.returned else "",
                "validated_since": self.validated_since.isoformat()
                if self.validated_since else "",
                "overdue": "1" if self.overdue else "", "sort": self.sort}
        return {key: value for key, value in args.items() if value}

    @property
    def order(self) -> Sort:
        """The column and direction the list is in (the default when the URL names none)."""
        return LESSON_SORTS.read(self.sort, DEFAULT_SORT)

    def sorted_by(self, key: str) -> LessonFilter:
        """This filter as ``key``'s column heading links to it: that column, or the
        reverse when the list is already sorted by it."""
        return replace(self, sort=LESSON_SORTS.toggled(self.order, key))


def _list_query(user: User, flt: LessonFilter) -> Select:
    query = select(Lesson).where(policy.visible_lessons(user))
    if flt.tab == "mine":
        query = query.where(Lesson.author_id == user.id)
    elif flt.tab == "review":
        # Only analysts have a review queue: submitted lessons of their own nation, but
        # not their own (separation of duties) unless their nation allows self-review.
        if not user.has_role("analyst"):
            query = query.where(Lesson.id.is_(None))
        query = query.where(Lesson.status == "submitted",
                            Lesson.originator_nation == user.nation_code)
        if user.nation_code not in policy.self_review_nations():
            query = query.where(Lesson.author_id != user.id)
    if flt.status:
        query = query.where(Lesson.status == flt.status)
    if flt.kind:
        query = query.where(Lesson.kind == flt.kind)
    if flt.returned:
        # The only way back to draft is an analyst's return, so a draft with a "returned"
        # entry in its trail is waiting for its author to act on the comment.
        query = query.where(Lesson.status == "draft", Lesson.id.in_(
            select(AuditRecord.lesson_id).where(AuditRecord.action == "returned")))
    if flt.validated_since is not None:
        query = query.where(Lesson.id.in_(select(AuditRecord.lesson_id).where(
            AuditRecord.action == "validated",
            AuditRecord.created_at >= datetime.combine(flt.validated_since, time()))))
    if flt.overdue:
        query = query.where(Lesson.originator_nation == user.nation_code,
                            Lesson.actions.any(overdue_action(utcnow().date())))
    return query


def overdue_action(today: date) -> ColumnElement[bool]:
    """A remedial action still open past its due day, on a lesson not archived (an
    archived lesson's actions can no longer be closed). The lessons list's overdue
    filter and the dashboard's overdue figure both count by it, so they agree."""
    return and_(RemedialAction.status == "open", RemedialAction.due_on < today,
                Lesson.status != "archived")


# Status sorts in workflow order, not by its spelling.
_STATUS_RANK = case({status: rank for rank, status in enumerate(STATUSES)},
                    value=Lesson.status, else_=len(STATUSES))
_SORT_COLUMNS = {
    "updated": Lesson.updated_at,
    "observed": Lesson.observed_on,
    "title": func.lower(Lesson.title),
    "status": _STATUS_RANK,
    "originator": Lesson.originator_nation,  # what the list shows: the nation's code
}


def list_order(order: Sort) -> tuple:
    """ORDER BY for ``order``: lessons without an observed date last either way, and the
    id as the tie-break (in the same direction, so the reverse order is the exact
    reverse), which keeps pages from overlapping or skipping a lesson."""
    column = _SORT_COLUMNS[order.key]
    direction = (lambda expr: expr.desc()) if order.descending else (lambda expr: expr.asc())
    nulls_last = (Lesson.observed_on.is_(None),) if order.key == "observed" else ()
    return (*nulls_last, direction(column), direction(Lesson.id))


# Every lesson list's default order: newest change first (the review queue's "next"
# follows it, whatever order the viewer picked for the page).
LIST_ORDER = list_order(LESSON_SORTS.read("", DEFAULT_SORT))


def list_lessons(user: User, flt: LessonFilter, page: int = 1,
                 per_page: int | None = None) -> Pagination:
    """One page of the lessons ``user`` may see, in the filter's order (newest change
    first by default)."""
    per_page = per_page or current_app.config["LESSONS_PER_PAGE"]
    query = _list_query(user, flt).order_by(*list_order(flt.order))
    return db.paginate(query, page=page, per_page=per_page, error_out=False, max_per_page=100)


@dataclass(frozen=True)
class QueuePlace:
    """Where a lesson stood in the review queue (``LIST_ORDER``), taken before a
    decision moves it out: the next lesson is the one listed after this place."""

    updated_at: datetime
    lesson_id: int

    @classmethod
    def of(cls, lesson: Lesson) -> QueuePlace:
        return cls(lesson.updated_at, lesson.id)


def next_to_review(user: User, after: QueuePlace | None = None) -> Lesson | None:
    """The lesson after ``after`` in ``user``'s To review list, in that list's order,
    else the list's first (the queue has been worked round to its top); ``None`` when
    the list is empty. Built on the list's own query, so it never offers a lesson the
    list would not show. Reads only."""
    queue = _list_query(user, LessonFilter(tab="review"))
    if after is not None:
        later = queue.where(or_(
            Lesson.updated_at < after.updated_at,
            and_(Lesson.updated_at == after.updated_at, Lesson.id < after.lesson_id)),
            Lesson.id != after.lesson_id)
        found = db.session.scalars(later.order_by(*LIST_ORDER).limit(1)).first()
        if found is not None and policy.can_view(user, found):
            return found
        queue = queue.where(Lesson.id != after.lesson_id)
    found = db.session.scalars(queue.order_by(*LIST_ORDER).limit(1)).first()
    return found if found is not None and policy.can_view(user, found) else None


def count_lessons(user: User, flt: LessonFilter) -> int:
    return db.session.scalar(
        select(func.count()).select_from(_list_query(user, flt).subquery())) or 0


def parse_date(value: str) -> date | None:
    """A ``YYYY-MM-DD`` string as a date; ``ValueError`` for anything else."""
    return date.fromisoformat(value) if value else None
