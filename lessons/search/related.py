"""Lessons like a text: "related lessons" on a lesson's page, and "similar lessons already
exist" while a contributor writes one.

More-like-this without stored text: the index keeps no text (see ``schema``), so the
text comes from the database (or the form being written), Whoosh picks its key terms
against the content field's statistics, and an OR of those terms, weighted and spread
over the title (boosted) and the content, is ranked like a search.

Visibility is enforced as in ``search_lessons``: the query runs under the per-segment
visibility masks (minus the lesson itself), and the hits are reloaded from the database
and passed through ``can_view`` again. A key term that occurs in no lesson the user may
see is dropped before querying, so a word found only in hidden lessons never steers the
list. What remains is the whole-index term statistics behind the weights and the BM25
ranking, exactly as the search page ranks: a hidden lesson can shift scores as one
document among all, never add or remove an entry by itself appearing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from whoosh.query import Or, Term

from lessons import policy
from lessons.extensions import db
from lessons.models import Lesson, User
from lessons.search import masks, store, visible_masks
from lessons.search.schema import CONTENT, CONTENT_PARTS, TITLE, TITLE_BOOST

__all__ = ["LIMIT_MAX", "lesson_text", "related_lessons", "similar_lessons", "text_scores"]

LIMIT_MAX = 20
SCORED_MAX = 500  # candidates an exercise's recommendations consider per text
# Terms in the query: enough to characterise a lesson, few enough to stay fast.
KEY_TERMS = 12
# Candidates asked of Whoosh, so that dropping terms no visible lesson holds still
# leaves KEY_TERMS.
_CANDIDATE_TERMS = 3 * KEY_TERMS
# The start of a long lesson says what it is about; analysing 350,000 characters on
# every page view would not say more.
TEXT_MAX = 20_000


def lesson_text(values: Lesson | Mapping[str, Any]) -> str:
    """The text a lesson (or a form's values) is compared by: the parts the index's
    content field holds, in its order."""
    if isinstance(values, Lesson):
        parts = [getattr(values, name) or "" for name in CONTENT_PARTS]
    else:
        parts = [str(values.get(name) or "") for name in CONTENT_PARTS]
    return "\n\n".join(part for part in parts if part)


def related_lessons(user: User, lesson: Lesson, limit: int = 5) -> list[Lesson]:
    """Up to ``limit`` lessons ``user`` may see whose text is most like ``lesson``'s,
    best first; never ``lesson`` itself. Empty if ``user`` may not see ``lesson``.
    Reads only; opens (or refreshes) this thread's searcher."""
    if not policy.can_view(user, lesson):
        return []
    return _like(user, lesson.title or "", lesson_text(lesson), limit, exclude_id=lesson.id)


def similar_lessons(user: User, title: str, text: str, limit: int = 5,
                    exclude_id: int | None = None) -> list[Lesson]:
    """Up to ``limit`` lessons ``user`` may see most like a lesson being written with
    ``title`` and ``text``, best first, leaving out the lesson ``exclude_id`` (the one
    being edited). Empty when there is nothing to compare. Reads only."""
    return _like(user, title or "", text or "", limit, exclude_id=exclude_id)


def text_scores(user: User, text: str, limit: int = 100,
                statuses: tuple[str, ...] | None = None) -> list[tuple[int, float, float]]:
    """``(lesson id, score, coverage)`` for up to ``limit`` lessons ``user`` may see that
    are most like ``text`` (an exercise's description or objective), best first; only
    lessons in ``statuses`` when given. Scores are BM25 over the text's key terms,
    comparable within one call only; coverage is the share of those key terms the
    lesson holds (one common word shared is not a match, however it ranks). Reads only;
    the caller reloads lessons through the policy."""
    return _scored(user, "", text or "", max(0, min(limit, SCORED_MAX)), exclude_id=None,
                   statuses=statuses, coverage=True)


def _like(user: User, title: str, text: str, limit: int,
          exclude_id: int | None) -> list[Lesson]:
    scored = _scored(user, title, text, max(0, min(limit, LIMIT_MAX)), exclude_id)
    ids = [lesson_id for lesson_id, _, _ in scored]
    if not ids:
        return []
    found = {lesson.id: lesson for lesson in db.session.scalars(
        select(Lesson).where(Lesson.id.in_(ids)))}
    # Second guard, in rank order: the database is the truth.
    return [found[i] for i in ids
            if i in found and i != exclude_id and policy.can_view(user, found[i])]


def _scored(user: User, title: str, text: str, limit: int, exclude_id: int | None,
            statuses: tuple[str, ...] | None = None,
            coverage: bool = False) -> list[tuple[int, float, float]]:
    whole = f"{title}\n\n{text}".strip()[:TEXT_MAX]
    if not limit or not whole:
        return []
    generation, searcher = store().searcher_with_generation()
    leaves = masks.leaves(searcher, generation)
    if not leaves:
        return []
    allowed = visible_masks(user, leaves)
    if exclude_id is not None:
        allowed = [mask & ~leaf.term("lesson_id", str(exclude_id)) if mask else 0
                   for leaf, mask in zip(leaves, allowed, strict=True)]
    if statuses is not None:
        allowed = [_any_of(leaf, "status", statuses) & mask if mask else 0
                   for leaf, mask in zip(leaves, allowed, strict=True)]
    if not any(allowed):
        return []
    terms = _key_terms(searcher, leaves, allowed, whole)
    if not terms:
        return []
    like = Or([Or([Term(TITLE, term, boost=TITLE_BOOST * weight),
                   Term(CONTENT, term, boost=weight)]) for term, weight in terms])
    hits = searcher.search(like, limit=limit, filter=masks.MaskSet(leaves, allowed),
                           terms=coverage)
    if not coverage:
        return [(int(hit["lesson_id"]), float(hit.score), 0.0) for hit in hits]
    # Out of the text's own words (up to KEY_TERMS), not just those some lesson holds:
    # an objective of four words sharing one of them with a lesson is a quarter covered.
    words = {token.text for token in searcher.schema[CONTENT].analyzer(whole)}
    out_of = max(1, min(len(words), KEY_TERMS))
    return [(int(hit["lesson_id"]), float(hit.score),
             min(1.0, len({term for _, term in hit.matched_terms()}) / out_of)) for hit in hits]


def _any_of(leaf: masks.Leaf, fieldname: str, values: tuple[str, ...]) -> int:
    mask = 0
    for value in values:
        mask |= leaf.term(fieldname, value)
    return mask


def _key_terms(searcher, leaves: list[masks.Leaf], allowed: list[int],
               text: str) -> list[tuple[str, float]]:
    """The text's most telling content terms that some allowed lesson holds, with
    Whoosh's (Bo1) weights."""
    kept: list[tuple[str, float]] = []
    for term, weight in searcher.key_terms_from_text(CONTENT, text,
                                                     numterms=_CANDIDATE_TERMS):
        if weight <= 0:
            continue
        if any(leaf.term(CONTENT, term) & mask
               for leaf, mask in zip(leaves, allowed, strict=True) if mask):
            kept.append((term, weight))
            if len(kept) == KEY_TERMS:
                break
    return kept
