"""Turning a lesson into an index document."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from lessons.models import Lesson
from lessons.search.schema import TEXT_FIELDS


def _keywords(values) -> str:
    # Commas separate keywords, so a value's own commas must not split it.
    return ",".join(str(v).replace(",", " ") for v in values if v)


def lesson_document(lesson: Lesson) -> dict[str, Any]:
    """Everything the index needs about ``lesson`` (and nothing for display)."""
    doc: dict[str, Any] = {name: getattr(lesson, name) or "" for name in TEXT_FIELDS}
    doc.update(
        lesson_id=str(lesson.id),
        version=lesson.version,
        tag=_keywords(lesson.tags),
        kind=lesson.kind,
        status=lesson.status,
        domain=_keywords(lesson.domains),
        function=_keywords(lesson.functions),
        nation=_keywords(n.lower() for n in lesson.nations),
        unit=_keywords([lesson.unit]),
        source_event=_keywords([lesson.source_event]),
        originator=lesson.originator_nation,
        releasable_to=" ".join(lesson.releasable_to),
        author_id=str(lesson.author_id),
    )
    if lesson.observed_on:
        doc["observed"] = datetime.combine(lesson.observed_on, time())
    return doc
