"""Full-text search behind a small interface; Whoosh stays inside this package.

Services call ``queue_lesson`` in their transaction and ``after_commit`` after it; the
search page calls ``search_lessons``; the CLI calls ``sync``, ``reindex``, ``check`` and
``indexes``; a serving process calls ``on_worker_start`` as it starts, and ``/health``
reads ``status``.

Changes reach the index through the change log (``changelog``). With
``SEARCH_INDEXER = "background"`` (production) a request only commits; this host's
indexer (``indexer``: ``flask search worker``, or a thread in one serving process)
applies the log within a fraction of a second, and a user's next search waits briefly
for their own last change (read-your-writes). With ``"inline"`` (tests) the request
applies the log itself after its commit.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from itertools import islice
from pathlib import Path

from flask import after_this_request, current_app, g, has_request_context, session
from markupsafe import Markup
from sqlalchemy import select
from whoosh.query import And, Every, Or, Query, Term

from lessons import policy, rules
from lessons.extensions import db
from lessons.models import Lesson, LessonFile, Peer, User
from lessons.models.base import utcnow
from lessons.reference import nation_rows
from lessons.search import changelog, index, limits, masks, query, rank, suggest
from lessons.search.glossary import Glossary
from lessons.search.index import Drift, IndexBehind, IndexBusy, IndexMissing, ReindexReport
from lessons.search.limits import TooBroad
from lessons.search.schema import FACETS, LOCAL_ORIGIN

__all__ = [
    "FACETS", "GLOSSARY_SOURCE", "PER_PAGE_CHOICES", "Drift", "Facet", "FacetValue",
    "IndexBehind", "IndexBusy", "IndexMissing", "IndexReport", "IndexStatus", "ReindexReport",
    "SearchPage", "TooBroad", "after_commit", "applied_alongside", "batch", "check",
    "clean_filters", "current_glossary",
    "explain_scores", "indexes", "inline", "matching_ids", "new_history", "on_worker_start",
    "prune", "queue_lesson", "reindex", "search_lessons", "status", "sync", "visible_masks",
    "wait_for_own_changes", "warm", "warm_in_background"]

log = logging.getLogger(__name__)

SNIPPET_FIELDS = ("observation", "discussion", "conclusion", "recommendation",
                  "friction", "workaround", "limits")
MAX_QUERY_LENGTH = rules.QUERY_MAX
MAX_PAGE = rules.SEARCH_PAGE_MAX


def store() -> index.IndexStore:
    return index.IndexStore(Path(current_app.config["INDEX_DIR"]),
                            writer_timeout=current_app.config["SEARCH_WRITER_TIMEOUT"],
                            reindex_procs=current_app.config["SEARCH_REINDEX_PROCS"])


def queue_lesson(lesson: Lesson) -> None:
    """Log ``lesson``'s change for every index when the caller's transaction commits (a
    rollback logs nothing)."""
    changelog.queue(lesson)


_batching = threading.local()
WRITTEN_KEY = "search_written"  # session key: the log number of the user's last change


def inline() -> bool:
    """Whether the caller applies the log itself after its commit: requests with
    ``SEARCH_INDEXER = "inline"``, and always commands and scripts (no user waits on
    them, and an import's lessons should be searchable as its batches land, whether or
    not an indexer runs); else this host's indexer does."""
    return (not has_request_context()
            or current_app.config.get("SEARCH_INDEXER", "inline") == "inline")


def after_commit() -> None:
    """After a commit that queued changes: apply them now (inline), or remember the
    user's last change so their next search waits for it (background). Failures never
    reach the caller; the changes wait in the log. Merging the small segments edits
    leave behind waits until after the response."""
    written = changelog.last_written()
    if written is not None and has_request_context() and session.get("_user_id"):
        session[WRITTEN_KEY] = max(written, session.get(WRITTEN_KEY, 0))
    if not inline() or getattr(_batching, "depth", 0):
        return  # the indexer applies them; or ``batch()`` does, when it ends
    index_store = store()
    _apply_aside(index_store)
    _merge_later(index_store)


def _apply_aside(index_store: index.IndexStore) -> None:
    """Apply pending changes in a session of their own (a fresh app context has one).

    The apply reads the newest committed rows under the index's writer lock. In the
    caller's session that would overwrite the objects the caller is about to answer
    with: an edit committed as version 3 would answer with version 4, saved a moment
    later by someone else, and its client would then overwrite a change it never saw.
    """
    with current_app.app_context():
        index.apply_after_commit(index_store)


def wait_for_own_changes() -> bool:
    """Read-your-writes: before a search, wait (at most ``SEARCH_FRESHNESS_WAIT``
    seconds) until this host's index holds the signed-in user's last change. False if
    it still does not (the search goes on; the change shows shortly)."""
    if inline() or not has_request_context():
        return True
    wanted = session.get(WRITTEN_KEY)
    if not wanted:
        return True
    index_store = store()
    deadline = time.monotonic() + float(current_app.config.get("SEARCH_FRESHNESS_WAIT", 2.0))
    while True:
        position = index_store.position()
        if position is not None and position.last_id >= wanted:
            session.pop(WRITTEN_KEY, None)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


@contextmanager
def batch() -> Iterator[None]:
    """Apply the index changes of many commits once, at the end (bulk loads).

    Each commit still logs its changes in its own transaction, so an error or a crash
    inside the batch loses nothing: they wait in the log for the next apply or ``sync``.
    One index commit instead of one per lesson is what makes bulk loads fast.
    """
    _batching.depth = getattr(_batching, "depth", 0) + 1
    try:
        yield
    finally:
        _batching.depth -= 1
        if not _batching.depth and inline():
            index_store = store()
            _apply_aside(index_store)
            _merge_later(index_store)


@contextmanager
def applied_alongside() -> Iterator[bool]:
    """For a bulk load committing many batches inside ``batch()``: a process of its own
    applies each batch to this host's index as it lands, while the load stores the next
    (``indexer.alongside``); the ``batch()`` around it applies whatever is left. Yields
    whether such a process runs."""
    from lessons.search import indexer

    with indexer.alongside(current_app._get_current_object()) as running:
        yield running


def _merge_later(index_store: index.IndexStore) -> None:
    """Merge small segments once the response has gone (an edit's user does not wait
    for it), or now where there is no request (the CLI). At most once per request."""
    if not has_request_context():
        _merge_quietly(index_store)
        return
    if g.get("_search_merge_after_response"):
        return
    g._search_merge_after_response = True

    @after_this_request
    def merge_on_close(response):
        response.call_on_close(lambda: _merge_quietly(index_store))
        return response


def _merge_quietly(index_store: index.IndexStore) -> None:
    # After the response nobody can be told of a failure, and nothing is lost by one:
    # the segments stay searchable and the next edit's commit tries again.
    try:
        index_store.merge_small()
    except Exception:  # noqa: BLE001
        log.exception("merging small search segments failed; the next edit retries")


def warm() -> None:
    """Read what every search needs from each index segment (facet values, field
    lengths, dates) so the first user after a start does not wait for it (seconds at
    100,000 lessons). Safe to run beside searches: the caches are per process.
    Nothing to warm while the index is missing (``on_worker_start`` rebuilds it)."""
    try:
        generation, searcher = store().searcher_with_generation()
    except IndexMissing:
        return
    for leaf in masks.leaves(searcher, generation):
        for name in FACETS:
            leaf.facet(name)
        for name in rank.SCORED_FIELDS:
            leaf.lengths(name)
        leaf.dates()
        leaf.lesson_ids()


def warm_in_background(app) -> None:
    """Start ``warm`` in a daemon thread with its own app context; errors are logged."""

    def run() -> None:
        with app.app_context():
            try:
                warm()
            except Exception:  # a missing or busy index must not stop the app
                current_app.logger.exception("search index warm-up failed")
            finally:
                db.session.remove()

    threading.Thread(target=run, name="search-warm-up", daemon=True).start()


def on_worker_start(app) -> threading.Thread:
    """Called once by every serving process as it starts (the server's worker hook).

    Inline indexing: apply the changes the log holds beyond this index's position, and
    rebuild the index if it is missing, outdated or cannot catch up (a file lock keeps
    the other workers on this host from rebuilding it too). Background indexing: start
    this process's standby indexer thread, which does the same once it holds the
    host's indexer lock. Either way in a background thread, so the worker serves at
    once (searches answer 503 while the index is missing). Returns the thread."""
    from lessons.search import indexer

    if app.config.get("SEARCH_INDEXER", "inline") != "inline":
        return indexer.start_standby(app)

    def run() -> None:
        with app.app_context():
            try:
                report = index.recover(store())
                if report is not None:
                    log.warning("search index rebuilt at start: %d lessons in %.1f s",
                                report.documents, report.seconds)
            except Exception:  # noqa: BLE001 - the worker serves anyway; health tells
                log.exception("search index recovery at start failed")
            finally:
                db.session.remove()

    thread = threading.Thread(target=run, name="search-recovery", daemon=True)
    thread.start()
    return thread


# Changes waiting longer than this mean nobody is applying them (a crash, a stuck
# writer, no indexer running): the index is then reported stale, though still searched.
PENDING_STALE_SECONDS = 120


@dataclass
class IndexStatus:
    """What ``/health`` reports of this host's index: cheap enough to poll (no drift
    check). ``pending`` is how many logged changes it has not applied (its lag)."""

    generation: str | None
    state: str  # ok, empty, stale, behind, missing, rebuilding, outdated
    pending: int | None  # None when the database did not answer, or no index to ask
    oldest_pending_seconds: float | None = None
    position: int | None = None
    head: int | None = None

    @property
    def usable(self) -> bool:
        """Whether searches answer from it (``stale`` and ``behind`` ones lag but answer)."""
        return self.state in ("ok", "empty", "stale", "behind")


def status(database: bool = True) -> IndexStatus:
    """This host's index from its files and the change log; ``database=False`` when the
    database is down (then from the files alone). Missing while the database holds no
    lesson (a new install) is ``empty``: the first search or apply creates it."""
    index_store = store()
    state = index_store.state()
    generation = index_store.current_generation()
    if not index_store.has_generation(generation):
        generation = None
    position = index_store.position(generation) if generation else None
    if not database:
        return IndexStatus(generation, state, None,
                           position=position.last_id if position else None)
    where = changelog.head()
    pending = max(0, where.last_id - position.last_id) if position else None
    oldest = changelog.oldest_after(position.last_id) if pending else None
    age = (utcnow() - oldest).total_seconds() if oldest is not None else None
    if state == index.STATE_MISSING and index.empty_start(from_log=False) is not None:
        state = "empty"
    elif state == index.STATE_OK and index.catch_up_problem(position, where):
        state = "behind"
    elif state == index.STATE_OK and age is not None and age > PENDING_STALE_SECONDS:
        state = "stale"
    return IndexStatus(generation, state, pending, age,
                       position=position.last_id if position else None, head=where.last_id)


@dataclass
class IndexReport:
    """One registered index, for ``flask search status``."""

    id: str
    host: str
    folder: str
    generation: str | None
    position: int
    lag: int
    oldest_pending_seconds: float | None
    seen_seconds_ago: float
    this_host: bool
    problem: str


def indexes() -> tuple[changelog.Head, list[IndexReport]]:
    """Every registered index (one per host) with its position and lag."""
    where = changelog.head()
    here = store().index_id() if Path(current_app.config["INDEX_DIR"]).exists() else None
    now = utcnow()
    reports = []
    for row in changelog.registered():
        oldest = changelog.oldest_after(row.position) if row.position < where.last_id \
            else None
        reports.append(IndexReport(
            row.id, row.host, row.folder, row.generation, row.position,
            max(0, where.last_id - row.position),
            (now - oldest).total_seconds() if oldest is not None else None,
            (now - row.seen_at).total_seconds(), row.id == here,
            index.catch_up_problem(index.Position(row.epoch, row.position), where)))
    return where, reports


def prune() -> changelog.Pruned:
    """Delete the log rows every registered index has applied (see ``changelog.prune``)."""
    hours = float(current_app.config.get("SEARCH_INDEX_FORGET_HOURS", 168))
    return changelog.prune(timedelta(hours=hours))


def new_history() -> None:
    """After a restore: every index, on every host, must rebuild from the database."""
    changelog.renew_epoch()


def sync() -> int:
    """Apply every pending change and merge small segments; returns the number applied.
    Raises ``IndexBusy``, ``IndexMissing`` or ``IndexBehind``."""
    index_store = store()
    applied = index.apply_pending(index_store)
    index_store.merge_small()
    index.register(index_store)
    return applied


def reindex(progress: Callable[[int, int], None] | None = None) -> ReindexReport:
    """Rebuild the index from the database aside, swap it in, replay concurrent changes."""
    return index.reindex(store(), progress)


def check() -> Drift:
    """How the index differs from the database (``Drift.clean`` when it does not)."""
    return index.check(store())


SORTS = ("relevance", "newest")
PER_PAGE_CHOICES = (10, 20, 50)
FILTER_VALUE_MAX = 100
FILTERS_MAX = 20
TAGS_SHOWN = 20
# Facets whose lessons hold several values: each value clicked narrows further (AND).
# The others hold one value per lesson: values of one facet widen each other (OR), and
# their counts ignore the facet's own selection so the other choices stay visible.
MULTI_VALUED = frozenset({"tag", "domain", "function", "nation"})
FACET_LABELS = {"kind": "Kind", "status": "Status", "domain": "Domain",
                "function": "Function", "nation": "Nation involved",
                "originator": "Originator", "origin": "Received from", "tag": "Tag",
                "year": "Year"}
_SUGGEST_BELOW = 3  # totals under this are "thin": offer a spelling correction


@dataclass
class Hit:
    lesson: Lesson
    snippets: list[Markup]


@dataclass
class FacetValue:
    value: str
    label: str
    count: int
    active: bool


@dataclass
class Facet:
    name: str
    label: str
    values: list[FacetValue]


@dataclass
class SearchPage:
    query: str
    hits: list[Hit] = field(default_factory=list)
    total: int = 0
    page: int = 1
    per_page: int = 20
    sort: str = "relevance"
    filters: dict[str, list[str]] = field(default_factory=dict)
    facets: list[Facet] = field(default_factory=list)
    notice: str = ""
    suggestion: str = ""
    # Ranked plain words: how many were searched, and whether some lesson the user may
    # see (within the filters) holds every one of them.
    words_searched: int = 0
    partial_match: bool = False
    # (typed, what it was also searched as): glossary equivalents and spellings.
    expansions: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what is wrong with the query

    @property
    def partial_message(self) -> str:
        """What the page and the API say when no lesson holds every word."""
        if not self.partial_match:
            return ""
        return (f"No lesson holds all {self.words_searched} words; showing lessons that "
                "hold most of them.")

    @property
    def pages(self) -> int:
        """Pages to offer: no further than ``MAX_PAGE``, the last page a search reads."""
        return min(MAX_PAGE, max(1, -(-self.total // self.per_page)))

    @property
    def active(self) -> bool:
        """Whether anything was asked (words or filters)."""
        return bool(self.query or self.filters)


def clean_filters(raw: Mapping[str, Iterable[str]] | None) -> dict[str, list[str]]:
    """Facet filters from a request: known facets only, short values, a bounded number."""
    cleaned: dict[str, list[str]] = {}
    budget = FILTERS_MAX
    for name in FACETS:
        values = []
        for value in (raw or {}).get(name, ()):
            value = str(value).strip().lower()
            if value and len(value) <= FILTER_VALUE_MAX and value not in values and budget:
                values.append(value)
                budget -= 1
        if values:
            cleaned[name] = values
    if "origin" in cleaned:
        cleaned["origin"] = list(dict.fromkeys(_own_origin_value(v) for v in cleaned["origin"]))
    return cleaned


def _own_origin_value(value: str) -> str:
    """This instance's own name as an origin is ``local``: its own lessons are indexed
    so, whatever the instance is (or is later) called."""
    own = (current_app.config.get("INSTANCE_NAME") or "").lower()
    return LOCAL_ORIGIN if own and value.lower() == own else value


def _own_origin(text: str) -> str:
    """``origin:<this instance's name>`` in a query, read as ``origin:local``."""
    own = current_app.config.get("INSTANCE_NAME") or ""
    if not own or "origin:" not in text:
        return text
    return re.sub(r"(?<![\w:])origin:(?i:" + re.escape(own) + r")(?=[\s)]|$)",
                  f"origin:{LOCAL_ORIGIN}", text)


def _filter_query(name: str, values: list[str]) -> Query:
    terms = [Term(name, value) for value in values]
    return (And if name in MULTI_VALUED else Or)(terms)


def _label(name: str, value: str) -> str:
    labels = {"kind": rules.KIND_LABELS, "status": rules.STATUS_LABELS,
              "domain": rules.DOMAIN_LABELS, "function": rules.FUNCTION_LABELS}.get(name)
    if labels:
        return labels.get(value, value)
    if name in ("nation", "originator"):
        return value.upper()
    return value


def _origin_labels(values: Iterable[str]) -> dict[str, str]:
    """The ``origin`` facet's words: "This instance", and each peer's name as it was
    registered (the index holds it lower-cased); a peer since removed, as indexed."""
    labels = {LOCAL_ORIGIN: "This instance"}
    others = [value for value in values if value != LOCAL_ORIGIN]
    if others:
        labels.update({name.lower(): name for name in db.session.scalars(select(Peer.name))})
    return labels


def visible_masks(user: User, leaves: list[masks.Leaf]) -> list[int]:
    """Per segment, the documents ``user`` may see: the policy's visibility rule as
    masks (the third form of the one rule, beside ``can_view`` and the SQL filter)."""
    rule = query.to_whoosh(policy.visibility_rule(user))
    return [leaf.query(rule) for leaf in leaves]


@dataclass
class _Matches:
    """A query's documents per segment, before and after the facet filters."""

    leaves: list[masks.Leaf]
    visible: list[int]  # what the user may see, whatever the words
    query: list[int]  # matching the words, visible to the user
    by_filter: dict[str, list[int]]
    matched: list[int]  # ...and every filter

    @property
    def total(self) -> int:
        return masks.popcount(self.matched)


def _matches(leaves: list[masks.Leaf], visible: list[int], parsed: Query,
             filters: dict[str, list[str]], budget: limits.Budget | None = None) -> _Matches:
    found = []
    for leaf, seen in zip(leaves, visible, strict=True):
        if budget is not None:
            budget.check()
        found.append(leaf.query(parsed, seen) if seen else 0)
    by_filter = {name: [leaf.query(_filter_query(name, values)) for leaf in leaves]
                 for name, values in filters.items()}
    matched = list(found)
    for masks_ in by_filter.values():
        matched = [a & b for a, b in zip(matched, masks_, strict=True)]
    return _Matches(leaves, visible, found, by_filter, matched)


def _facets(found: _Matches, filters: dict[str, list[str]]) -> list[Facet]:
    facets = []
    for name in FACETS:
        base = list(found.query)
        for other, masks_ in found.by_filter.items():
            if other != name or name in MULTI_VALUED:
                base = [a & b for a, b in zip(base, masks_, strict=True)]
        counts = masks.facet_counts(found.leaves, name, base)
        active = filters.get(name, [])
        for value in active:
            counts.setdefault(value, 0)
        if name == "year":
            order = sorted(counts, reverse=True)
        else:
            order = sorted(counts, key=lambda v: (-counts[v], v))
        if name == "tag":
            order = order[:TAGS_SHOWN] + [v for v in active if v not in order[:TAGS_SHOWN]]
        named = _origin_labels(order) if name == "origin" else {}
        facets.append(Facet(name, FACET_LABELS[name], [
            FacetValue(value, named.get(value) or _label(name, value), counts[value],
                       value in active)
            for value in order]))
    return facets


def _parse(text: str, glossary: Glossary | None) -> query.ParsedQuery:
    if not text or text == "*":  # "*": every lesson the user may see
        return query.ParsedQuery(query=Every())
    return query.parse(_own_origin(text), glossary)


GLOSSARY_SOURCE = "muster.search.glossary"


def current_glossary() -> Glossary:
    """The glossary a caller gave no other: the app's glossary source (a callable in
    ``app.extensions[GLOSSARY_SOURCE]``, registered by the layer that owns glossaries,
    so this package needs nothing of it), or none at all."""
    source = current_app.extensions.get(GLOSSARY_SOURCE)
    return source() if source is not None else Glossary([])


def matching_ids(user: User, text: str, filters: Mapping[str, Iterable[str]] | None = None,
                 limit: int = 10_000, glossary: Glossary | None = None) -> list[int]:
    """Ids of every lesson matching ``text`` and ``filters`` that ``user`` may see, best
    first (newest first when there are no words)."""
    page = search_lessons(user, text, page=1, per_page=limit, filters=filters,
                          glossary=glossary, _ids_only=True)
    return [hit.lesson.id for hit in page.hits]


def search_lessons(user: User, text: str, page: int = 1, per_page: int = 20,
                   filters: Mapping[str, Iterable[str]] | None = None,
                   sort: str = "relevance", glossary: Glossary | None = None,
                   _ids_only: bool = False) -> SearchPage:
    """Ranked lessons matching ``text`` and ``filters`` that ``user`` may see.

    The visibility rule, the words and the filters are evaluated as per-segment masks
    (see ``masks``), which give the total and every facet count exactly; ``rank`` then
    orders only the allowed documents. Hits are reloaded from the database and passed
    through ``can_view`` again, in rank order, and snippets are cut from the database's
    current text. ``glossary`` defaults to the app's glossary source (the admins' current
    glossary, registered by the search page's blueprint; see ``current_glossary``).

    Raises ``TooBroad`` for a query that would cost more than one search may, or that
    runs past the time budget (``SEARCH_TIME_BUDGET`` seconds; see ``limits``).
    """
    budget = limits.Budget(current_app.config.get("SEARCH_TIME_BUDGET",
                                                  limits.DEFAULT_TIME_BUDGET))
    text = (text or "").strip()[:MAX_QUERY_LENGTH]
    if glossary is None:
        glossary = current_glossary()
    chosen = clean_filters(filters)
    sort = sort if sort in SORTS else "relevance"
    page = min(max(page, 1), MAX_PAGE)
    result = SearchPage(query=text, page=page, per_page=per_page, sort=sort, filters=chosen)
    if not result.active:
        return result
    parsed = _parse(text, glossary)
    result.notice = parsed.notice
    # Bounded as the API's schema says (a 500-character query holds up to 250 words).
    result.expansions = parsed.expansions[:rules.QUERY_NOTES_MAX]
    result.problems = list(parsed.problems)
    result.words_searched = parsed.counted
    wait_for_own_changes()
    generation, searcher = store().searcher_with_generation()
    leaves = masks.leaves(searcher, generation)
    visible = visible_masks(user, leaves)
    limits.check_expansions(parsed.query, searcher.reader(), budget,
                            masks.VisibleWords(leaves, visible))
    found = _matches(leaves, visible, parsed.query, chosen, budget)
    result.total = found.total
    result.problems = (result.problems + _unknown_values(parsed.query, found))[
        :rules.QUERY_NOTES_MAX - 1]  # room for the "words alone" help below
    every = found.total
    if parsed.clauses and found.total:
        # Whether some lesson holds every word: the same masks, within the filters.
        every = _matches(leaves, found.visible, parsed.every_word(), chosen, budget).total
        result.partial_match = not every
    if not _ids_only:
        budget.check()
        result.facets = _facets(found, chosen)
        if parsed.corrected:
            result.suggestion = parsed.corrected
        elif result.total < _SUGGEST_BELOW and parsed.words:
            result.suggestion = _suggestion(searcher, found, text, parsed.words, chosen,
                                            glossary, budget, every)
        if not result.total and not result.suggestion and parsed.words:
            result.suggestion = _as_words(found, text, chosen, glossary, budget)
            if result.suggestion:
                result.problems.append(
                    "No lesson matches every part of this query; its words alone, "
                    "ranked, find some.")
    first = (page - 1) * per_page
    if first >= result.total:
        return result
    budget.check()
    docnums = _ranked(parsed, found, first + per_page,
                      newest=sort == "newest" or not text or text == "*")
    ids = [int(searcher.stored_fields(n)["lesson_id"]) for n in docnums[first:]]
    if not ids:
        return result
    lessons = {lesson.id: lesson for lesson in db.session.scalars(
        select(Lesson).where(Lesson.id.in_(ids)))}
    terms = query.highlight_terms(parsed.query)
    for lesson_id in ids:
        lesson = lessons.get(lesson_id)
        if lesson is None or not policy.can_view(user, lesson):
            continue  # second guard: the database is the truth
        if _ids_only:
            result.hits.append(Hit(lesson=lesson, snippets=[]))
            continue
        # The first two parts that hold a match: highlighting analyses the whole text.
        snippets = [Markup(s) for s in islice(
            filter(None, (query.snippet(getattr(lesson, name), terms)
                          for name in SNIPPET_FIELDS)), 2)]
        if not snippets:  # the words may be in an attached file's text alone
            snippets = _attachment_snippets(lesson, terms)
        if not snippets:  # matched on the title or a filter only
            snippets = [Markup.escape(lesson.observation[:240])]
        result.hits.append(Hit(lesson=lesson, snippets=snippets))
    return result


def _attachment_snippets(lesson: Lesson, terms: query.Marks) -> list[Markup]:
    """A snippet from the first of the lesson's files whose text holds the words, saying
    which file it is from: the lesson's own text does not show why it matched."""
    if not terms:
        return []
    rows = db.session.execute(select(LessonFile.original_name, LessonFile.extracted_text)
                              .where(LessonFile.lesson_id == lesson.id,
                                     LessonFile.extracted_text != "")
                              .order_by(LessonFile.id))
    for name, text in rows:
        found = query.snippet(text, terms, top=1)
        if found:
            return [Markup("In attachment {}: {}").format(name, Markup(found))]
    return []


_VOCABULARIES = {"kind": rules.KINDS, "status": rules.STATUSES, "domain": rules.DOMAINS,
                 "function": rules.FUNCTIONS}
_NATION_FIELDS = ("nation", "originator")
# Values told apart by what the user may see: named with the values in use instead.
_SEEN_FIELDS = {"tag": "is tagged", "origin": "was received from"}
_CHECKED_FIELDS = frozenset({*_VOCABULARIES, *_NATION_FIELDS, "year", *_SEEN_FIELDS})
_TAGS_OFFERED = 10


@lru_cache(maxsize=1)
def _nation_codes() -> frozenset[str]:
    return frozenset(row["code"].lower() for row in nation_rows())


def _unknown_values(parsed: Query, found: _Matches) -> list[str]:
    """What to say of field values no lesson can hold (``status:foo``, ``nation:XYZ``),
    with the valid values; and of a tag (or origin) no lesson the user may see holds, with
    the tags (origins) they may see (never a hidden lesson's: the same answer whether or
    not one holds it)."""
    problems: list[str] = []
    for name, value in query.field_values(parsed, _CHECKED_FIELDS):
        if name in _VOCABULARIES and value not in _VOCABULARIES[name]:
            problems.append(f"{name}: {value} is not a {name}; use one of: "
                            f"{', '.join(_VOCABULARIES[name])}.")
        elif name in _NATION_FIELDS and value not in _nation_codes():
            problems.append(f"{name}: {value.upper()} is not a nation code; use a "
                            "three-letter ISO code such as GBR, USA, AUS or CAN.")
        elif name == "year" and not (value.isdigit() and len(value) == 4):
            problems.append(f"year: {value} is not a year; use four digits, e.g. year:2024.")
        elif name in _SEEN_FIELDS and not any(
                leaf.term(name, value) & seen
                for leaf, seen in zip(found.leaves, found.visible, strict=True) if seen):
            if name == "origin" and value == LOCAL_ORIGIN:
                continue  # none of this instance's own lessons is seen: nothing to correct
            counts = masks.facet_counts(found.leaves, name, found.visible)
            offered = sorted(counts, key=lambda v: (-counts[v], v))[:_TAGS_OFFERED]
            problems.append(f"{name}: no lesson you may see {_SEEN_FIELDS[name]} {value}"
                            + (f"; {name}s in use include: {', '.join(offered)}."
                               if offered else "."))
    return problems[:rules.QUERY_NOTES_MAX]


def explain_scores(user: User, text: str, glossary: Glossary | None = None,
                   limit: int = 20) -> list[tuple[int, float]]:
    """(lesson id, score) of the best ``limit`` lessons ``user`` may see for ``text``,
    best first: the ranking's own figures, for tuning and for checking that they are
    the visible collection's alone. Reads only."""
    if glossary is None:
        glossary = current_glossary()
    parsed = _parse((text or "").strip()[:MAX_QUERY_LENGTH], glossary)
    generation, searcher = store().searcher_with_generation()
    leaves = masks.leaves(searcher, generation)
    found = _matches(leaves, visible_masks(user, leaves), parsed.query, {})
    scored = _scored(parsed, found, limit)
    return [(int(searcher.stored_fields(doc)["lesson_id"]), score) for doc, score in scored]


def _ranked(parsed_query: query.ParsedQuery, found: _Matches, need: int,
            newest: bool) -> list[int]:
    """Global document numbers of the first ``need`` allowed documents, best (or newest)
    first: our own BM25 over the postings (see ``rank``), wildcards expanded by Whoosh,
    with statistics of the lessons the user may see, never the whole index's. Ranked
    plain words also count how many of the words each lesson holds
    (``rank.natural_scored``)."""
    if newest:
        return rank.newest(found.leaves, found.matched, need)
    return [doc for doc, _ in _scored(parsed_query, found, need)]


def _scored(parsed: query.ParsedQuery, found: _Matches, need: int) -> list[tuple[int, float]]:
    """``_ranked`` by relevance, each document with its score: the one ranking that the
    search page, the API and ``explain_scores`` share. Each part of the query is walked
    once (``rank.parts``); wildcard and fuzzy parts add their boost as a constant."""
    collection = rank.Collection(found.leaves, found.visible)
    if parsed.clauses:
        clauses = [rank.scored_terms(clause) for clause in parsed.clauses]
        extra, constant = rank.parts(parsed.required) if parsed.required is not None \
            else ([], [])
        return rank.natural_scored(collection, found.matched, clauses, extra, need, constant)
    terms, constant = rank.parts(parsed.query)
    return rank.scored(collection, found.matched, terms, need, constant)


def _as_words(found: _Matches, text: str, filters: dict[str, list[str]],
              glossary: Glossary | None, budget: limits.Budget) -> str:
    """A strict query that found nothing, as its plain words (ranked, any of them), if
    that finds lessons this user may see; else ``""``."""
    words = query.words_only(text)
    if not words or words == text.strip():
        return ""
    budget.check()
    parsed = _parse(words, glossary)
    return words if _matches(found.leaves, found.visible, parsed.query, filters).total \
        else ""


def _suggestion(searcher, found: _Matches, text: str, words: list[str],
                filters: dict[str, list[str]], glossary: Glossary | None,
                budget: limits.Budget | None = None, every: int | None = None) -> str:
    """A corrected query, offered only if it finds more lessons this user may see (for
    ranked words: more lessons holding every word)."""

    def total_of(corrected: str) -> int:
        if budget is not None:
            budget.check()
        parsed = _parse(corrected, glossary)
        wanted = parsed.every_word() if parsed.clauses else parsed.query
        return _matches(found.leaves, found.visible, wanted, filters).total

    return suggest.correct(searcher, found.leaves, found.visible, text, words, total_of,
                           found.total if every is None else every)
