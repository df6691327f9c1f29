"""Exercise use cases: plan, edit, list, and the figures that close the loop.

Every function loads through the policy (``NotFound`` for an exercise the user's
nation does not take part in), checks the one rule set, writes the audit record and
commits once. Lessons inside an exercise are shown to each viewer only as far as the
lesson policy allows; every count here is over what the viewer may see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select

from lessons import policy
from lessons.errors import InvalidTransition, NotAllowed, ValidationFailed
from lessons.extensions import db
from lessons.models import (
    AuditRecord,
    Exercise,
    ExerciseLesson,
    Lesson,
    Milestone,
    Objective,
    User,
)
from lessons.models.base import new_public_id, utcnow
from lessons.models.user import UserRole
from lessons.rules import (
    EXERCISE_TYPE_LABELS,
    LINK_STATUSES,
    PLANNERS_MAX,
    STANDARD_MILESTONES,
    check_exercise,
    normalise_codes,
    normalise_milestone_name,
    normalise_tags,
)
from lessons.services import audit
from lessons.services.lessons import _tag_objects, check_version, locked
from lessons.services.nations import expand, known_codes, nation_codes
from lessons.sorting import Sort, SortColumn, SortColumns

EXERCISE_SCALARS = ("name", "type", "lead_nation", "starts_on", "ends_on", "location",
                    "description")
WHEN = ("upcoming", "past", "all")


def today() -> date:
    return utcnow().date()


# --- values --------------------------------------------------------------------------------
def _as_date(value: Any) -> Any:
    """Dates pass; ISO strings become dates; anything else stays for the rules to refuse."""
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return value


def normalise_exercise(data: Mapping[str, Any]) -> dict[str, Any]:
    """Trim and normalise the contract keys present in ``data``.

    ``objectives`` may hold strings (new objectives, or existing ones matched by their
    text) or ``{"id", "text"}`` items (an existing objective keeps its id when its text
    changes). ``milestones`` maps names to dates; custom names become slugs.
    ``planners`` holds usernames.
    """
    clean: dict[str, Any] = {}
    for key in EXERCISE_SCALARS:
        if key in data:
            value = data[key]
            clean[key] = value.strip() if isinstance(value, str) else value
    for key in ("starts_on", "ends_on"):
        if key in clean:
            clean[key] = _as_date(clean[key])
    if "type" in clean and isinstance(clean["type"], str):
        clean["type"] = clean["type"].lower()
    if "lead_nation" in clean and isinstance(clean["lead_nation"], str):
        clean["lead_nation"] = clean["lead_nation"].upper()
    if "nations" in data:
        clean["nations"] = normalise_codes(data["nations"] or [])
    if "tags" in data:
        clean["tags"] = normalise_tags(data["tags"] or [])
    if "objectives" in data:
        items: list[dict[str, str]] = []
        for item in data["objectives"] or []:
            if isinstance(item, Mapping):
                text, ident = str(item.get("text") or "").strip(), str(item.get("id") or "")
            else:
                text, ident = str(item).strip(), ""
            if text:
                items.append({"id": ident.strip(), "text": " ".join(text.split())})
        clean["objectives"] = items
    if "milestones" in data:
        raw = data["milestones"] or {}
        pairs = raw.items() if isinstance(raw, Mapping) else []
        clean["milestones"] = {normalise_milestone_name(k): _as_date(v) for k, v in pairs
                               if normalise_milestone_name(k)}
    if "planners" in data:
        clean["planners"] = list(dict.fromkeys(
            str(u).strip().lower() for u in data["planners"] or [] if str(u).strip()))
    return clean


def exercise_values(exercise: Exercise) -> dict[str, Any]:
    """The exercise's contract keys and values (what forms prefill and rules check)."""
    values: dict[str, Any] = {key: getattr(exercise, key) for key in EXERCISE_SCALARS}
    values.update(
        nations=list(exercise.nations), tags=exercise.tags,
        objectives=[{"id": o.public_id, "text": o.text} for o in exercise.objectives],
        milestones={m.name: m.due_on for m in exercise.milestones},
        planners=[p.username for p in exercise.planners],
    )
    return values


def _check(values: dict[str, Any]) -> None:
    errors = check_exercise({**values, "objectives": [o["text"] for o in values["objectives"]]},
                            known_nations=known_codes())
    if errors:
        raise ValidationFailed(errors)


PLANNER_RULE = ("A planner must be an active user with the planner role, of a nation "
                "taking part in the exercise.")


# How many eligible planners the form's picker lists (every nation's planners of a large
# coalition stay well below it); beyond it, the API still takes any username.
PLANNER_CHOICES_MAX = 500


def planner_candidates(user: User, nations: Iterable[str],
                       keep: Iterable[User] = ()) -> list[User]:
    """Whom the planners picker offers ``user`` for an exercise of ``nations`` (codes or
    groups, as typed or stored): the active planners of those nations, which are the
    users ``_planner_users`` accepts, plus ``keep`` (the planners already named, whom
    the exercise page shows its participants anyway), by nation then name.

    Only participating nations are consulted, so the picker names nobody of a nation
    outside the exercise; a username typed by hand still meets the one message of
    ``_planner_users``. Empty for a user who may not plan exercises."""
    if not policy.can_create_exercise(user):
        return []
    codes = sorted((set(expand(normalise_codes(list(nations)))) | {user.nation_code})
                   & nation_codes())
    found = list(db.session.scalars(
        select(User).where(_eligible_planner(codes))
        .order_by(User.nation_code, User.display_name, User.username)
        .limit(PLANNER_CHOICES_MAX)))
    listed = {u.id for u in found}
    extra = [u for u in keep if u.id not in listed]
    return sorted([*found, *extra], key=lambda u: (u.nation_code, u.display_name.lower(),
                                                   u.username))


def _eligible_planner(nations: Iterable[str]) -> ColumnElement[bool]:
    """Who may plan an exercise of ``nations`` (codes): an active planner of one of them.
    The picker offers exactly these and a save accepts exactly these."""
    return and_(User.active.is_(True), User.nation_code.in_(list(nations)),
                User.role_rows.any(UserRole.role == "planner"))


def _planner_users(usernames: list[str], exercise_nations: list[str]) -> list[User]:
    if len(usernames) > PLANNERS_MAX:
        raise ValidationFailed({"planners": f"At most {PLANNERS_MAX} planners."})
    found = {u.username: u for u in db.session.scalars(
        select(User).where(User.username.in_(usernames),
                           _eligible_planner(exercise_nations)))} if usernames else {}
    # One message for every reason (no such user, not a planner, nation not taking
    # part): saying which would tell anyone who plans an exercise who has an account,
    # who plans, and of which nation.
    refused = [name for name in usernames if name not in found]
    if refused:
        raise ValidationFailed({"planners": f"Cannot be planners: {', '.join(refused)}. "
                                            f"{PLANNER_RULE}"})
    if not usernames:
        raise ValidationFailed({"planners": "An exercise needs at least one planner."})
    return [found[name] for name in usernames]


def milestones_in_order(exercise: Exercise) -> list[Milestone]:
    """Standard and custom milestones together in date order (what the calendar says);
    undated ones after, standard before custom. Stored positions keep the standard
    sequence, so the API's and older pages' order does not change under them."""
    standard = {name: index for index, name in enumerate(STANDARD_MILESTONES)}

    def key(milestone: Milestone) -> tuple:
        place = standard.get(milestone.name, len(standard))
        return (milestone.due_on is None, milestone.due_on or date.max, place,
                milestone.position, milestone.name)

    return sorted(exercise.milestones, key=key)


def outcomes_open(exercise: Exercise) -> bool:
    """Whether outcomes may be recorded: from the exercise's start date (the execution
    phase; the API calls the exercise ``under_way`` from then), not before. An outcome
    says what happened when a fix was tried, which cannot be known before that."""
    return exercise.starts_on <= today()


def check_outcomes_open(exercise: Exercise) -> None:
    """Refuse an outcome before the exercise starts (409, like any step out of turn)."""
    if not outcomes_open(exercise):
        raise InvalidTransition(
            f"The exercise starts on {exercise.starts_on.isoformat()}; an outcome can be "
            "recorded only from then (its execution phase), not before.")


def can_decide_outcome(user: User, link: ExerciseLesson) -> bool:
    """Whether the exercise page offers ``user`` the confirm/decline of ``link``'s waiting
    outcome: the analysts ``attachments.decide_outcome`` accepts (of the lesson's
    originator nation; not its author where separation of duties applies)."""
    return link.confirmation == "pending" and policy.can_confirm_outcome(user, link.lesson)


def _attached_count(**where: Any) -> int:
    query = select(func.count()).select_from(ExerciseLesson)
    for key, value in where.items():
        query = query.where(getattr(ExerciseLesson, key) == value)
    return db.session.scalar(query) or 0


def _apply_objectives(exercise: Exercise, items: list[dict[str, str]]) -> bool:
    """Keep objectives named by id (editing their text), match new texts to existing
    objectives, add the rest; refuse to drop one that lessons are attached to."""
    before = [(o.public_id, o.text) for o in exercise.objectives]
    current = {o.public_id: o for o in exercise.objectives}
    by_text = {o.text: o for o in exercise.objectives}
    kept: list[Objective] = []
    for position, item in enumerate(items, start=1):
        objective = current.get(item["id"]) if item["id"] else None
        if objective is None and item["id"]:
            raise ValidationFailed({"objectives": "An objective you edited no longer exists; "
                                                  "reload the page."})
        if objective is None:
            objective = by_text.get(item["text"])
        if objective is None or objective in kept:
            objective = Objective(public_id=new_public_id(), text=item["text"])
        objective.text = item["text"]
        objective.position = position
        kept.append(objective)
    dropped = [o for o in exercise.objectives if o not in kept]
    for objective in dropped:
        if objective.id is not None and _attached_count(objective_id=objective.id):
            raise ValidationFailed({"objectives": (
                f"Objective \u201c{objective.text[:60]}\u201d has lessons attached; attach "
                "them to another objective before removing it.")})
    exercise.objectives = kept
    return before != [(o.public_id, o.text) for o in kept]


def _apply_milestones(exercise: Exercise, wanted: dict[str, date | None]) -> bool:
    """The six standard milestones always exist (dates optional); custom ones follow."""
    names = list(STANDARD_MILESTONES) + [n for n in wanted if n not in STANDARD_MILESTONES]
    current = {m.name: m for m in exercise.milestones}
    before = sorted((m.name, m.due_on) for m in exercise.milestones)
    kept: list[Milestone] = []
    for position, name in enumerate(names, start=1):
        milestone = current.get(name) or Milestone(name=name)
        milestone.due_on = wanted.get(name) if name in wanted else milestone.due_on
        milestone.position = position
        kept.append(milestone)
    for milestone in exercise.milestones:
        if milestone not in kept and milestone.id is not None \
                and _attached_count(milestone_id=milestone.id):
            raise ValidationFailed({"milestones": (
                f"Milestone {milestone.name} has lessons attached; move them to another "
                "milestone before removing it.")})
    exercise.milestones = kept
    return before != sorted((m.name, m.due_on) for m in kept)


def _apply(exercise: Exercise, values: dict[str, Any]) -> list[str]:
    changed: list[str] = []
    for key in EXERCISE_SCALARS:
        new = values[key] if values[key] is not None else ""
        if getattr(exercise, key) != new:
            setattr(exercise, key, new)
            changed.append(key)
    nations = sorted(set(expand(values["nations"])) | {values["lead_nation"]})
    if sorted(exercise.nations) != nations:
        exercise.nations = nations
        changed.append("nations")
    if exercise.tags != sorted(values["tags"]):
        exercise.tag_objects = _tag_objects(values["tags"])
        changed.append("tags")
    if _apply_objectives(exercise, values["objectives"]):
        changed.append("objectives")
    if _apply_milestones(exercise, values["milestones"]):
        changed.append("milestones")
    planners = _planner_users(values["planners"], nations)
    if [p.id for p in exercise.planners] != [p.id for p in planners]:
        exercise.planners = planners
        changed.append("planners")
    return changed


# --- use cases -------------------------------------------------------------------------------
def create_exercise(user: User, data: Mapping[str, Any]) -> Exercise:
    """Plan a new exercise; ``user`` (a planner) becomes its first planner and its lead
    nation defaults to theirs. Commits once; raises ``NotAllowed`` for non-planners and
    ``ValidationFailed`` listing every bad field."""
    if not policy.can_create_exercise(user):
        raise NotAllowed("Only planners can create exercises.")
    values = normalise_exercise(data)
    values.setdefault("lead_nation", user.nation_code)
    values.setdefault("type", "cpx")
    values.setdefault("location", "")
    values.setdefault("description", "")
    values.setdefault("nations", [])
    values.setdefault("tags", [])
    values.setdefault("objectives", [])
    values.setdefault("milestones", {})
    planners = values.get("planners") or []
    values["planners"] = [user.username] + [p for p in planners if p != user.username]
    values["nations"] = list(dict.fromkeys([*values["nations"], user.nation_code]))
    for key in ("name", "starts_on", "ends_on"):
        values.setdefault(key, None)
    _check(values)
    exercise = Exercise(created_by_id=user.id, public_id=new_public_id(), version=1)
    db.session.add(exercise)
    with db.session.no_autoflush:
        _apply(exercise, values)
    db.session.flush()
    audit.record("exercise_created", actor=user, exercise=exercise)
    db.session.commit()
    return exercise


def load_exercise(user: User, public_id: str, *, for_update: bool = False) -> Exercise:
    query = select(Exercise).where(Exercise.public_id == str(public_id))
    if for_update:
        query = locked(query, Exercise)
    return policy.require_view_exercise(user, db.session.scalar(query))


def get_exercise(user: User, public_id: str) -> Exercise:
    """The exercise if ``user``'s nation takes part; ``NotFound`` otherwise."""
    return load_exercise(user, public_id)


def update_exercise(user: User, public_id: str, data: Mapping[str, Any], *,
                    expected_version: int | None = None) -> Exercise:
    """Edit an exercise (its planners only); bumps ``version`` when anything changed.

    The planner's own nation must stay a participant (or they would lose sight of the
    exercise mid-edit). Raises ``NotFound``, ``NotAllowed`` or ``ValidationFailed``.
    """
    exercise = load_exercise(user, public_id, for_update=True)
    policy.require_edit_exercise(user, exercise)
    check_version(exercise.version, expected_version, "exercise")
    values = {**exercise_values(exercise), **normalise_exercise(data)}
    _check(values)
    if user.nation_code not in set(expand(values["nations"])) | {values["lead_nation"]}:
        raise ValidationFailed({"nations": f"Your nation ({user.nation_code}) must stay a "
                                           "participant."})
    with db.session.no_autoflush:
        changed = _apply(exercise, values)
    if changed:
        exercise.version += 1
        audit.record("exercise_edited", actor=user, exercise=exercise, changes=changed)
        db.session.commit()
    return exercise


# The exercises list's sortable columns (``?sort=``), in the "Sort by" control's order.
EXERCISE_SORTS = SortColumns((
    SortColumn("starts", "Start date", "soonest first", "latest first"),
    SortColumn("ends", "End date", "soonest first", "latest first"),
    SortColumn("name", "Name", "A to Z", "Z to A"),
    SortColumn("type", "Type", "A to Z", "Z to A"),
    SortColumn("lead", "Lead nation", "A to Z", "Z to A"),
))
# Each tab's order when the URL names none: upcoming soonest first, past most recent first.
DEFAULT_SORTS = {"upcoming": "starts", "past": "-ends", "all": "-starts"}

# Type sorts by the label the list shows, not by its code.
_TYPE_RANK = case({code: rank for rank, code in enumerate(
    sorted(EXERCISE_TYPE_LABELS, key=lambda code: EXERCISE_TYPE_LABELS[code].lower()))},
    value=Exercise.type, else_=len(EXERCISE_TYPE_LABELS))
_SORT_COLUMNS = {"starts": Exercise.starts_on, "ends": Exercise.ends_on,
                 "name": func.lower(Exercise.name), "type": _TYPE_RANK,
                 "lead": Exercise.lead_nation}


def exercise_order(when: str, sort: str = "") -> Sort:
    """The order of the ``when`` tab: ``sort`` when it names a column, else the tab's."""
    return EXERCISE_SORTS.read(sort, DEFAULT_SORTS.get(when, DEFAULT_SORTS["all"]))


def list_exercises(user: User, when: str = "upcoming", sort: str = "") -> list[Exercise]:
    """Exercises ``user``'s nation takes part in, sorted by ``sort`` (an
    ``EXERCISE_SORTS`` value; by default upcoming (not yet ended) soonest first, past
    most recent first). Ties fall back to the name, then the id, so the order is stable."""
    query = select(Exercise).where(policy.visible_exercises(user))
    if when == "upcoming":
        query = query.where(Exercise.ends_on >= today())
    elif when == "past":
        query = query.where(Exercise.ends_on < today())
    order = exercise_order(when, sort)
    column = _SORT_COLUMNS[order.key]
    query = query.order_by(column.desc() if order.descending else column.asc(),
                           func.lower(Exercise.name), Exercise.id)
    return list(db.session.scalars(query.limit(500)))


def editable_exercises(user: User) -> list[Exercise]:
    """Upcoming exercises ``user`` plans: where a lesson page offers "add to exercise"."""
    return [e for e in list_exercises(user, "upcoming") if policy.can_edit_exercise(user, e)]


def history(user: User, exercise: Exercise) -> list[AuditRecord]:
    """The exercise's audit trail, oldest first; entries about a lesson ``user`` may not
    see are left out."""
    policy.require_view_exercise(user, exercise)
    entries = list(db.session.scalars(
        select(AuditRecord).where(AuditRecord.exercise_id == exercise.id)
        .order_by(AuditRecord.created_at, AuditRecord.id)))
    lesson_ids = {e.lesson_id for e in entries if e.lesson_id is not None}
    visible = _visible_ids(user, lesson_ids)
    return [e for e in entries if e.lesson_id is None or e.lesson_id in visible]


def _visible_ids(user: User, lesson_ids: Iterable[int]) -> set[int]:
    ids = sorted(set(lesson_ids))
    if not ids:
        return set()
    return {lesson.id for lesson in db.session.scalars(
        select(Lesson).where(Lesson.id.in_(ids), policy.visible_lessons(user)))
        if policy.can_view(user, lesson)}


# --- what the viewer sees of an exercise's lessons ---------------------------------------------
def visible_links(user: User, exercise: Exercise) -> list[ExerciseLesson]:
    """The exercise's attached lessons that ``user`` may see, by objective then title.
    Links to lessons hidden from ``user`` are left out, uncounted."""
    policy.require_view_exercise(user, exercise)
    links = db.session.scalars(
        select(ExerciseLesson).join(Lesson, ExerciseLesson.lesson_id == Lesson.id)
        .where(ExerciseLesson.exercise_id == exercise.id, policy.visible_lessons(user)))
    result = [link for link in links if policy.can_view(user, link.lesson)]
    return sorted(result, key=lambda link: (
        link.objective.position if link.objective else 10_000, link.lesson.title.lower()))


def withdrawn_by_originator(user: User, exercise: Exercise) -> list[ExerciseLesson]:
    """Links to lessons received from another instance and since revoked by it, that
    ``user`` may be told of (``policy.sees_withdrawn_by_originator``)."""
    policy.require_view_exercise(user, exercise)
    links = db.session.scalars(
        select(ExerciseLesson).join(Lesson, ExerciseLesson.lesson_id == Lesson.id)
        .where(ExerciseLesson.exercise_id == exercise.id, Lesson.status == "withdrawn",
               Lesson.origin_instance.is_not(None)))
    return [link for link in links if policy.sees_withdrawn_by_originator(user, link.lesson)]


def observations(user: User, exercise: Exercise) -> list[Lesson]:
    """Lessons written from this exercise (their source event) that ``user`` may see."""
    policy.require_view_exercise(user, exercise)
    found = db.session.scalars(select(Lesson).where(
        Lesson.source_exercise_id == exercise.id, policy.visible_lessons(user))
        .order_by(Lesson.created_at.desc(), Lesson.id.desc()).limit(500))
    return [lesson for lesson in found if policy.can_view(user, lesson)]


@dataclass(frozen=True)
class LoopSummary:
    """The exercise page's "closing the loop" figures, all over what the viewer sees."""

    by_status: dict[str, int]
    not_taken_up: int
    not_taken_up_sample: list[Lesson]


def loop_summary(user: User, exercise: Exercise, links: list[ExerciseLesson]) -> LoopSummary:
    """Links by status (``links`` as ``visible_links`` gave them), and the validated
    lessons of the viewer's nation that no upcoming exercise the viewer can see has
    taken up. Exercises hidden from the viewer are not consulted, so they cannot move
    the figure."""
    counts = Counter(link.status for link in links)
    by_status = {status: counts.get(status, 0) for status in LINK_STATUSES}
    upcoming = select(Exercise.id).where(Exercise.ends_on >= today(),
                                         policy.visible_exercises(user))
    taken = select(ExerciseLesson.lesson_id).where(ExerciseLesson.exercise_id.in_(upcoming))
    query = select(Lesson).where(
        policy.visible_lessons(user), Lesson.status == "validated",
        Lesson.originator_nation == user.nation_code, Lesson.id.not_in(taken))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    sample = list(db.session.scalars(query.order_by(Lesson.updated_at.desc()).limit(5)))
    return LoopSummary(by_status=by_status, not_taken_up=total, not_taken_up_sample=sample)


def exercises_for_lesson(user: User, lesson: Lesson) -> list[ExerciseLesson]:
    """Every exercise ``user`` can see that took ``lesson`` up, with its status and
    outcome, newest exercise first (the lesson page lists them)."""
    policy.require_view(user, lesson)
    links = db.session.scalars(
        select(ExerciseLesson).join(Exercise, ExerciseLesson.exercise_id == Exercise.id)
        .where(ExerciseLesson.lesson_id == lesson.id, policy.visible_exercises(user))
        .order_by(Exercise.starts_on.desc()))
    return [link for link in links if policy.can_view_exercise(user, link.exercise)]
