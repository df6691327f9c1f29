"""The OpenAPI 3.1 document, generated from the pydantic schemas the API validates
bodies and serialises responses with, and from the operation table below (one entry
per route; a test checks that every API route is in it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from flask import jsonify
from pydantic import BaseModel

from lessons.api import API_MAX_BODY, bp
from lessons.api import schemas as s

ERROR_TEXT = {
    400: "The body is not readable JSON, or the request holds a NUL character.",
    401: "No valid API token.",
    403: "Visible to the caller, who may not change it.",
    404: "Does not exist, or the caller may not see it (the two look the same).",
    409: "The status table does not allow this move now.",
    412: "If-Match names a version that is no longer current.",
    413: f"The body is larger than {API_MAX_BODY // (1024 * 1024)} MB.",
    422: "The body or a parameter breaks a rule (or is not one the operation takes); "
         "`errors` lists each.",
    428: "A change needs If-Match.",
}


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # query, path, header
    description: str
    schema: dict = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    endpoint: str
    summary: str
    response: type[BaseModel] | None
    status: int = 200
    body: type[BaseModel] | None = None
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = (401, 404)
    etag: bool = False
    idempotent: bool = False  # takes an Idempotency-Key


PUBLIC_ID = Param("public_id", "path", "The public id.", required=True)
LESSON_ID = Param("lesson_id", "path", "The lesson's public id.", required=True)
IF_MATCH = Param("If-Match", "header", "The ETag (version) the change is based on.",
                 required=True)
IF_MATCH_OPTIONAL = Param("If-Match", "header", "Optionally, the ETag the move is based on.")
LIST = {"type": "string", "description": "One value, or several comma separated."}
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key", "header",
    "Makes the create safe to retry: a key of your choosing (e.g. a new UUID per "
    "create). Sent again by the same user with the same body within 24 hours, the "
    "request creates nothing and gets the first answer back (same status, body, "
    "Location and ETag, plus `Idempotent-Replayed: true`). The same key with another "
    "body is a 422. A refused create stores nothing, so its key may be reused. 1 to 255 "
    "visible ASCII characters, no spaces.",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"})
IDEMPOTENT_ERRORS = {
    409: "Another request with this Idempotency-Key is still being carried out; send it "
         "again in a moment to get its answer.",
    422: ERROR_TEXT[422] + " Or the Idempotency-Key is malformed, or was used in the "
         "last 24 hours with a different body.",
}

OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/lessons", "api.list_lessons",
              "Search lessons the caller may see (the search page's results, totals and "
              "facets)", s.LessonPage, params=(
                  Param("q", "query", "Search words in the query language.",
                        {"type": "string", "maxLength": 500}),
                  *(Param(name, "query", f"Filter by {name}.", LIST)
                    for name in ("kind", "status", "tag", "nation", "domain", "function",
                                 "originator", "year")),
                  Param("sort", "query", "relevance (default) or newest.",
                        {"type": "string", "enum": ["relevance", "newest"]}),
                  Param("page", "query", "From 1.", {"type": "integer", "minimum": 1,
                                                     "maximum": 10000}),
                  Param("per_page", "query", "1 to 100 (default 20).",
                        {"type": "integer", "minimum": 1, "maximum": 100})),
              errors=(401, 422)),
    Operation("post", "/lessons", "api.create_lesson",
              "Write a lesson: a draft, or submitted with \"submit\": true", s.LessonOut,
              status=201, body=s.LessonCreate, params=(IDEMPOTENCY_KEY,),
              errors=(400, 401, 403, 409, 413, 422), etag=True, idempotent=True),
    Operation("get", "/lessons/{public_id}", "api.get_lesson", "One lesson", s.LessonOut,
              params=(PUBLIC_ID,), etag=True),
    Operation("patch", "/lessons/{public_id}", "api.update_lesson",
              "Edit a lesson (keys given only)", s.LessonOut, body=s.LessonPatch,
              params=(PUBLIC_ID, IF_MATCH),
              errors=(400, 401, 403, 404, 412, 413, 422, 428), etag=True),
    Operation("post", "/lessons/{public_id}/transitions", "api.transition_lesson",
              "Move a lesson along the status table", s.LessonOut, body=s.TransitionIn,
              params=(PUBLIC_ID, IF_MATCH_OPTIONAL),
              errors=(400, 401, 403, 404, 409, 412, 413, 422), etag=True),
    Operation("get", "/exercises", "api.list_exercises",
              "Exercises the caller's nation takes part in", s.ExerciseList, params=(
                  Param("when", "query", "upcoming, past or all (default).",
                        {"type": "string", "enum": ["upcoming", "past", "all"]}),),
              errors=(401, 422)),
    Operation("post", "/exercises", "api.create_exercise", "Plan an exercise", s.ExerciseOut,
              status=201, body=s.ExerciseCreate, params=(IDEMPOTENCY_KEY,),
              errors=(400, 401, 403, 409, 413, 422), etag=True, idempotent=True),
    Operation("get", "/exercises/{public_id}", "api.get_exercise", "One exercise",
              s.ExerciseOut, params=(PUBLIC_ID,), etag=True),
    Operation("patch", "/exercises/{public_id}", "api.update_exercise",
              "Edit an exercise (keys given only)", s.ExerciseOut, body=s.ExercisePatch,
              params=(PUBLIC_ID, IF_MATCH),
              errors=(400, 401, 403, 404, 412, 413, 422, 428), etag=True),
    Operation("get", "/exercises/{public_id}/recommendations",
              "api.exercise_recommendations",
              "Lessons worth taking up, ranked, with reasons", s.RecommendationList, params=(
                  PUBLIC_ID,
                  Param("kind", "query", "Only this kind."),
                  Param("domain", "query", "Only this DOTMLPF-P domain."),
                  Param("tag", "query", "Only lessons with this tag."))),
    Operation("get", "/exercises/{public_id}/lessons", "api.exercise_lessons",
              "The lessons attached to an exercise that the caller may see", None,
              params=(PUBLIC_ID,)),
    Operation("post", "/exercises/{public_id}/lessons", "api.attach_lesson",
              "Attach a lesson (as proposed)", s.LinkOut, status=201, body=s.AttachIn,
              params=(PUBLIC_ID,), errors=(400, 401, 403, 404, 413, 422), etag=True),
    Operation("get", "/exercises/{public_id}/lessons/{lesson_id}",
              "api.get_exercise_lesson", "One attached lesson", s.LinkOut,
              params=(PUBLIC_ID, LESSON_ID), etag=True),
    Operation("patch", "/exercises/{public_id}/lessons/{lesson_id}",
              "api.update_exercise_lesson",
              "Change how an exercise uses a lesson, or move it one step", s.LinkOut,
              body=s.LinkPatch, params=(PUBLIC_ID, LESSON_ID, IF_MATCH),
              errors=(400, 401, 403, 404, 409, 412, 413, 422, 428), etag=True),
    Operation("get", "/exercises/{public_id}/packet", "api.exercise_packet",
              "A milestone's read-ahead packet for an audience", s.PacketOut, params=(
                  PUBLIC_ID,
                  Param("milestone", "query", "Default: the next planning conference."),
                  Param("audience", "query", "Participating nations, comma separated "
                                             "(default: all of them).")),
              errors=(401, 404, 422)),
    Operation("get", "/openapi.json", "api.openapi", "This document", None, errors=()),
)

_SPECIAL = {"api.exercise_lessons": {
    "type": "object", "required": ["items"],
    "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/LinkOut"}}}},
    "api.openapi": {"type": "object"}}


def query_names(endpoint: str, method: str) -> set[str] | None:
    """The query parameters an operation takes (``None`` for an unknown operation)."""
    for op in OPERATIONS:
        if op.endpoint == endpoint and op.method == method.lower():
            return {p.name for p in op.params if p.where == "query"}
    return None


def _schema(model: type[BaseModel], components: dict[str, Any], mode: str) -> dict:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _parameter(param: Param) -> dict:
    return {"name": param.name, "in": param.where, "required": param.required,
            "description": param.description, "schema": param.schema}


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (built once per process)."""
    components: dict[str, Any] = {}
    problem = _schema(s.Problem, components, "serialization")
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        success: dict[str, Any] = {"description": op.summary}
        schema = (_schema(op.response, components, "serialization") if op.response
                  else _SPECIAL[op.endpoint])
        success["content"] = {"application/json": {"schema": schema}}
        if op.etag:
            success["headers"] = {"ETag": {"description": "The version, for If-Match.",
                                           "schema": {"type": "string"}}}
        if op.idempotent:
            success.setdefault("headers", {})["Idempotent-Replayed"] = {
                "description": "`true` when this is the stored answer to an earlier "
                               "request with the same Idempotency-Key.",
                "schema": {"type": "string", "enum": ["true"]}}
        responses: dict[str, Any] = {str(op.status): success}
        # Any operation refuses query parameters it does not take (422), and NUL
        # characters in its address or query (400).
        codes = sorted(set(op.errors) | {400} | ({422} if op.endpoint != "api.openapi"
                                                 else set()))
        for code in codes:
            text = (IDEMPOTENT_ERRORS.get(code, ERROR_TEXT[code]) if op.idempotent
                    else ERROR_TEXT[code])
            responses[str(code)] = {"description": text, "content": {
                "application/problem+json": {"schema": problem}}}
        operation: dict[str, Any] = {
            "operationId": op.endpoint.removeprefix("api."), "summary": op.summary,
            "parameters": [_parameter(p) for p in op.params], "responses": responses}
        if op.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": _schema(op.body, components, "validation")}}}
        if op.endpoint == "api.openapi":
            operation["security"] = []
        paths.setdefault(op.path, {})[op.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Muster API", "version": "1",
                 "description": "Lessons learned and exercise integration for armies that "
                                "operate together. Every call acts as the token's user, "
                                "under the same sharing rules as the web pages."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "A personal API token from your account page."}}},
    }


@bp.get("/openapi.json")
def openapi():
    return jsonify(document())

