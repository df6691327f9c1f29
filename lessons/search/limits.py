"""How much work one search may cost, and the clear refusal when a query asks for more.

A query is at most ``MAX_QUERY_LENGTH`` characters, but 500 characters of wildcards once
took half a minute of CPU: each wildcard is matched against the whole dictionary of
words, and each glossary term becomes up to 20 words. So a query is checked twice before
it runs: on its shape (``check_shape``: wildcards need letters in front, a bounded number
of clauses) and against the index (``check_expansions``: a bounded number of dictionary
words per wildcard or range and in all). While it runs, a ``Budget`` is checked between
phases, so a query the checks let through still cannot run on for minutes.

Refusals are ``TooBroad`` (422): the query, not the server, must change.
"""

from __future__ import annotations

import time
from itertools import islice

from whoosh.query import Every, PatternQuery, Prefix, Query
from whoosh.query.terms import MultiTerm

from lessons.errors import DomainError

# Literal characters a wildcard needs before its first * or ?: "ra*" reads a slice of
# the dictionary, "?*" or "*e" the whole of it.
MIN_WILDCARD_PREFIX = 2
# Wildcards and ranges (each read from the dictionary) in one query.
MAX_WILDCARDS = 10
# Dictionary words one wildcard or range may stand for, and all of them together.
MAX_WORDS_PER_WILDCARD = 1_000
MAX_EXPANDED_WORDS = 2_000
# Words and phrases of a query once glossary equivalents are added (before each is also
# looked for in the title).
MAX_TERMS = 300
# Seconds one search may take before it is stopped with ``TooBroad``.
DEFAULT_TIME_BUDGET = 5.0
# Dictionary words read between two looks at the clock.
_CLOCK_EVERY = 512


class TooBroad(DomainError):
    """The query would cost more than one search may: the searcher narrows it."""

    status = 422
    title = "Search too broad"


def _shown(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "..."


def _leaves(query: Query):
    if query.is_leaf():
        yield query
        return
    for child in query.children():
        yield from _leaves(child)


def _literal_prefix(query: PatternQuery) -> str:
    if isinstance(query, Prefix):
        return str(query.text)
    return query._find_prefix(str(query.text))


def check_shape(query: Query) -> None:
    """Refuse what no index lookup is needed to refuse: a wildcard with fewer than
    ``MIN_WILDCARD_PREFIX`` letters in front, too many wildcards, too many terms."""
    leaves = list(_leaves(query))
    wildcards = [leaf for leaf in leaves if isinstance(leaf, MultiTerm)]
    for leaf in wildcards:
        if isinstance(leaf, PatternQuery) and len(_literal_prefix(leaf)) < MIN_WILDCARD_PREFIX:
            raise TooBroad(
                f'This search is too broad: a wildcard needs at least {MIN_WILDCARD_PREFIX} '
                f'letters or digits before * or ? ("{_shown(str(leaf.text))}" has '
                f"{len(_literal_prefix(leaf))}). To list every lesson, search for * alone.")
    if len(wildcards) > MAX_WILDCARDS:
        raise TooBroad(f"This search is too broad: it has {len(wildcards)} wildcards or "
                       f"ranges; at most {MAX_WILDCARDS} are allowed.")
    terms = [leaf for leaf in leaves if not isinstance(leaf, Every)]
    if len(terms) > MAX_TERMS:
        raise TooBroad(f"This search is too broad: with glossary equivalents it looks for "
                       f"{len(terms):,} words or phrases; at most {MAX_TERMS} are allowed. "
                       "Use fewer words.")


def check_expansions(query: Query, reader, budget: Budget | None = None) -> None:
    """Refuse a query whose wildcards and ranges stand for too many words of the index
    (counted, up to the limit, from the dictionary the search would read anyway)."""
    total = 0
    for leaf in _leaves(query):
        if not isinstance(leaf, MultiTerm) or leaf.field() not in reader.schema:
            continue
        words = 0
        for words, _ in enumerate(islice(leaf._btexts(reader), MAX_WORDS_PER_WILDCARD + 1),
                                  start=1):
            if budget is not None and not words % _CLOCK_EVERY:
                budget.check()
        if words > MAX_WORDS_PER_WILDCARD:
            raise TooBroad(f'This search is too broad: "{_shown(str(leaf))}" matches more '
                           f"than {MAX_WORDS_PER_WILDCARD:,} different words. Add letters "
                           "before the * or ?.")
        total += words
        if total > MAX_EXPANDED_WORDS:
            raise TooBroad(f"This search is too broad: its wildcards match more than "
                           f"{MAX_EXPANDED_WORDS:,} different words together. Use fewer "
                           "wildcards or add letters before them.")


class Budget:
    """A search's time allowance, checked between its phases."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.ends:
            raise TooBroad(f"This search is too broad to answer within {self.seconds:g} "
                           "seconds. Add words, use fewer wildcards or filter by a facet "
                           "to narrow it.")
