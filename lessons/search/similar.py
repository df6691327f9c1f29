"""A short text ranked as the search page ranks plain words: for "similar lessons" while
a contributor writes one (a title, a line of observation), related lessons of a lesson
that short, and the text score of exercise recommendations for a short objective.

A short draft is a query in all but name: the words someone types when they have the
problem. Picking key terms by Bo1 (``related``) needs text to pick from; for a dozen
words the search ranking (glossary, spelling folding, BM25 times the share of the words'
weight a lesson holds, word pairs found close together; see ``rank.natural_scored``)
found the lesson meant first far more often on bench/relevance.py's known-item queries
(see the README's "Search relevance").

The text is taken as words only, never as the query language: a draft's "NOT",
"status:" or "-" is prose, not an operator or a filter. Visibility as in
``search_lessons``: the words match within the user's visibility masks, and every
statistic behind a score is the visible collection's (``rank.Collection``), so a lesson
the user may not see changes no score, order or count. The caller reloads the lessons
and checks ``can_view`` again.
"""

from __future__ import annotations

import re

from lessons.search import TooBroad, current_glossary, masks, query, rank, store, visible_masks

__all__ = ["SHORT_WORDS", "is_short", "scored"]

# Up to this many words a text is ranked as a search (the known-item queries it was
# measured on hold 4 to 12 words; a title with a line of observation holds about 20).
SHORT_WORDS = 24
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")  # "other's" is one word


def words(text: str) -> list[str]:
    """The text's words, lower-cased (so "NOT" or "OR" in a sentence is a word)."""
    return [word.lower() for word in _WORD.findall(text or "")]


def is_short(text: str) -> bool:
    """Whether ``text`` is short enough to be ranked as a search."""
    return 0 < len(words(text)) <= SHORT_WORDS


def scored(user, text: str, limit: int, exclude_id: int | None = None,
           statuses: tuple[str, ...] | None = None) -> list[tuple[int, float, float]]:
    """``(lesson id, score, share)`` of up to ``limit`` lessons ``user`` may see, best
    first, for the words of ``text`` ranked as the search ranks plain words; leaving out
    ``exclude_id``, and lessons not in ``statuses`` when given. ``share`` is the part of
    the words' weight (each word weighs its idf over the visible lessons, glossary
    equivalents counting as the word) the lesson holds: sharing "the crane" with a text
    about a crane's brakes is most of it, sharing "weather" little. Empty when the text
    has no word a lesson could hold, or more glossary equivalents than one search may
    use. Reads only."""
    plain = " ".join(words(text)[:SHORT_WORDS])
    if not plain or limit <= 0:
        return []
    try:
        parsed = query.parse(plain, current_glossary())
    except TooBroad:
        return []
    generation, searcher = store().searcher_with_generation()
    leaves = masks.leaves(searcher, generation)
    if not leaves:
        return []
    visible = visible_masks(user, leaves)
    allowed = [leaf.query(parsed.query, mask) if mask else 0
               for leaf, mask in zip(leaves, visible, strict=True)]
    if exclude_id is not None:
        allowed = [mask & ~leaf.term("lesson_id", str(exclude_id)) if mask else 0
                   for leaf, mask in zip(leaves, allowed, strict=True)]
    if statuses is not None:
        allowed = [mask & masks.any_term(leaf, "status", statuses) if mask else 0
                   for leaf, mask in zip(leaves, allowed, strict=True)]
    if not any(allowed):
        return []
    collection = rank.Collection(leaves, visible)
    if parsed.clauses:
        clauses = [rank.scored_terms(clause) for clause in parsed.clauses]
        hits = rank.natural_scored(collection, allowed, clauses, [], limit)
    else:  # one word (with its equivalents)
        terms, constant = rank.parts(parsed.query)
        clauses = [terms]
        hits = rank.scored(collection, allowed, terms, limit, constant)
    weights = [max((collection.idf(field, word) for field, word, _ in clause), default=0.0)
               for clause in clauses]
    whole = sum(weights) or 1.0
    found = []
    for doc, score in hits:
        leaf = leaves[masks.leaf_index(leaves, doc)]
        bit = 1 << (doc - leaf.offset)
        held = sum(weight for clause, weight in zip(clauses, weights, strict=True)
                   if any(leaf.term(field, word) & bit for field, word, _ in clause))
        found.append((int(searcher.stored_fields(doc)["lesson_id"]), score, held / whole))
    return found


