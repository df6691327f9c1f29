"""Turning a lesson into an index document."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from lessons.models import Lesson
from lessons.search.schema import CONTENT_PARTS, LOCAL_ORIGIN, SCHEMA_VERSION


def _keywords(values) -> str:
    # Commas separate keywords, so a value's own commas must not split it.
    return ",".join(str(v).replace(",", " ") for v in values if v)


def lesson_date(lesson: Lesson) -> date:
    """The date a lesson is sorted, filtered and faceted by: when it was observed, else
    when it was written (the date the result list shows)."""
    if lesson.observed_on:
        return lesson.observed_on
    return (lesson.created_at or datetime.now()).date()


def files_text(lesson: Lesson) -> str:
    """The words of the lesson's attached files, one after another (each already bounded
    when it was extracted)."""
    return "\n\n".join(item.extracted_text for item in lesson.files if item.extracted_text)


def lesson_document(lesson: Lesson) -> dict[str, Any]:
    """Everything the index needs about ``lesson`` (and nothing for display)."""
    content = "\n\n".join(getattr(lesson, name) or "" for name in CONTENT_PARTS)
    when = lesson_date(lesson)
    return {
        "lesson_id": str(lesson.id),
        "version": lesson.version,
        "schema_version": SCHEMA_VERSION,
        "title": lesson.title or "",
        "content": content,
        "files": files_text(lesson),
        "tag": _keywords(lesson.tags),
        "kind": lesson.kind,
        "status": lesson.status,
        "domain": _keywords(lesson.domains),
        "function": _keywords(lesson.functions),
        "nation": _keywords(lesson.nations),
        "originator": lesson.originator_nation,
        "origin": (lesson.origin_instance or LOCAL_ORIGIN).lower(),
        "unit": lesson.unit or "",
        "source_event": lesson.source_event or "",
        "observed": datetime.combine(when, time()),
        "year": str(when.year),
        "releasable_to": " ".join(lesson.releasable_to),
        "author_id": str(lesson.author_id),
    }
