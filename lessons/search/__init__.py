"""Full-text search behind a small interface; Whoosh stays inside this package.

Services call ``queue_lesson`` in their transaction and ``after_commit`` after it; the
search page calls ``search_lessons``; the CLI calls ``sync``, ``reindex`` and ``check``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from markupsafe import Markup
from sqlalchemy import select
from whoosh.qparser import QueryParserError

from lessons import policy
from lessons.extensions import db
from lessons.models import IndexOutbox, Lesson, User
from lessons.search import index, query
from lessons.search.index import Drift, IndexBusy, ReindexReport

__all__ = ["Drift", "IndexBusy", "ReindexReport", "SearchPage", "after_commit", "check",
           "matching_ids", "queue_lesson", "reindex", "search_lessons", "sync"]

SNIPPET_FIELDS = ("observation", "discussion", "conclusion", "recommendation",
                  "friction", "workaround", "limits")
MAX_QUERY_LENGTH = 500
MAX_PAGE = 500


def store() -> index.IndexStore:
    return index.IndexStore(Path(current_app.config["INDEX_DIR"]),
                            writer_timeout=current_app.config["SEARCH_WRITER_TIMEOUT"])


def queue_lesson(lesson: Lesson) -> None:
    """Queue ``lesson``'s current version for indexing, inside the caller's transaction
    (so a rollback un-queues it too). ``lesson`` must have been flushed."""
    db.session.add(IndexOutbox(lesson_id=lesson.id, version=lesson.version))


def after_commit() -> None:
    """Apply queued changes now; on failure they wait for the next apply or ``sync``."""
    index.apply_after_commit(store())


def sync() -> int:
    """Apply every pending change; returns the number applied. Raises ``IndexBusy``."""
    return index.apply_pending(store())


def reindex(progress: Callable[[int, int], None] | None = None) -> ReindexReport:
    """Rebuild the index from the database aside, swap it in, replay concurrent changes."""
    return index.reindex(store(), progress)


def check() -> Drift:
    """How the index differs from the database (``Drift.clean`` when it does not)."""
    return index.check(store())


@dataclass
class Hit:
    lesson: Lesson
    snippets: list[Markup]


@dataclass
class SearchPage:
    query: str
    hits: list[Hit] = field(default_factory=list)
    total: int = 0
    page: int = 1
    per_page: int = 20
    notice: str = ""

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _parse(text: str) -> tuple[object, str]:
    try:
        return query.parse(text), ""
    except QueryParserError:
        return (query.parse_any(text),
                "Your query could not be read as written; searched for the words.")


def matching_ids(user: User, text: str, limit: int = 10_000) -> list[int]:
    """Ids of every lesson matching ``text`` that ``user`` may see, best first."""
    text = (text or "").strip()[:MAX_QUERY_LENGTH]
    if not text:
        return []
    parsed, _ = _parse(text)
    found = store().searcher().search(parsed, limit=limit,
                                      filter=query.to_whoosh(policy.visibility_rule(user)))
    return [int(hit["lesson_id"]) for hit in found]


def search_lessons(user: User, text: str, page: int = 1, per_page: int = 20) -> SearchPage:
    """Ranked lessons matching ``text`` that ``user`` may see.

    The index query carries the user's visibility filter, so the total and the pages are
    right; hits are then reloaded from the database and passed through ``can_view``
    again, in rank order, and snippets are cut from the database's current text.
    """
    text = (text or "").strip()[:MAX_QUERY_LENGTH]
    page = min(max(page, 1), MAX_PAGE)
    result = SearchPage(query=text, page=page, per_page=per_page)
    if not text:
        return result
    parsed, result.notice = _parse(text)
    searcher = store().searcher()
    found = searcher.search_page(parsed, page, pagelen=per_page,
                                 filter=query.to_whoosh(policy.visibility_rule(user)))
    result.total = found.total
    if found.pagenum != page:  # Whoosh answers a page past the end with the last page
        return result
    ids = [int(hit["lesson_id"]) for hit in found]
    if not ids:
        return result
    lessons = {lesson.id: lesson for lesson in db.session.scalars(
        select(Lesson).where(Lesson.id.in_(ids)))}
    terms = query.highlight_terms(parsed)
    for lesson_id in ids:
        lesson = lessons.get(lesson_id)
        if lesson is None or not policy.can_view(user, lesson):
            continue  # second guard: the database is the truth
        snippets = [Markup(s) for s in (query.snippet(getattr(lesson, name), terms)
                                        for name in SNIPPET_FIELDS) if s][:2]
        if not snippets:  # matched on the title only
            snippets = [Markup.escape(lesson.observation[:240])]
        result.hits.append(Hit(lesson=lesson, snippets=snippets))
    return result
