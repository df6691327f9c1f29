"""Ranking the allowed documents: BM25 accumulated straight from the postings.

The masks already say which documents match (words, filters and the user's visibility);
what is left is ordering them. Whoosh's collector walks a tree of matchers per document
(several Python calls per match and per tree node) and checks the filter on every
match; at 100,000 lessons that was three quarters of a search. Here each query word's
postings (as arrays, shared with the masks: see ``postings`` and ``Leaf.postings``) are
added into a score table: one vectorised multiply-add per posting, then the best
``need`` allowed documents are taken from the table.

Scores are Okapi BM25, title words weighted by the title boost; phrase words score as
words (the masks have already required the phrase). Wildcard and fuzzy parts add their
boost to each document they match, as Whoosh scores them (``scored``'s ``constant``).

Every statistic behind a score (the document count, each word's document frequency, the
average field lengths) is counted over the documents the user may see (``Collection``),
never the whole index: otherwise a score or an order would change when a lesson the user
may not see were added, edited or removed, and so tell them it exists and what it says.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from whoosh.query import FuzzyTerm, Not, Phrase, Prefix, Query, Term, Wildcard

from lessons.search import masks, postings
from lessons.search.schema import CONTENT, FILES, TITLE

K1 = 1.2
B = 0.75
SCORED_FIELDS = (TITLE, CONTENT, FILES)


class NotRankable(Exception):
    """The query has parts only Whoosh can expand (wildcards, fuzzy terms)."""


def scored_terms(query: Query) -> list[tuple[str, str, float]]:
    """(field, text, boost) of every positive word of the query in the scored fields.
    Raises ``NotRankable`` for a query with wildcard or fuzzy parts (see ``parts``)."""
    terms, expanding = parts(query)
    if expanding:
        raise NotRankable
    return terms


def parts(query: Query) -> tuple[list[tuple[str, str, float]], list[tuple[Query, float]]]:
    """The positive words of the query in the scored fields, and its positive wildcard
    and fuzzy parts there, each with its boost."""
    found: dict[tuple[str, str], float] = {}
    expanding: list[tuple[Query, float]] = []

    def walk(node: Query, boost: float) -> None:
        if isinstance(node, Not):
            return
        if isinstance(node, (Wildcard, Prefix, FuzzyTerm)) and node.field() in SCORED_FIELDS:
            expanding.append((node, boost * node.boost))
            return
        if isinstance(node, Term) and node.fieldname in SCORED_FIELDS:
            key = (node.fieldname, str(node.text))
            found[key] = max(found.get(key, 0.0), boost * node.boost)
            return
        if isinstance(node, Phrase) and node.fieldname in SCORED_FIELDS:
            for word in node.words:
                key = (node.fieldname, str(word))
                found[key] = max(found.get(key, 0.0), boost * node.boost)
            return
        if not node.is_leaf():
            for child in node.children():
                walk(child, boost * getattr(node, "boost", 1.0))

    walk(query, 1.0)
    return [(field, text, boost) for (field, text), boost in found.items()], expanding


def _as_bools(mask: int, size: int) -> np.ndarray:
    data = np.frombuffer(mask.to_bytes((size + 7) >> 3, "little"), np.uint8)
    return np.unpackbits(data, bitorder="little")[:size].astype(bool)


class Collection:
    """The documents a user may see, counted as ranking needs them.

    ``visible`` is the user's visibility mask per segment (live documents only), so
    nothing here depends on a document outside it. Counts come from the postings and
    field lengths the masks already keep, a few numpy operations per word."""

    def __init__(self, leaves: list[masks.Leaf], visible: list[int]) -> None:
        self.leaves = leaves
        self.count = masks.popcount(visible)
        self._seen = [_as_bools(mask, leaf.masks.size) if mask else None
                      for leaf, mask in zip(leaves, visible, strict=True)]
        self._averages: dict[str, float] = {}
        self._held: dict[tuple[str, str], tuple[int, float]] = {}

    def held(self, field: str, text: str) -> tuple[int, float]:
        """(How many visible documents hold the word, how often it occurs in them)."""
        key = (field, text)
        found = self._held.get(key)
        if found is None:
            docs, occurrences = 0, 0.0
            for leaf, seen in zip(self.leaves, self._seen, strict=True):
                if seen is None:
                    continue
                posted = leaf.postings(field, text)
                if not len(posted):
                    continue
                keep = seen[posted.ids]
                docs += int(np.count_nonzero(keep))
                occurrences += float(posted.weights[keep].sum(dtype=np.float64))
            found = self._held[key] = (docs, occurrences)
        return found

    def idf(self, field: str, text: str) -> float:
        total = max(self.count, 1)
        df = self.held(field, text)[0]
        return math.log(1 + (total - df + 0.5) / (df + 0.5))

    def average_length(self, field: str) -> float:
        """Words per visible document in ``field`` (1 when there are none): field
        lengths are whole numbers, so the sum is exact whatever the segments."""
        found = self._averages.get(field)
        if found is None:
            total = sum(float(leaf.lengths(field)[seen].sum())
                        for leaf, seen in zip(self.leaves, self._seen, strict=True)
                        if seen is not None)
            found = self._averages[field] = (total / self.count if self.count else 0.0) or 1.0
        return found


def _bm25(idf: float, tf, length, average: float):
    return idf * (K1 + 1) * tf / (tf + K1 * (1 - B) + (K1 * B / average) * length)


def scored(collection: Collection, allowed: list[int], terms: list[tuple[str, str, float]],
           need: int, constant: list[tuple[Query, float]] | None = None,
           ) -> list[tuple[int, float]]:
    """Global document numbers of the ``need`` best allowed documents, best first, each
    with its score; ties (and allowed documents no scored word reaches, e.g. matched by
    a filter alone) in lesson id order, so every page is cut from the same order
    (document order would change with merges, which lessons the user may not see can
    set off). A ``constant`` part (wildcard or fuzzy: Whoosh expands it into the
    documents it matches, ``Leaf.query``) adds its boost to every document it matches,
    as Whoosh's own scoring of these parts does."""
    idf = {(field, text): collection.idf(field, text) for field, text, _boost in terms}
    average = {field: collection.average_length(field) for field in SCORED_FIELDS}
    best: list[tuple[float, int, int]] = []  # score, minus the lesson id, document
    for leaf, mask in zip(collection.leaves, allowed, strict=True):
        if not mask:
            continue
        scores = np.zeros(leaf.masks.size, dtype=np.float64)
        for field, text, boost in terms:
            found = leaf.postings(field, text)  # empty for a word not in the segment
            if not len(found):
                continue
            docs = found.ids
            scores[docs] += boost * _bm25(idf[field, text], found.weights.astype(np.float64),
                                          leaf.lengths(field)[docs], average[field])
        for part, boost in constant or ():
            scores[masks.mask_to_ids(leaf.query(part, mask))] += boost
        candidates = np.flatnonzero(_as_bools(mask, leaf.masks.size))
        ids = leaf.lesson_ids()[candidates]
        order = np.lexsort((ids, -scores[candidates]))[:need]
        best.extend((float(scores[candidates[i]]), -int(ids[i]), leaf.offset + int(candidates[i]))
                    for i in order)
    best = heapq.nlargest(need, best, key=lambda item: item[:2])
    return [(doc, score) for score, _, doc in best]


def newest(leaves: list[masks.Leaf], allowed: list[int], need: int) -> list[int]:
    """Global document numbers of the ``need`` newest allowed documents; equal dates in
    lesson id order."""
    best: list[tuple[int, int, int]] = []
    for leaf, mask in zip(leaves, allowed, strict=True):
        if not mask:
            continue
        dates, ids = leaf.dates(), leaf.lesson_ids()
        candidates = ((dates[doc], -int(ids[doc]), leaf.offset + doc)
                      for doc in masks.mask_to_ids(mask))
        best = heapq.nlargest(need, [*best, *heapq.nlargest(need, candidates)])
    return [doc for _, _, doc in best]


# Ranked plain words (``natural_scored``). Each figure was chosen on bench/relevance.py's
# known-item queries (see the README's "Search relevance").
COORDINATION = 1.0  # score x (share of the query's word weight a lesson holds) ** this
PROXIMITY = 1.0  # per pair of query words found close together, x the rarer one's idf
PROXIMITY_WINDOW = 4  # words apart, at most, for a pair to count as close
RERANKED = 30  # the best documents re-ranked by proximity (bounded work per query)


Term3 = tuple[str, str, float]


def natural_scored(collection: Collection, allowed: list[int], clauses: list[list[Term3]],
                   extra: list[Term3], need: int,
                   constant: list[tuple[Query, float]] | None = None,
                   ) -> list[tuple[int, float]]:
    """Global document numbers of the ``need`` best allowed documents for ranked plain
    words, best first, ties in lesson id order.

    BM25 over every word (``clauses``: one list of terms per query word with its
    glossary equivalents, ``extra``: the terms of the strict parts), times the share of
    the words' weight (each word weighs its idf: missing "our" costs little, missing
    "crane" much) the document holds, so lessons holding more of the words rank
    higher; then the best ``RERANKED`` gain for pairs of the words found close
    together. Every statistic is the visible collection's (see ``Collection``)."""
    weights = [max((collection.idf(field, text) for field, text, _ in clause), default=0.0)
               for clause in clauses]
    whole = sum(weights) or 1.0
    terms = [term for clause in clauses for term in clause] + extra
    idf = {(field, text): collection.idf(field, text) for field, text, _ in terms}
    average = {field: collection.average_length(field) for field in SCORED_FIELDS}
    best: list[tuple[float, int, int]] = []
    for leaf, mask in zip(collection.leaves, allowed, strict=True):
        if not mask:
            continue
        size = leaf.masks.size
        scores = np.zeros(size, dtype=np.float64)
        held = np.zeros(size, dtype=np.float64)
        for clause, weight in zip(clauses, weights, strict=True):
            holds = np.zeros(size, dtype=bool)
            for field, text, boost in clause:
                found = leaf.postings(field, text)
                if not len(found):
                    continue
                docs = found.ids
                scores[docs] += boost * _bm25(idf[field, text], found.weights.astype(np.float64),
                                              leaf.lengths(field)[docs], average[field])
                holds[docs] = True
            held += weight * holds
        for field, text, boost in extra:
            found = leaf.postings(field, text)
            if len(found):
                docs = found.ids
                scores[docs] += boost * _bm25(idf[field, text], found.weights.astype(np.float64),
                                              leaf.lengths(field)[docs], average[field])
        for part, boost in constant or ():
            scores[masks.mask_to_ids(leaf.query(part, mask))] += boost
        scores *= (held / whole) ** COORDINATION
        candidates = np.flatnonzero(_as_bools(mask, size))
        ids = leaf.lesson_ids()[candidates]
        order = np.lexsort((ids, -scores[candidates]))[:max(need, RERANKED)]
        best.extend((float(scores[candidates[i]]), -int(ids[i]), leaf.offset + int(candidates[i]))
                    for i in order)
    best = heapq.nlargest(max(need, RERANKED), best, key=lambda item: item[:2])
    if PROXIMITY and len(clauses) > 1:
        head = _closeness(collection, best[:RERANKED], clauses, weights)
        best = sorted(head, key=lambda item: (-item[0], -item[1])) + best[RERANKED:]
    return [(doc, score) for score, _, doc in best[:need]]


def _closeness(collection: Collection, head: list[tuple[float, int, int]],
               clauses: list[list[Term3]], weights: list[float],
               ) -> list[tuple[float, int, int]]:
    """``head`` with each document's score raised for every pair of query words it
    holds within ``PROXIMITY_WINDOW`` words of each other in its text,
    by ``PROXIMITY`` times the rarer word's weight. Reads positions of these documents
    only."""
    by_leaf: dict[int, list[int]] = {}
    for _, _, doc in head:
        by_leaf.setdefault(_leaf_index(collection.leaves, doc), []).append(doc)
    bonus: dict[int, float] = {}
    for index, docs in by_leaf.items():
        leaf = collection.leaves[index]
        local = np.asarray(sorted(doc - leaf.offset for doc in docs), dtype=np.int64)
        reader = leaf.searcher.reader()
        # For each document, each clause's positions in the text (pairs in the title,
        # a few words long, told nothing on the evaluation and cost as much again).
        where: dict[int, list[np.ndarray]] = {}
        for c, clause in enumerate(clauses):
            for field, text, _ in clause:
                if field != CONTENT:
                    continue
                doc_of, at = postings.positions(reader, field, text, local)
                for doc in np.unique(doc_of).tolist():
                    where.setdefault(doc, [np.zeros(0, np.int64)] * len(clauses))
                    lists = where[doc]
                    lists[c] = np.concatenate((lists[c], at[doc_of == doc]))
        for doc, lists in where.items():
            gain = 0.0
            for i in range(len(clauses)):
                if not len(lists[i]):
                    continue
                a = np.sort(lists[i])
                for j in range(i + 1, len(clauses)):
                    if not len(lists[j]):
                        continue
                    b = lists[j]
                    k = np.clip(np.searchsorted(a, b), 1, len(a)) - 1
                    near = np.minimum(np.abs(a[k] - b),
                                      np.abs(a[np.minimum(k + 1, len(a) - 1)] - b))
                    if near.min() <= PROXIMITY_WINDOW:
                        gain += min(weights[i], weights[j])
            bonus[leaf.offset + doc] = PROXIMITY * gain
    return [(score + bonus.get(doc, 0.0), lesson, doc) for score, lesson, doc in head]


def _leaf_index(leaves: list[masks.Leaf], doc: int) -> int:
    for i in range(len(leaves) - 1, -1, -1):
        if doc >= leaves[i].offset:
            return i
    raise ValueError(doc)
