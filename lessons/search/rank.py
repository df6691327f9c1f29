"""Ranking the allowed documents: BM25 accumulated straight from the postings.

The masks already say which documents match (words, filters and the user's visibility);
what is left is ordering them. Whoosh's collector walks a tree of matchers per document
(several Python calls per match and per tree node) and checks the filter on every
match; at 100,000 lessons that was three quarters of a search. Here each query word's
postings (as arrays, shared with the masks: see ``postings`` and ``Leaf.postings``) are
added into a score table: one vectorised multiply-add per posting, then the best
``need`` allowed documents are taken from the table.

Scores are Okapi BM25 with the index's global statistics, title words weighted by the
title boost; phrase words score as words (the masks have already required the phrase).
Queries with wildcard or fuzzy parts go to Whoosh, which expands them.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from whoosh.query import FuzzyTerm, Not, Phrase, Prefix, Query, Term, Wildcard
from whoosh.searching import Searcher

from lessons.search import masks
from lessons.search.schema import CONTENT, TITLE

K1 = 1.2
B = 0.75
SCORED_FIELDS = (TITLE, CONTENT)


class NotRankable(Exception):
    """The query has parts only Whoosh can expand (wildcards, fuzzy terms)."""


def scored_terms(query: Query) -> list[tuple[str, str, float]]:
    """(field, text, boost) of every positive word of the query in the scored fields."""
    found: dict[tuple[str, str], float] = {}

    def walk(node: Query, boost: float) -> None:
        if isinstance(node, Not):
            return
        if isinstance(node, (Wildcard, Prefix, FuzzyTerm)) and node.field() in SCORED_FIELDS:
            raise NotRankable
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
    return [(field, text, boost) for (field, text), boost in found.items()]


def top(searcher: Searcher, leaves: list[masks.Leaf], allowed: list[int],
        terms: list[tuple[str, str, float]], need: int) -> list[int]:
    """Global document numbers of the ``need`` best allowed documents, best first; ties
    (and allowed documents no scored word reaches, e.g. matched by a filter alone) in
    document order, so every page is cut from the same order."""
    total_docs = max(searcher.doc_count_all(), 1)
    reader_all = searcher.reader()
    average = {field: (reader_all.field_length(field) / total_docs) or 1.0
               for field in SCORED_FIELDS}
    idf = {}
    for field, text, _boost in terms:
        df = searcher.doc_frequency(field, text)
        idf[field, text] = math.log(1 + (total_docs - df + 0.5) / (df + 0.5))
    best: list[tuple[float, int]] = []
    for leaf, mask in zip(leaves, allowed, strict=True):
        if not mask:
            continue
        scores = np.zeros(leaf.masks.size, dtype=np.float64)
        for field, text, boost in terms:
            found = leaf.postings(field, text)  # empty for a word not in the segment
            if not len(found):
                continue
            docs = found.ids
            tf = found.weights.astype(np.float64)
            lengths = leaf.lengths(field)[docs]
            scores[docs] += (boost * idf[field, text] * (K1 + 1)) * tf / (
                tf + K1 * (1 - B) + (K1 * B / average[field]) * lengths)
        bits = np.frombuffer(mask.to_bytes((leaf.masks.size + 7) >> 3, "little"), np.uint8)
        candidates = np.flatnonzero(np.unpackbits(bits, bitorder="little")[:leaf.masks.size])
        # A stable sort on the score keeps equal scores in document order.
        order = candidates[np.argsort(-scores[candidates], kind="stable")[:need]]
        best.extend((float(scores[doc]), -(leaf.offset + int(doc))) for doc in order)
    best = heapq.nlargest(need, best)
    return [-doc for _, doc in best]


def newest(leaves: list[masks.Leaf], allowed: list[int], need: int) -> list[int]:
    """Global document numbers of the ``need`` newest allowed documents."""
    best: list[tuple[int, int]] = []
    for leaf, mask in zip(leaves, allowed, strict=True):
        if not mask:
            continue
        dates = leaf.dates()
        candidates = ((dates[doc], -(leaf.offset + doc)) for doc in masks.mask_to_ids(mask))
        best = heapq.nlargest(need, [*best, *heapq.nlargest(need, candidates)])
    return [-doc for _, doc in best]
