"""Lessons taken up by exercises: attach, track, record the outcome, confirm it.

A link moves ``proposed`` → ``accepted`` → ``incorporated`` → ``effective`` |
``not_effective``, one step at a time, each step stored with who and when. Only the
exercise's planners attach and move links, and only lessons they may see. An
``effective`` outcome moves the lesson to ``learned`` at once when the planner belongs
to the lesson's originator nation; otherwise it waits for one of that nation's
analysts, who confirm or decline it from their review list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lessons import policy
from lessons.errors import InvalidTransition, NotAllowed, NotFound, ValidationFailed
from lessons.extensions import db
from lessons.federation import returns
from lessons.models import (
    Exercise,
    ExerciseLesson,
    ExerciseLessonStep,
    Lesson,
    Milestone,
    Objective,
    Tag,
    User,
)
from lessons.models.lesson import lesson_tags
from lessons.rules import (
    ATTACH_BY_TAG_MAX,
    ATTACHABLE_STATUSES,
    LEARNABLE,
    LINK_STATUS_LABELS,
    LINK_STEPS,
    OUTCOMES,
    STANDARD_MILESTONES,
    check_attachment,
    check_note,
)
from lessons.services import audit
from lessons.services import exercises as exercise_service
from lessons.services import lessons as lesson_service
from lessons.services.lessons import check_version, locked

DETACHABLE = frozenset({"proposed", "accepted"})


def _load_exercise(user: User, public_id: str) -> Exercise:
    exercise = exercise_service.load_exercise(user, public_id, for_update=True)
    policy.require_edit_exercise(user, exercise)
    return exercise


def _find_objective(exercise: Exercise, reference: Any) -> Objective | None:
    """An objective by its id, its text, or its number ("3"); ``None`` for none given."""
    reference = str(reference or "").strip()
    if not reference:
        return None
    found = exercise.objective(reference) or next(
        (o for o in exercise.objectives if o.text == " ".join(reference.split())), None)
    if found is None and reference.isdigit():
        found = next((o for o in exercise.objectives if o.position == int(reference)), None)
    if found is None:
        raise ValidationFailed({"objective": "Not one of this exercise's objectives."})
    return found


def _find_milestone(exercise: Exercise, name: Any) -> Milestone | None:
    name = str(name or "").strip()
    if not name:
        return None
    found = exercise.milestone(name)
    if found is None:
        raise ValidationFailed({"milestone": "Not one of this exercise's milestones."})
    return found


def default_milestone(exercise: Exercise) -> str:
    """Where a newly attached lesson's packet goes unless the planner says otherwise: the
    next planning conference still ahead, else the first standard milestone."""
    today = exercise_service.today()
    ahead = [m for m in exercise.milestones if m.due_on and m.due_on >= today
             and m.name in STANDARD_MILESTONES[:4]]
    return min(ahead, key=lambda m: m.due_on).name if ahead else "initial_planning_conference"


def _link_values(exercise: Exercise, data: Mapping[str, Any],
                 current: ExerciseLesson | None = None) -> dict[str, Any]:
    values = {
        "purpose": str(data.get("purpose") or (current.purpose if current else "")).strip(),
        "note": str(data["note"] if "note" in data else (current.note if current else "")),
    }
    errors = check_attachment(values)
    try:
        values["objective"] = (_find_objective(exercise, data["objective"])
                               if "objective" in data else current.objective if current
                               else None)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        values["milestone"] = (_find_milestone(exercise, data["milestone"])
                               if "milestone" in data else current.milestone if current
                               else _find_milestone(exercise, default_milestone(exercise)))
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    values["note"] = values["note"].strip()
    return values


def _check_attachable(lesson: Lesson) -> None:
    if lesson.status not in ATTACHABLE_STATUSES:
        raise ValidationFailed({"lesson_id": (
            "Only submitted, validated, action-assigned or learned lessons can be attached "
            "to an exercise.")})


def _step(user: User, link: ExerciseLesson, to: str, note: str = "") -> None:
    link.steps.append(ExerciseLessonStep(from_status=link.status if link.id else None,
                                         to_status=to, actor_id=user.id, note=note))
    link.status = to


def _attach(user: User, exercise: Exercise, lesson: Lesson,
            values: Mapping[str, Any]) -> ExerciseLesson:
    link = ExerciseLesson(exercise_id=exercise.id, lesson_id=lesson.id,
                          purpose=values["purpose"], objective=values["objective"],
                          milestone=values["milestone"], note=values["note"],
                          status="proposed", created_by_id=user.id)
    link.steps.append(ExerciseLessonStep(from_status=None, to_status="proposed",
                                         actor_id=user.id, note=values["note"]))
    db.session.add(link)
    audit.record("lesson_attached", actor=user, exercise=exercise, lesson=lesson,
                 to_status="proposed", comment=values["purpose"])
    return link


def get_link(user: User, exercise_id: str, lesson_id: str) -> ExerciseLesson:
    """One attached lesson, if ``user`` may see both the exercise and the lesson."""
    exercise = exercise_service.get_exercise(user, exercise_id)
    return attached_link(user, exercise, lesson_id)


def attached_link(user: User, exercise: Exercise, lesson_id: str) -> ExerciseLesson:
    # Fresh values even if this session loaded the link before: a writer that waited for
    # the exercise's lock must see the step the other writer made.
    link = db.session.scalar(
        select(ExerciseLesson).join(Lesson, ExerciseLesson.lesson_id == Lesson.id)
        .where(ExerciseLesson.exercise_id == exercise.id, Lesson.public_id == str(lesson_id))
        .execution_options(populate_existing=True))
    if link is None or not policy.can_view(user, link.lesson):
        raise NotFound("That lesson is not attached to this exercise.")
    return link


def attach_lesson(user: User, exercise_id: str, lesson_id: str,
                  data: Mapping[str, Any]) -> ExerciseLesson:
    """Attach a lesson ``user`` may see to an exercise they plan, as ``proposed``, with a
    purpose, an objective (id, text or number), a milestone (default: the next
    planning conference) and a note. Commits the link, its first step and an audit
    entry. Raises ``NotFound`` (exercise or lesson not visible), ``NotAllowed`` (not
    one of its planners) or ``ValidationFailed`` (bad values, a draft or closed
    lesson, or already attached)."""
    exercise = _load_exercise(user, exercise_id)
    lesson = lesson_service.get_lesson(user, lesson_id)
    _check_attachable(lesson)
    values = _link_values(exercise, data)
    if db.session.scalar(select(ExerciseLesson.id).where(
            ExerciseLesson.exercise_id == exercise.id,
            ExerciseLesson.lesson_id == lesson.id)) is not None:
        raise ValidationFailed({"lesson_id": "This lesson is already attached to the exercise."})
    link = _attach(user, exercise, lesson, values)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationFailed({"lesson_id": "This lesson is already attached to the "
                                             "exercise."}) from None
    return link


def update_link(user: User, exercise_id: str, lesson_id: str, data: Mapping[str, Any], *,
                to: str | None = None, evidence: str = "",
                expected_version: int | None = None) -> ExerciseLesson:
    """Change how the exercise uses a lesson (``data``: purpose, objective, milestone,
    note) and/or move it one step (``to``: ``accepted``, ``incorporated``, or the outcome
    ``effective`` / ``not_effective`` with ``evidence``, required). Everything is checked
    before anything changes, and it all commits once, with audit entries.

    An effective outcome moves the lesson to ``learned`` in the same transaction when
    ``user`` belongs to the originator nation and the lesson is validated or
    action-assigned; otherwise it is marked pending for an originator analyst. Raises
    ``PreconditionFailed`` (``expected_version`` is not the link's), ``InvalidTransition``
    for anything but the next step or for an outcome before the exercise starts,
    ``NotAllowed`` for non-planners, ``ValidationFailed`` for bad values or missing
    evidence. A ``to`` equal to the current status is no move.
    """
    exercise = _load_exercise(user, exercise_id)
    link = attached_link(user, exercise, lesson_id)
    check_version(link.version, expected_version, "attached lesson")
    values = _link_values(exercise, data, current=link) if data else None
    moving = to is not None and to != link.status
    if moving:
        check_step(link, to)
        if to in OUTCOMES:
            exercise_service.check_outcomes_open(exercise)
        problem = check_note(evidence, label="evidence" if to in OUTCOMES else "note",
                             required=to in OUTCOMES)
        if problem:
            raise ValidationFailed({"evidence" if to in OUTCOMES else "note": problem})
    changed = [key for key in ("purpose", "objective", "milestone", "note")
               if values is not None and getattr(link, key) != values[key]]
    for key in changed:
        setattr(link, key, values[key])
    if changed:
        link.version += 1
        audit.record("attachment_edited", actor=user, exercise=exercise, lesson=link.lesson,
                     changes=changed)
    learned = _advance(user, exercise, link, to, evidence.strip()) if moving else False
    if learned:
        lesson_service.commit_lesson(link.lesson)
    elif changed or moving:
        db.session.commit()
    return link


def check_step(link: ExerciseLesson, to: str) -> None:
    """Refuse anything but the next step of the link's status machine (409)."""
    allowed = LINK_STEPS.get(link.status, ())
    if to not in allowed:
        label = LINK_STATUS_LABELS.get(link.status, link.status).lower()
        if to not in LINK_STATUS_LABELS:
            raise InvalidTransition(f"Unknown link status {to!r}.")
        if to in OUTCOMES and link.status != "incorporated":
            raise InvalidTransition(
                f"The lesson is {label} in this exercise; an outcome can be recorded only "
                "once it has been incorporated.")
        nxt = " or ".join(LINK_STATUS_LABELS[s].lower() for s in allowed) or "nothing further"
        raise InvalidTransition(f"The lesson is {label} in this exercise; the next step is "
                                f"{nxt}, one step at a time.")


def _advance(user: User, exercise: Exercise, link: ExerciseLesson, to: str,
             note: str) -> bool:
    """Make the (already checked) step; True when it made the lesson learned."""
    lesson = link.lesson
    previous = link.status
    _step(user, link, to, note)
    link.version += 1
    if to in OUTCOMES:
        link.evidence = note
    audit.record("outcome_recorded" if to in OUTCOMES else "attachment_moved", actor=user,
                 exercise=exercise, lesson=lesson, from_status=previous, to_status=to,
                 comment=note)
    if to == "effective" and lesson.status in LEARNABLE:
        if policy.outcome_moves_at_once(user, lesson):
            flag = policy.self_review_flag(user, lesson)
            make_learned(user, lesson, f"({flag}) {note}" if flag else note)
            link.confirmation = "confirmed"
            return True
        link.confirmation = "pending"
    if to in OUTCOMES and policy.is_foreign(lesson):
        # Its originator's analysts decide, on their own instance: the outcome goes there.
        returns.queue_outcome(user, link)
    return False


def make_learned(user: User, lesson: Lesson, evidence: str) -> None:
    """The status table's ``learned`` move (docs/ARCHITECTURE.md, section 3), made by an
    exercise outcome rather than by the analyst button; audited on the lesson with the
    evidence. The exercise is not named on the lesson's trail: the lesson's readers
    may not all take part in it."""
    previous = lesson.status
    lesson.status = "learned"
    lesson.version += 1
    audit.record("learned", actor=user, lesson=lesson, from_status=previous,
                 to_status="learned",
                 comment=f"Exercise outcome effective ({user.nation_code} planner): {evidence}")


def detach_lesson(user: User, exercise_id: str, lesson_id: str) -> None:
    """Remove a lesson that is still proposed or accepted (a planned lesson that was
    incorporated keeps its record). Commits with an audit entry."""
    exercise = _load_exercise(user, exercise_id)
    link = attached_link(user, exercise, lesson_id)
    if link.status not in DETACHABLE:
        raise InvalidTransition("Only a proposed or accepted lesson can be removed; this one "
                                "is already part of the exercise's record.")
    audit.record("lesson_detached", actor=user, exercise=exercise, lesson=link.lesson,
                 from_status=link.status)
    db.session.delete(link)
    db.session.commit()


# --- confirming an outcome recorded by another nation's planner ------------------------------
def pending_confirmations(user: User) -> list[ExerciseLesson]:
    """Effective outcomes waiting for ``user`` (an analyst) to confirm: lessons of their
    nation, still validated or action-assigned. Oldest first."""
    if not user.has_role("analyst"):
        return []
    links = db.session.scalars(
        select(ExerciseLesson).join(Lesson, ExerciseLesson.lesson_id == Lesson.id)
        .where(ExerciseLesson.confirmation == "pending",
               Lesson.originator_nation == user.nation_code,
               Lesson.status.in_(sorted(LEARNABLE)), policy.visible_lessons(user))
        .order_by(ExerciseLesson.updated_at, ExerciseLesson.id).limit(500))
    return [link for link in links if policy.can_confirm_outcome(user, link.lesson)]


def decide_outcome(user: User, exercise_id: str, lesson_id: str, *, confirm: bool,
                   note: str = "") -> ExerciseLesson:
    """An originator analyst confirms (the lesson becomes learned) or declines (it stays
    open; a reason is required) an effective outcome recorded by another nation's
    planner. Works without the analyst taking part in the exercise: the request was
    addressed to their nation. Raises ``NotFound`` when nothing is pending for them
    (also for anyone outside the exercise who may not decide), ``NotAllowed`` for a
    participant who sees the outcome but may not decide it, ``InvalidTransition`` when
    the outcome was already decided (of two decisions at once, the second) or the lesson
    can no longer become learned."""
    # Locked: of a confirm and a decline sent at once, the second waits and then finds
    # the outcome decided (PostgreSQL), or fails its version-checked UPDATE (SQLite).
    link = db.session.scalar(locked(
        select(ExerciseLesson).join(Lesson, ExerciseLesson.lesson_id == Lesson.id)
        .join(Exercise, ExerciseLesson.exercise_id == Exercise.id)
        .where(Exercise.public_id == str(exercise_id), Lesson.public_id == str(lesson_id),
               ExerciseLesson.confirmation.in_(("pending", "confirmed", "declined"))),
        ExerciseLesson))
    if link is None or not policy.can_view(user, link.lesson):
        raise NotFound("No outcome is waiting for confirmation here.")
    lesson = link.lesson
    if not policy.can_decide_for_originator(user, lesson):
        # A 403 would tell a user outside the exercise that it holds this lesson with an
        # outcome waiting: only its participants, who see that anyway, learn why.
        if link.confirmation != "pending" or not policy.can_view_exercise(user, link.exercise):
            raise NotFound("No outcome is waiting for confirmation here.")
        raise NotAllowed(f"Only an analyst of {lesson.originator_nation} can confirm this.")
    policy.require_confirm_outcome(user, lesson)
    if link.confirmation != "pending":
        # Only an outcome that waited on this nation is ever confirmed or declined, so
        # saying which tells its analyst nothing new.
        raise InvalidTransition(f"This outcome was already {link.confirmation}; nothing "
                                "was changed.")
    problem = check_note(note, label="reason", required=not confirm)
    if problem:
        raise ValidationFailed({"note": problem})
    note = note.strip()
    flag = policy.self_review_flag(user, lesson)
    if flag:
        note = f"({flag}) {note}".strip()
    if confirm:
        if lesson.status not in LEARNABLE:
            raise InvalidTransition(f"The lesson is {lesson.status.replace('_', ' ')}; it "
                                    "can no longer be recorded as learned.")
        make_learned(user, lesson, f"{link.evidence} (confirmed by {user.nation_code} "
                                   f"analyst{': ' + note if note else ''})")
        link.confirmation = "confirmed"
        link.version += 1
        audit.record("outcome_confirmed", actor=user, exercise=link.exercise, lesson=lesson,
                     comment=note)
        lesson_service.commit_lesson(lesson)
    else:
        link.confirmation = "declined"
        link.version += 1
        audit.record("outcome_declined", actor=user, exercise=link.exercise, lesson=lesson,
                     comment=note)
        # Also on the lesson's own trail, without the exercise, for its analysts.
        audit.record("outcome_declined", actor=user, lesson=lesson, comment=note)
        db.session.commit()
    return link


# --- attach by tag -------------------------------------------------------------------------
def by_tag_candidates(user: User, exercise_id: str, tag: str) -> list[Lesson]:
    """Every validated lesson tagged ``tag`` that ``user`` may see and the exercise has
    not taken up yet, by title (the preview; stores nothing)."""
    exercise = exercise_service.get_exercise(user, exercise_id)
    policy.require_edit_exercise(user, exercise)
    tag = " ".join(str(tag or "").split()).lower()
    if not tag:
        raise ValidationFailed({"tag": "Give a tag."})
    attached = select(ExerciseLesson.lesson_id).where(ExerciseLesson.exercise_id == exercise.id)
    found = db.session.scalars(
        select(Lesson).join(lesson_tags, lesson_tags.c.lesson_id == Lesson.id)
        .join(Tag, Tag.id == lesson_tags.c.tag_id)
        .where(Tag.name == tag, Lesson.status == "validated", policy.visible_lessons(user),
               Lesson.id.not_in(attached))
        .order_by(Lesson.title, Lesson.id).limit(ATTACH_BY_TAG_MAX + 1))
    return [lesson for lesson in found if policy.can_view(user, lesson)]


def attach_by_tag(user: User, exercise_id: str, tag: str, lesson_ids: Iterable[str],
                  data: Mapping[str, Any]) -> list[ExerciseLesson]:
    """Attach the previewed lessons (``lesson_ids``, as the preview listed them) that
    are still candidates; one commit for all. A lesson that stopped qualifying since
    the preview is skipped, never attached behind the planner's back."""
    candidates = {lesson.public_id: lesson
                  for lesson in by_tag_candidates(user, exercise_id, tag)}
    wanted = [candidates[p] for p in dict.fromkeys(str(i) for i in lesson_ids)
              if p in candidates]
    if len(wanted) > ATTACH_BY_TAG_MAX:
        raise ValidationFailed({"tag": f"At most {ATTACH_BY_TAG_MAX} lessons at once; "
                                       "narrow the tag."})
    exercise = _load_exercise(user, exercise_id)
    values = _link_values(exercise, {"purpose": "read_ahead", **data})
    links = [_attach(user, exercise, lesson, values) for lesson in wanted]
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationFailed({"tag": "Another planner attached some of these lessons at "
                                       "the same time; preview again."}) from None
    return links

