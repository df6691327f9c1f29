"""Who may see and do what: the only home of these rules (docs/ARCHITECTURE.md, section 4).

Visibility is written once, as a small backend-neutral rule (``visibility_rule``). From
it come ``can_view`` (Python, one lesson), ``visible_lessons`` (an SQL filter) and the
search index filter, so the three cannot drift; tests check that they agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from flask import current_app, has_app_context
from flask_login import AnonymousUserMixin
from sqlalchemy import ColumnElement, false, true

from lessons.errors import InvalidTransition, NotAllowed, NotFound
from lessons.models import Exercise, ExerciseNation, Lesson, User
from lessons.models.lesson import LessonRelease
from lessons.rules import STATUS_LABELS, STATUSES
from lessons.workflow import TRANSITIONS, Transition

# Statuses that anyone of a REL TO nation may see. Drafts and withdrawn lessons are the
# author's alone; rejected ones the author's and the originator's analysts'.
SHARED_STATUSES = frozenset({"submitted", "validated", "action_assigned", "learned", "archived"})


# --- the rule language ----------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    """True when the lesson's ``field`` (or any of its values, for list fields) is in
    ``values``."""

    field: str
    values: frozenset


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Rule, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Rule, ...]


Rule = Match | AllOf | AnyOf
NEVER: Rule = AnyOf(())

# The fields a rule may name; each compiler below knows how to read all of them.
RULE_FIELDS = ("releasable_to", "status", "author_id", "originator_nation")
LIST_FIELDS = frozenset({"releasable_to"})

UserLike = User | AnonymousUserMixin | None


def _real_user(user: UserLike) -> User | None:
    if isinstance(user, User) and user.is_active:
        return user
    return None


def visibility_rule(user: UserLike) -> Rule:
    """The lessons ``user`` may see, as a rule any backend can evaluate."""
    user = _real_user(user)
    if user is None:
        return NEVER
    own_status = AnyOf((
        Match("status", SHARED_STATUSES),
        Match("author_id", frozenset({user.id})),
    ))
    if user.has_role("analyst"):
        own_status = AnyOf(own_status.parts + (AllOf((
            Match("status", frozenset({"rejected"})),
            Match("originator_nation", frozenset({user.nation_code})),
        )),))
    return AllOf((Match("releasable_to", frozenset({user.nation_code})), own_status))


def evaluate(rule: Rule, lesson: Lesson) -> bool:
    """Evaluate ``rule`` against one loaded lesson."""
    if isinstance(rule, Match):
        value: Any = getattr(lesson, rule.field)
        if rule.field in LIST_FIELDS:
            return any(v in rule.values for v in value)
        return value in rule.values
    if isinstance(rule, AllOf):
        return all(evaluate(p, lesson) for p in rule.parts)
    return any(evaluate(p, lesson) for p in rule.parts)


_SQL_FIELDS: dict[str, Callable[[frozenset], ColumnElement[bool]]] = {
    "releasable_to": lambda v: Lesson.release_rows.any(LessonRelease.nation_code.in_(sorted(v))),
    "status": lambda v: Lesson.status.in_(sorted(v)),
    "author_id": lambda v: Lesson.author_id.in_(sorted(v)),
    "originator_nation": lambda v: Lesson.originator_nation.in_(sorted(v)),
}


def to_sql(rule: Rule) -> ColumnElement[bool]:
    """Compile ``rule`` into a WHERE clause over ``Lesson``."""
    from sqlalchemy import and_, or_

    if isinstance(rule, Match):
        return _SQL_FIELDS[rule.field](rule.values)
    if isinstance(rule, AllOf):
        return and_(true(), *(to_sql(p) for p in rule.parts))
    return or_(false(), *(to_sql(p) for p in rule.parts))


# --- lessons ---------------------------------------------------------------------------
def can_view(user: UserLike, lesson: Lesson) -> bool:
    """May ``user`` see ``lesson`` at all (its page, a search hit, a count)?"""
    return evaluate(visibility_rule(user), lesson)


def visible_lessons(user: UserLike) -> ColumnElement[bool]:
    """SQL filter selecting exactly the lessons ``can_view`` allows for ``user``."""
    return to_sql(visibility_rule(user))


def require_view(user: UserLike, lesson: Lesson | None) -> Lesson:
    """Return ``lesson`` if visible, else raise ``NotFound`` (never 403: no existence leak)."""
    if lesson is None or not can_view(user, lesson):
        raise NotFound("No such lesson.")
    return lesson


def peer_rule(nations: Iterable[str]) -> Rule:
    """The lessons a user of one of ``nations`` with no role, who wrote none of them, may
    see (``visibility_rule`` for such a user): what a federation peer serving those
    nations is sent. A peer's users are then bound by the peer's own policy."""
    return AllOf((Match("releasable_to", frozenset(nations)),
                  Match("status", SHARED_STATUSES)))


def peer_may_receive(nations: Iterable[str], lesson: Lesson) -> bool:
    return evaluate(peer_rule(nations), lesson)


def is_foreign(lesson: Lesson) -> bool:
    """Received from another Muster instance (``lessons.federation``): its originator
    changes it there, so here nobody edits, moves, reviews or manages its actions. The
    one place this is decided: ``is_author`` and ``is_analyst_for``, from which every
    such right follows, answer False for it."""
    return lesson.origin_instance is not None


def sees_withdrawn_by_originator(user: UserLike, lesson: Lesson) -> bool:
    """A foreign lesson its originator revoked stays named, as withdrawn by its
    originator, where it was attached, to users of the nations it had been released to:
    planners learn why it left their exercise. Nothing of its content is shown."""
    user = _real_user(user)
    return (user is not None and is_foreign(lesson) and lesson.status == "withdrawn"
            and user.nation_code in lesson.releasable_to)


def is_author(user: UserLike, lesson: Lesson) -> bool:
    user = _real_user(user)
    return user is not None and lesson.author_id == user.id and not is_foreign(lesson)


def is_analyst_for(user: UserLike, lesson: Lesson) -> bool:
    """An analyst of the lesson's originator nation: validates it and decides release."""
    user = _real_user(user)
    return (user is not None and user.has_role("analyst")
            and user.nation_code == lesson.originator_nation and not is_foreign(lesson))


def can_edit(user: UserLike, lesson: Lesson) -> bool:
    """The author while draft; the originator's analysts while not archived."""
    if not can_view(user, lesson):
        return False
    if lesson.status == "draft" and is_author(user, lesson):
        return True
    return is_analyst_for(user, lesson) and lesson.status != "archived"


def require_edit(user: UserLike, lesson: Lesson) -> None:
    require_view(user, lesson)
    if not can_edit(user, lesson):
        raise NotAllowed("You may not edit this lesson in its current status.")


def can_create_lesson(user: UserLike) -> bool:
    user = _real_user(user)
    return user is not None and user.has_role("contributor")


def can_manage_actions(user: UserLike, lesson: Lesson) -> bool:
    """Remedial actions are the originator's analysts' to assign and close."""
    return can_view(user, lesson) and is_analyst_for(user, lesson) and lesson.status not in (
        "draft", "withdrawn", "rejected", "archived")


def require_manage_actions(user: UserLike, lesson: Lesson) -> None:
    require_view(user, lesson)
    if not can_manage_actions(user, lesson):
        raise NotAllowed("Only an analyst of the originator nation can manage remedial actions, "
                         "and only once the lesson is submitted and until it is archived.")


# --- separation of duties ---------------------------------------------------------------
# Nations allowed self-review for the current context only (the demo data, whose nations
# have one analyst each); the setting SELF_REVIEW_NATIONS is the operators' way.
_SELF_REVIEW_HERE: ContextVar[frozenset[str]] = ContextVar("self_review_here",
                                                           default=frozenset())


def self_review_nations() -> frozenset[str]:
    """Nations whose analysts may decide on lessons they wrote themselves: a nation with
    a single analyst would otherwise have nobody to validate that analyst's lessons."""
    configured = current_app.config.get("SELF_REVIEW_NATIONS", ()) if has_app_context() else ()
    return frozenset(configured) | _SELF_REVIEW_HERE.get()


@contextmanager
def self_review_for(nations: Iterable[str]) -> Iterator[None]:
    """Allow self-review for ``nations`` inside the block (this context only), audited as
    such like the setting's: for loaders of sample data with one analyst per nation."""
    token = _SELF_REVIEW_HERE.set(_SELF_REVIEW_HERE.get() | frozenset(nations))
    try:
        yield
    finally:
        _SELF_REVIEW_HERE.reset(token)


def is_self_review(user: UserLike, lesson: Lesson) -> bool:
    """Would ``user`` be reviewing their own work? The author is the submitter: only the
    author submits (``workflow.TRANSITIONS``)."""
    return is_author(user, lesson)


def self_review_allowed(user: UserLike, lesson: Lesson) -> bool:
    user = _real_user(user)
    return user is not None and lesson.originator_nation in self_review_nations() \
        and user.nation_code == lesson.originator_nation


def self_review_flag(user: UserLike, lesson: Lesson) -> str:
    """What the audit record says when an author decides on their own lesson under the
    exception (empty otherwise), so such reviews can be found and checked."""
    if is_self_review(user, lesson) and self_review_allowed(user, lesson):
        return f"self-review allowed for {lesson.originator_nation}"
    return ""


def _separated_refusal(user: UserLike, lesson: Lesson, what: str) -> NotAllowed | None:
    if is_self_review(user, lesson) and not self_review_allowed(user, lesson):
        return NotAllowed(f"You wrote this lesson, so you may not {what} it: another analyst "
                          f"of {lesson.originator_nation} must (separation of duties).")
    return None


def reviews_own_lesson(user: UserLike, lesson: Lesson) -> bool:
    """An analyst of the lesson's nation who wrote it and may not review it: the lesson
    page says why it offers no review buttons."""
    return is_analyst_for(user, lesson) and _separated_refusal(user, lesson, "") is not None


def _is_actor(user: UserLike, lesson: Lesson, transition: Transition) -> bool:
    if transition.actor == "author":
        return is_author(user, lesson)
    if transition.separated and _separated_refusal(user, lesson, "") is not None:
        return False
    return is_analyst_for(user, lesson)


def check_transition(user: UserLike, lesson: Lesson, to: str) -> Transition:
    """Return the transition to ``to`` if ``user`` may make it now.

    Raises ``NotFound`` if the lesson is not visible, ``InvalidTransition`` if the
    status table has no such move from the current status, ``NotAllowed`` if the move
    exists but is someone else's to make. What the move *needs* (a reason, an open
    action) is checked by the service.
    """
    require_view(user, lesson)
    transition = TRANSITIONS.get(to)
    if transition is None or lesson.status not in transition.sources:
        if to not in STATUSES:
            raise InvalidTransition(f"Unknown status {to!r}.")
        # Labels, not slugs, and no article to get wrong ("A archived lesson").
        raise InvalidTransition(
            f"The lesson's status is {STATUS_LABELS[lesson.status].lower()}; it cannot be "
            f"moved to {STATUS_LABELS[to].lower()}.")
    if transition.separated and is_analyst_for(user, lesson):
        refusal = _separated_refusal(user, lesson, transition.label.lower())
        if refusal is not None:
            raise refusal
    if not _is_actor(user, lesson, transition):
        who = "its author" if transition.actor == "author" else (
            f"an analyst of {lesson.originator_nation}")
        raise NotAllowed(f"Only {who} can move this lesson to {STATUS_LABELS[to].lower()}.")
    return transition


def allowed_transitions(user: UserLike, lesson: Lesson) -> list[Transition]:
    """The moves ``user`` could make now, in table order (the page shows these buttons)."""
    if not can_view(user, lesson):
        return []
    return [t for t in TRANSITIONS.values()
            if lesson.status in t.sources and _is_actor(user, lesson, t)]


# --- exercises -------------------------------------------------------------------------
def can_view_exercise(user: UserLike, exercise: Exercise) -> bool:
    """A participating nation's users see the exercise. Each lesson inside it is still
    checked with ``can_view`` for each viewer."""
    user = _real_user(user)
    return user is not None and user.nation_code in exercise.nations


def visible_exercises(user: UserLike) -> ColumnElement[bool]:
    """SQL filter selecting exactly the exercises ``can_view_exercise`` allows."""
    user = _real_user(user)
    if user is None:
        return false()
    return Exercise.nation_rows.any(ExerciseNation.nation_code == user.nation_code)


def require_view_exercise(user: UserLike, exercise: Exercise | None) -> Exercise:
    if exercise is None or not can_view_exercise(user, exercise):
        raise NotFound("No such exercise.")
    return exercise


def is_planner(user: UserLike) -> bool:
    user = _real_user(user)
    return user is not None and user.has_role("planner")


def can_create_exercise(user: UserLike) -> bool:
    return is_planner(user)


def can_edit_exercise(user: UserLike, exercise: Exercise) -> bool:
    """The exercise's planners (who must still hold the planner role and take part)."""
    user = _real_user(user)
    return (user is not None and can_view_exercise(user, exercise) and is_planner(user)
            and any(p.id == user.id for p in exercise.planners))


def require_edit_exercise(user: UserLike, exercise: Exercise) -> None:
    require_view_exercise(user, exercise)
    if not can_edit_exercise(user, exercise):
        raise NotAllowed("Only this exercise's planners can change it.")


def can_be_planner_of(user: User, exercise: Exercise) -> bool:
    """Who may be added as a planner: an active user with the planner role whose nation
    takes part (anyone else could not even see the exercise)."""
    return is_planner(user) and user.nation_code in exercise.nations


def releasable_to_all(lesson: Lesson, nations: list[str] | tuple[str, ...]) -> bool:
    """May ``lesson`` go to every nation in ``nations`` (a packet's audience)?"""
    return set(nations) <= set(lesson.releasable_to)


def missing_release(lesson: Lesson, nations: list[str] | tuple[str, ...]) -> list[str]:
    """The nations in ``nations`` that ``lesson`` is not releasable to, sorted."""
    return sorted(set(nations) - set(lesson.releasable_to))


def outcome_moves_at_once(user: UserLike, lesson: Lesson) -> bool:
    """An ``effective`` outcome recorded by a planner of the lesson's originator nation
    makes the lesson learned at once; from another nation it waits for an originator
    analyst (docs/ARCHITECTURE.md, section 3)."""
    user = _real_user(user)
    # The author's own outcome waits for another analyst, like their validation would.
    return (user is not None and user.nation_code == lesson.originator_nation
            and not is_foreign(lesson) and _separated_refusal(user, lesson, "") is None)


def can_decide_for_originator(user: UserLike, lesson: Lesson) -> bool:
    """Confirming an exercise outcome and deciding a release request are the originator
    analysts' calls, like validation and REL TO."""
    return can_view(user, lesson) and is_analyst_for(user, lesson)


def can_confirm_outcome(user: UserLike, lesson: Lesson) -> bool:
    """Deciding an exercise outcome on a lesson is a review of it: an originator analyst
    other than its author (separation of duties, with the same exception)."""
    return can_decide_for_originator(user, lesson) and _separated_refusal(
        user, lesson, "") is None


def require_confirm_outcome(user: UserLike, lesson: Lesson) -> None:
    """403 for the author of the lesson (the caller has checked the analyst's nation)."""
    refusal = _separated_refusal(user, lesson, "confirm the exercise outcome of")
    if refusal is not None:
        raise refusal


def can_write_observation_for(user: UserLike, exercise: Exercise) -> bool:
    """Contributors of a participating nation write observations from an exercise."""
    return can_create_lesson(user) and can_view_exercise(user, exercise)


def can_import_lessons(user: UserLike) -> bool:
    """Analysts load their nation's lessons from files (operators use the CLI)."""
    user = _real_user(user)
    return user is not None and user.has_role("analyst")


# --- users -----------------------------------------------------------------------------
def can_admin(user: UserLike) -> bool:
    user = _real_user(user)
    return user is not None and user.has_role("admin")


def require_admin(user: UserLike) -> None:
    """Admin pages and use cases (the glossary, later users and taxonomy): 403 for others.

    NotAllowed, not NotFound: the admin area's existence is no secret, only its use.
    """
    if not can_admin(user):
        raise NotAllowed("Only administrators can do this.")
