"""``/api/v1/lessons``: search, read, write and move lessons, under the same policy and
services as the pages."""

from __future__ import annotations

from flask import url_for

from lessons import search
from lessons.api import body, bp, caller, create_once, if_match, query_int, respond
from lessons.api.schemas import (
    LessonCreate,
    LessonOut,
    LessonPage,
    LessonPatch,
    TransitionIn,
    dump,
)
from lessons.errors import ValidationFailed
from lessons.models import Lesson
from lessons.rules import PAGE_MAX, PER_PAGE_MAX, QUERY_MAX
from lessons.services import glossary
from lessons.services import lessons as service
from lessons.services.exchange import lesson_record

# Query parameters that filter, by search facet name.
LESSON_FILTERS = ("kind", "status", "tag", "nation", "domain", "function", "originator",
                  "origin", "year")


def lesson_json(lesson: Lesson) -> dict:
    """A lesson in the exchange format's contract keys, plus what the API adds."""
    return dump(LessonOut, {
        **lesson_record(lesson), "id": lesson.public_id, "version": lesson.version,
        "created_at": lesson.created_at, "updated_at": lesson.updated_at,
        "marking": lesson.marking})


def _lesson_response(lesson: Lesson, status: int = 200):
    return respond(lesson_json(lesson), status, version=lesson.version,
                   location=url_for("api.get_lesson", public_id=lesson.public_id)
                   if status == 201 else None)


@bp.get("/lessons")
def list_lessons():
    """The search page's results, totals and facets, as JSON."""
    from flask import request

    page = query_int("page", 1, 1, PAGE_MAX)
    per_page = query_int("per_page", 20, 1, PER_PAGE_MAX)
    text = request.args.get("q", "")
    if len(text) > QUERY_MAX:
        raise ValidationFailed({"q": f"At most {QUERY_MAX} characters."})
    filters = search.clean_filters({name: [v for raw in request.args.getlist(name)
                                           for v in raw.split(",")]
                                    for name in LESSON_FILTERS})
    sort = request.args.get("sort", "relevance")
    if sort not in ("relevance", "newest"):
        raise ValidationFailed({"sort": "Must be relevance or newest."})
    result = search.search_lessons(caller(), text, page=page, per_page=per_page,
                                   filters=filters, sort=sort, glossary=glossary.current())
    return respond(dump(LessonPage, {
        "items": [lesson_json(hit.lesson) for hit in result.hits], "total": result.total,
        "page": result.page, "per_page": result.per_page,
        "facets": {facet.name: [{"value": v.value, "label": v.label, "count": v.count}
                                for v in facet.values] for facet in result.facets},
        "partial_match": result.partial_match,
        "message": result.partial_message or result.notice,
        "expansions": [{"term": typed, "also_searched_as": list(others)}
                       for typed, others in result.expansions],
        "problems": result.problems, "suggestion": result.suggestion}))


@bp.get("/lessons/<public_id>")
def get_lesson(public_id: str):
    return _lesson_response(service.get_lesson(caller(), public_id))


@bp.post("/lessons")
def create_lesson():
    data = body(LessonCreate)
    values = data.model_dump(exclude_unset=True, exclude={"submit"})
    return create_once(lambda: service.create_lesson(caller(), values, submit=data.submit),
                       Lesson, lambda lesson: _lesson_response(lesson, 201))


@bp.patch("/lessons/<public_id>")
def update_lesson(public_id: str):
    service.get_lesson(caller(), public_id)  # 404 before anything else
    expected = if_match()
    data = body(LessonPatch)
    lesson = service.update_lesson(caller(), public_id, data.model_dump(exclude_unset=True),
                                   expected_version=expected)
    return _lesson_response(lesson)


@bp.post("/lessons/<public_id>/transitions")
def transition_lesson(public_id: str):
    service.get_lesson(caller(), public_id)
    expected = if_match(required=False)
    data = body(TransitionIn)
    lesson = service.transition_lesson(caller(), public_id, data.to, data.text(),
                                       expected_version=expected,
                                       releasable_to=data.releasable_to)
    return _lesson_response(lesson)
