"""Lessons worth taking up in an exercise, ranked, each with the reasons why.

The score blends four signals a planner can check for themselves, and each one that
counts is said in words beside the lesson:
- text similarity to the exercise's description and to each training objective
  (through the search service, so only lessons the planner may see take part): a short
  text, as an objective mostly is, ranked as the search page ranks its words (glossary
  equivalents included), a longer one by its key terms (see ``_text_scores``);
- tags shared with the exercise;
- nations involved in the lesson that take part in the exercise;
- status: validated and action-assigned lessons (identified, not yet proven) above
  learned ones, and lessons still awaiting validation below both. Drafts, withdrawn,
  rejected and archived lessons never appear.
Lessons already attached to the exercise are left out: they are on its page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select

from lessons import policy
from lessons.extensions import db
from lessons.models import Exercise, ExerciseLesson, Lesson, Tag, User
from lessons.models.lesson import lesson_tags
from lessons.rules import DOMAINS, KINDS
from lessons.search import related, similar
from lessons.services import exercises as exercise_service

STATUS_WEIGHT = {"validated": 1.0, "action_assigned": 1.0, "learned": 0.6, "submitted": 0.4}
RECOMMENDABLE = tuple(STATUS_WEIGHT)
# How much each signal weighs; text carries most, as it does for a human reader.
W_TEXT, W_TAGS, W_NATIONS = 0.55, 0.30, 0.15
# A lesson "matches" an objective (or the description) from this similarity up.
OBJECTIVE_MATCH = 0.4
TEXT_CANDIDATES = 200
TAG_CANDIDATES = 500
RECOMMENDATIONS_MAX = 50


@dataclass
class Recommendation:
    lesson: Lesson
    score: float
    reasons: list[str]
    shared_tags: list[str]
    objectives: list[int]  # positions (1-based) of the objectives it matches
    shared_nations: list[str]
    releasable_to_all: bool
    missing_release: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RecommendationFilter:
    kind: str = ""
    domain: str = ""
    tag: str = ""

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> RecommendationFilter:
        kind, domain = args.get("kind", ""), args.get("domain", "")
        tag = " ".join(str(args.get("tag", "")).split()).lower()[:100]
        return cls(kind=kind if kind in KINDS else "", domain=domain if domain in DOMAINS
                   else "", tag=tag)


def _text_scores(user: User, text: str, statuses: tuple[str, ...] | None = RECOMMENDABLE,
                 ) -> list[tuple[int, float, float]]:
    """``(lesson id, score, share of the text held)`` for the lessons most like ``text``.

    A short text is ranked as a search (``similar``), its share being the part of its
    words' weight a lesson holds: on bench/relevance.py's known-item queries as one
    objective (``--engine similar``), that put the lesson meant first for 81% of them
    and in the first ten for 96%, against 80% and 95% by key terms. A longer text (a
    description) is ranked by its key terms, its share being that of the key terms."""
    if similar.is_short(text):
        return similar.scored(user, text, TEXT_CANDIDATES, statuses=statuses)
    return related.text_scores(user, text, TEXT_CANDIDATES, statuses)


def _similarity(scored: list[tuple[int, float, float]]) -> dict[int, float]:
    """Similarity in [0, 1]: the score relative to the best match, damped by the share
    of the text the lesson holds, so a lesson sharing one common word with a short
    objective does not count as matching it."""
    best = max((score for _, score, _ in scored), default=0.0)
    if best <= 0:
        return {}
    return {lesson_id: (score / best) * covered for lesson_id, score, covered in scored}


def _tag_candidates(user: User, tags: list[str]) -> set[int]:
    # In id order: which lessons make the cut must not depend on the rows' storage order,
    # which other lessons' writes (ones the user may not see, too) can change.
    if not tags:
        return set()
    return set(db.session.scalars(
        select(Lesson.id).join(lesson_tags, lesson_tags.c.lesson_id == Lesson.id)
        .join(Tag, Tag.id == lesson_tags.c.tag_id)
        .where(Tag.name.in_(tags), Lesson.status.in_(RECOMMENDABLE),
               policy.visible_lessons(user))
        .distinct().order_by(Lesson.id).limit(TAG_CANDIDATES)))


def recommend(user: User, exercise_id: str, flt: RecommendationFilter | None = None,
              limit: int = 20) -> list[Recommendation]:
    """Ranked lessons for ``exercise_id`` that ``user`` may see and the exercise has not
    taken up, best first. Reads only; ``NotFound`` for an exercise not visible."""
    exercise = exercise_service.get_exercise(user, exercise_id)
    flt = flt or RecommendationFilter()
    limit = max(1, min(limit, RECOMMENDATIONS_MAX))
    description = "\n\n".join(part for part in (exercise.name, exercise.description) if part)
    overall = _similarity(_text_scores(user, description))
    per_objective = [_similarity(_text_scores(user, objective.text))
                     for objective in exercise.objectives]
    candidates = set(overall) | _tag_candidates(user, exercise.tags)
    for scores in per_objective:
        candidates |= set(scores)
    attached = set(db.session.scalars(select(ExerciseLesson.lesson_id).where(
        ExerciseLesson.exercise_id == exercise.id)))
    candidates -= attached
    if not candidates:
        return []
    lessons = db.session.scalars(select(Lesson).where(
        Lesson.id.in_(sorted(candidates)), Lesson.status.in_(RECOMMENDABLE),
        policy.visible_lessons(user)))
    results = [_score(lesson, exercise, overall, per_objective) for lesson in lessons
               if policy.can_view(user, lesson) and _passes(lesson, flt)]
    results.sort(key=lambda r: (-r.score, r.lesson.title.lower(), r.lesson.public_id))
    return results[:limit]


def _passes(lesson: Lesson, flt: RecommendationFilter) -> bool:
    return ((not flt.kind or lesson.kind == flt.kind)
            and (not flt.domain or flt.domain in lesson.domains)
            and (not flt.tag or flt.tag in lesson.tags))


def _score(lesson: Lesson, exercise: Exercise, overall: dict[int, float],
           per_objective: list[dict[int, float]]) -> Recommendation:
    matched = [position for position, scores in enumerate(per_objective, start=1)
               if scores.get(lesson.id, 0.0) >= OBJECTIVE_MATCH]
    text = max([overall.get(lesson.id, 0.0)]
               + [scores.get(lesson.id, 0.0) for scores in per_objective])
    shared_tags = sorted(set(lesson.tags) & set(exercise.tags))
    tag_score = len(shared_tags) / len(exercise.tags) if exercise.tags else 0.0
    participants = set(exercise.nations)
    shared_nations = sorted(set(lesson.nations) & participants)
    nation_score = len(shared_nations) / len(participants) if participants else 0.0
    score = (W_TEXT * text + W_TAGS * tag_score + W_NATIONS * nation_score) \
        * STATUS_WEIGHT[lesson.status]
    reasons: list[str] = []
    if shared_tags:
        reasons.append(f"shares tags: {', '.join(shared_tags)}")
    if matched:
        reasons.append(("matches objective " if len(matched) == 1 else "matches objectives ")
                       + ", ".join(str(p) for p in matched))
    elif overall.get(lesson.id, 0.0) >= OBJECTIVE_MATCH:
        reasons.append("text close to the exercise description")
    if shared_nations:
        joined = (" and ".join(shared_nations) if len(shared_nations) <= 2
                  else ", ".join(shared_nations))
        reasons.append(f"involves {joined}")
    if lesson.status == "learned":
        reasons.append("already learned: worth re-checking")
    elif lesson.status == "submitted":
        reasons.append("not yet validated")
    missing = policy.missing_release(lesson, sorted(participants))
    return Recommendation(lesson=lesson, score=round(score, 4), reasons=reasons,
                          shared_tags=shared_tags, objectives=matched,
                          shared_nations=shared_nations, releasable_to_all=not missing,
                          missing_release=missing)
