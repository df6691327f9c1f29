"""Lessons like a text: "related lessons" on a lesson's page, and "similar lessons already
exist" while a contributor writes one.

More-like-this without stored text: the index keeps no text (see ``schema``), so the
text comes from the database (or the form being written), Whoosh picks its key terms
against the content field's statistics, and an OR of those terms, weighted and spread
over the title (boosted) and the content, is ranked like a search.

Visibility is enforced as in ``search_lessons``: the query runs under the per-segment
visibility masks (minus the lesson itself), and the hits are reloaded from the database
and passed through ``can_view`` again. The key terms' weights (Bo1, as Whoosh's
more-like-this weighs them) and the BM25 ranking use statistics of the lessons the user
may see only (``rank.Collection``), and a key term no candidate holds is dropped: a
lesson the user may not see changes neither which terms are picked nor any score.

A short text (a draft's title or a line of observation, or a lesson that short: up to
``similar.SHORT_WORDS`` words) has too few words to pick key terms from; it is ranked as
the search page ranks plain words instead (``similar``), under the same visibility. On
bench/relevance.py's known-item queries typed as a draft, that put the lesson meant
first for 82% of them against 64% by key terms (``bench/relevance.py --engine
similar``). Longer texts, such as a whole lesson on its page, keep the key terms;
``text_scores`` is the key terms' ranking alone (exercise recommendations use it for a
description, and ``similar`` for a short objective).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from lessons import policy
from lessons.extensions import db
from lessons.models import Lesson, User
from lessons.rules import LINKABLE_STATUSES
from lessons.search import masks, rank, similar, store, visible_masks
from lessons.search.schema import CONTENT, CONTENT_PARTS, TITLE, TITLE_BOOST

__all__ = ["LIMIT_MAX", "lesson_text", "related_lessons", "similar_lessons", "text_scores"]

LIMIT_MAX = 20
SCORED_MAX = 500  # candidates an exercise's recommendations consider per text
# Terms in the query: enough to characterise a lesson, few enough to stay fast.
KEY_TERMS = 12
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
    being edited) and withdrawn lessons (they are offered as lessons to link to). Empty
    when there is nothing to compare. Reads only."""
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
    limit = max(0, min(limit, LIMIT_MAX))
    whole = f"{title}\n\n{text}".strip()
    if similar.is_short(whole):
        ids = [lesson_id for lesson_id, _, _ in similar.scored(
            user, whole, limit, exclude_id, statuses=LINKABLE_STATUSES)]
    else:
        ids = [lesson_id for lesson_id, _, _ in _scored(
            user, title, text, limit, exclude_id, statuses=LINKABLE_STATUSES)]
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
    visible = visible_masks(user, leaves)
    allowed = visible
    if exclude_id is not None:
        allowed = [mask & ~leaf.term("lesson_id", str(exclude_id)) if mask else 0
                   for leaf, mask in zip(leaves, allowed, strict=True)]
    if statuses is not None:
        allowed = [masks.any_term(leaf, "status", statuses) & mask if mask else 0
                   for leaf, mask in zip(leaves, allowed, strict=True)]
    if not any(allowed):
        return []
    collection = rank.Collection(leaves, visible)
    terms = _key_terms(searcher, collection, allowed, whole)
    if not terms:
        return []
    holding = {term: [leaf.term(TITLE, term) | leaf.term(CONTENT, term) for leaf in leaves]
               for term, _ in terms}
    # Only lessons holding a key term are like the text at all.
    allowed = [mask & _union(masks_[i] for masks_ in holding.values()) if mask else 0
               for i, mask in enumerate(allowed)]
    weighted = [(field, term, boost * weight) for term, weight in terms
                for field, boost in ((TITLE, TITLE_BOOST), (CONTENT, 1.0))]
    hits = rank.scored(collection, allowed, weighted, limit)
    found = []
    if coverage:
        # Out of the text's own words (up to KEY_TERMS), not just those some lesson
        # holds: an objective of four words sharing one of them with a lesson is a
        # quarter covered.
        words = {token.text for token in searcher.schema[CONTENT].analyzer(whole)}
        out_of = max(1, min(len(words), KEY_TERMS))
    for docnum, score in hits:
        share = 0.0
        if coverage:
            i = masks.leaf_index(leaves, docnum)
            bit = 1 << (docnum - leaves[i].offset)
            share = min(1.0, sum(1 for held in holding.values() if held[i] & bit) / out_of)
        found.append((int(searcher.stored_fields(docnum)["lesson_id"]), score, share))
    return found


def _union(parts) -> int:
    mask = 0
    for part in parts:
        mask |= part
    return mask


def _key_terms(searcher, collection: rank.Collection, allowed: list[int],
               text: str) -> list[tuple[str, float]]:
    """The text's most telling content terms that some allowed lesson holds, weighted
    as Whoosh's Bo1 model weighs them (its ``key_terms_from_text``), but against the
    collection the user may see rather than the whole index."""
    in_text: dict[str, float] = {}
    for token in searcher.schema[CONTENT].index(text):
        word = token[0].decode("utf-8") if isinstance(token[0], bytes) else token[0]
        in_text[word] = in_text.get(word, 0.0) + token[2]
    text_total = sum(in_text.values())
    size = max(collection.count, 1)
    weights: list[tuple[float, str]] = []
    for word, weight in in_text.items():
        occurrences = collection.held(CONTENT, word)[1]
        if occurrences <= 0:
            continue  # in no lesson the user may see
        f = occurrences / size
        weights.append((weight * math.log2((1 + f) / f) + math.log2(1 + f), word))
    if not weights or not text_total:
        return []
    most = max(weight for weight, _ in weights)
    f = most / size
    norm = most * math.log2((1 + f) / f) + math.log2(1 + f)
    kept: list[tuple[str, float]] = []
    for weight, word in sorted(weights, key=lambda item: (-item[0], item[1])):
        if weight <= 0 or not norm:
            break
        if any(leaf.term(CONTENT, word) & mask
               for leaf, mask in zip(collection.leaves, allowed, strict=True) if mask):
            kept.append((word, weight / norm))
            if len(kept) == KEY_TERMS:
                break
    return kept
