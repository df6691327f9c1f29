"""How much work one search may cost, and the clear refusal when a query asks for more.

A query is at most ``MAX_QUERY_LENGTH`` characters, but 500 characters of wildcards once
took half a minute of CPU: each wildcard is matched against the whole dictionary of
words, and each glossary term becomes up to 20 words. So a query is checked twice before
it runs: on its shape (``check_shape``: wildcards need letters in front, a bounded number
of clauses) and against the index (``check_expansions``: a bounded number of words per
wildcard or range and in all, counting only words of lessons the searcher may see). While
it runs, a ``Budget`` is checked between phases, so a query the checks let through still
cannot run on for minutes.

Refusals are ``TooBroad`` (422): the query, not the server, must change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import islice

from whoosh.query import Every, PatternQuery, Prefix, Query
from whoosh.query.terms import MultiTerm

from lessons.errors import DomainError
from lessons.search.schema import FILES

# Literal characters a wildcard needs before its first * or ?: "ra*" reads a slice of
# the dictionary, "?*" or "*e" the whole of it.
MIN_WILDCARD_PREFIX = 2
# Wildcards and ranges (each read from the dictionary) in one query.
MAX_WILDCARDS = 10
# Words one wildcard or range may stand for, and all of them together (words of lessons
# the searcher may see).
MAX_WORDS_PER_WILDCARD = 1_000
MAX_EXPANDED_WORDS = 2_000
# Dictionary words (of every lesson) one wildcard or range may read while its words are
# counted: what bounds the work of a search the limits above let through.
MAX_WORDS_SCANNED = 5_000
# Words and phrases of a query once glossary equivalents are added (before each is also
# looked for in the title).
MAX_TERMS = 300
# Seconds one search may take before it is stopped with ``TooBroad``.
DEFAULT_TIME_BUDGET = 5.0
# Dictionary words read, and words looked up, between two looks at the clock.
_CLOCK_EVERY = 512
_LOOKUPS_EVERY = 64


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
    ``MIN_WILDCARD_PREFIX`` letters in front, too many wildcards, too many terms. A word's
    copy looked for in the attached files' text (``FILES``) is not counted again: it
    follows the content's."""
    leaves = [leaf for leaf in _leaves(query) if getattr(leaf, "fieldname", None) != FILES]
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


def check_expansions(query: Query, reader, budget: Budget | None = None,
                     seen: Callable[[str, bytes], bool] | None = None) -> None:
    """Refuse a query whose wildcards and ranges stand for too many words.

    The words counted are those of lessons the searcher may see (``seen`` tells whether
    a word of a field occurs in one; ``None``: every word counts): counted over the
    whole dictionary, "too broad" would depend on lessons hidden from the searcher, and
    a run of searches for "zq*", "zqa*"... would tell which words they hold. The
    dictionary is read first, as the search would read it anyway; only when its words
    alone would break a limit is each one looked up, and only up to the first word past
    the limit, so a search within the limits costs what it did.

    The work stays bounded whoever searches: at most ``MAX_WORDS_SCANNED`` dictionary
    words are read per wildcard. A wildcard whose slice of the dictionary is longer
    is refused for every searcher alike. That refusal still depends on hidden lessons'
    words, but only through the size of the whole index's dictionary under the prefix:
    it takes thousands of distinct words to move it, it tells every user the same,
    and it says nothing about which lesson holds which word."""
    slices: list[tuple[MultiTerm, list[bytes]]] = []
    for leaf in _leaves(query):
        if not isinstance(leaf, MultiTerm) or leaf.field() not in reader.schema:
            continue
        words: list[bytes] = []
        for word in islice(leaf._btexts(reader), MAX_WORDS_SCANNED + 1):
            words.append(word)
            if budget is not None and not len(words) % _CLOCK_EVERY:
                budget.check()
        if len(words) > MAX_WORDS_SCANNED:
            raise TooBroad(f'This search is too broad: "{_shown(str(leaf))}" reaches more '
                           f"than {MAX_WORDS_SCANNED:,} different words of the index. "
                           "Add letters before the * or ?.")
        slices.append((leaf, words))
    if seen is not None and (any(len(w) > MAX_WORDS_PER_WILDCARD for _, w in slices)
                             or sum(len(w) for _, w in slices) > MAX_EXPANDED_WORDS):
        slices = [(leaf, _visible(leaf.field(), words, seen, budget))
                  for leaf, words in slices]
    total = 0
    for leaf, words in slices:
        if len(words) > MAX_WORDS_PER_WILDCARD:
            raise TooBroad(f'This search is too broad: "{_shown(str(leaf))}" matches more '
                           f"than {MAX_WORDS_PER_WILDCARD:,} different words. Add letters "
                           "before the * or ?.")
        total += len(words)
        if total > MAX_EXPANDED_WORDS:
            raise TooBroad(f"This search is too broad: its wildcards match more than "
                           f"{MAX_EXPANDED_WORDS:,} different words together. Use fewer "
                           "wildcards or add letters before them.")


def _visible(fieldname: str, words: list[bytes], seen: Callable[[str, bytes], bool],
             budget: Budget | None) -> list[bytes]:
    """The ``words`` the searcher may see, up to one past the limit (enough to refuse)."""
    found: list[bytes] = []
    for number, word in enumerate(words, start=1):
        if seen(fieldname, word):
            found.append(word)
            if len(found) > MAX_WORDS_PER_WILDCARD:
                break
        if budget is not None and not number % _LOOKUPS_EVERY:
            budget.check()
    return found


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
