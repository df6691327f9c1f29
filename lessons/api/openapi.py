"""The OpenAPI 3.1 document, generated from the pydantic schemas the API validates
bodies and serialises responses with, and from the operation table below (one entry
per route; a test checks that every API route is in it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from flask import jsonify
from pydantic import BaseModel

from lessons.api import API_MAX_BODY, bp
from lessons.api import schemas as s
from lessons.federation.bundles import BUNDLE_FILE_MAX
from lessons.rules import NATIONS_MAX, QUERY_MAX, TAG_MAX
from lessons.search import FILTER_VALUE_MAX, FILTERS_MAX

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
    429: "Too many requests with this token: wait for the seconds in Retry-After.",
    500: "An unexpected fault on the server; the body says nothing more.",
    503: "The database is unreachable or busy: send the request again after Retry-After "
         "seconds.",
}


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # query, path, header
    description: str
    schema: dict = field(default_factory=lambda: {"type": "string",
                                                  "maxLength": TAG_MAX})
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
    media: str = "application/json"  # of the success answer
    empty: int | None = None  # a second success status, with no body (204)
    peer_signed: bool = False  # called by a peer instance signing it, not with a token
    error_text: tuple[tuple[int, str], ...] = ()  # this operation's words for a status


ID = {"type": "string", "minLength": 1, "maxLength": s.PUBLIC_ID_MAX}
PUBLIC_ID = Param("public_id", "path", "The public id.", ID, required=True)
LESSON_ID = Param("lesson_id", "path", "The lesson's public id.", ID, required=True)
# An ETag is the version in quotes (If-Match also takes a list, or *).
ETAG = {"type": "string", "maxLength": 12, "pattern": '^"[0-9]{1,10}"$'}
IF_MATCH_SCHEMA = {"type": "string", "maxLength": 1000}
IF_MATCH = Param("If-Match", "header", "The ETag (version) the change is based on.",
                 IF_MATCH_SCHEMA, required=True)
IF_MATCH_OPTIONAL = Param("If-Match", "header", "Optionally, the ETag the move is based on.",
                          IF_MATCH_SCHEMA)
# Values beyond FILTERS_MAX, or longer than FILTER_VALUE_MAX, are ignored.
LIST = {"type": "string", "description": "One value, or several comma separated.",
        "maxLength": FILTERS_MAX * (FILTER_VALUE_MAX + 1)}
CODES = {"type": "string", "maxLength": NATIONS_MAX * (s.CODE_MAX + 1)}
INT64_MAX = 2**63 - 1
# What the feed's bundle answer carries besides the rate limit's headers.
FEED_HEADERS = {
    "Muster-Sequence": {"description": "The bundle's sequence number.", "schema": {
        "type": "integer", "format": "int32", "minimum": 1, "maximum": s.INT32_MAX}},
    "Content-Disposition": {"description": "attachment, with a file name.", "schema": {
        "type": "string", "maxLength": 200}},
}
# The rate limit's headers, on every answer of the API (Flask-Limiter's names).
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": ("Requests this token may make in the current window.",
                          s.INT32_MAX),
    "X-RateLimit-Remaining": ("Requests left in the current window.", s.INT32_MAX),
    "X-RateLimit-Reset": ("When the window ends, in seconds since 1970-01-01 UTC.",
                          INT64_MAX),
    "Retry-After": ("Seconds until the window ends (on a 429: wait this long).", s.INT32_MAX),
}
RATE_LIMIT_TEXT = ("Rate limit: each token may make a number of requests per minute "
                   "(600 unless the operator sets MUSTER_API_RATE_LIMIT); every answer "
                   "carries X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset "
                   "and Retry-After, and a request over the limit gets a 429 problem.")
CORS = ("Cross-origin browser calls: the API sends no Access-Control-* (CORS) headers, so "
        "browsers refuse calls from pages of other origins; scripts and servers call it "
        "with a token.")
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
                        {"type": "string", "maxLength": QUERY_MAX}),
                  *(Param(name, "query", f"Filter by {name}.", LIST)
                    for name in ("kind", "status", "tag", "nation", "domain", "function",
                                 "originator", "year")),
                  Param("origin", "query", "Filter by the instance a lesson was received "
                        "from (its name, or local for this instance's own).", LIST),
                  Param("sort", "query", "relevance (default) or newest.",
                        {"type": "string", "enum": ["relevance", "newest"]}),
                  Param("page", "query", "From 1.", {"type": "integer", "format": "int32",
                                                     "minimum": 1, "maximum": s.PAGE_MAX}),
                  Param("per_page", "query", f"1 to {s.PER_PAGE_MAX} (default 20).",
                        {"type": "integer", "format": "int32", "minimum": 1,
                         "maximum": s.PER_PAGE_MAX})),
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
                  Param("milestone", "query", "Default: the next planning conference.",
                        {"type": "string", "maxLength": s.MILESTONE_NAME_MAX}),
                  Param("audience", "query", "Participating nations, comma separated "
                                             "(default: all of them).", CODES)),
              errors=(401, 404, 422)),
    Operation("get", "/federation/feed", "api.federation_feed",
              "For a peer Muster instance: this instance's next signed bundle for it (the "
              "file `flask federation export` writes, byte for byte)", None, params=(
                  Param("after", "query", "The sequence number of the last bundle from "
                        "this instance the caller applied (0: none yet). Naming it "
                        "acknowledges it; the answer is the bundle after it.",
                        {"type": "integer", "format": "int32", "minimum": 0,
                         "maximum": s.INT32_MAX}, required=True),),
              errors=(400, 401, 404, 409, 410), media="application/zip", empty=204,
              peer_signed=True, error_text=(
                  (400, "after= is missing or not a whole number."),
                  (401, "The request is not signed by a registered peer: a header is "
                        "missing or malformed, the caller is unknown, the signature does "
                        "not match its key, or Muster-Date is more than 300 seconds off."),
                  (404, "This instance takes no part in federation."),
                  (409, "after= names a bundle never written for the caller."),
                  (410, "The bundle after after= was acknowledged earlier and is no longer "
                        "kept: the caller's state is behind what it acknowledged."))),
    Operation("get", "/openapi.json", "api.openapi", "This document", None, errors=()),
)

PEER_SECURITY = {"musterPeer": [], "musterDate": [], "musterSignature": []}
PEER_SCHEMES = {
    "musterPeer": {"type": "apiKey", "in": "header", "name": "Muster-Peer",
                   "description": "The calling instance's name (its MUSTER_INSTANCE_NAME), "
                                  "registered here as a peer."},
    "musterDate": {"type": "apiKey", "in": "header", "name": "Muster-Date",
                   "description": "When the request was signed, UTC, e.g. "
                                  "2026-12-06T17:00:00Z; at most 300 seconds off this "
                                  "server's clock."},
    "musterSignature": {"type": "apiKey", "in": "header", "name": "Muster-Signature",
                        "description": "Base64 Ed25519 signature, with the calling "
                                       "instance's key, of the bytes \"muster-feed-1\\n\" "
                                       "METHOD \"\\n\" path-with-query \"\\n\" this "
                                       "instance's name \"\\n\" Muster-Peer \"\\n\" "
                                       "Muster-Date."},
}

_SPECIAL = {"api.exercise_lessons": {
    "type": "object", "required": ["items"],
    "properties": {"items": {
        "type": "array", "items": {"$ref": "#/components/schemas/LinkOut"},
        "description": "Every attached lesson the caller may see: as many as the exercise "
                       "has attached (no cap)."}}},
    "api.openapi": {"type": "object"},
    "api.federation_feed": {"type": "string", "contentMediaType": "application/zip",
                            "maxLength": BUNDLE_FILE_MAX}}


def query_names(endpoint: str, method: str) -> set[str] | None:
    """The query parameters an operation takes (``None`` for an unknown operation)."""
    for op in OPERATIONS:
        if op.endpoint == endpoint and op.method == method.lower():
            return {p.name for p in op.params if p.where == "query"}
    return None


def too_long(endpoint: str, method: str, args: Mapping[str, str],
             headers: Mapping[str, str]) -> dict[str, str]:
    """The query parameters and If-Match longer than the document declares: a limit the
    document states is one the server keeps, rather than a value it ignores. (The
    Idempotency-Key has its own check and message.)"""
    errors: dict[str, str] = {}
    for op in OPERATIONS:
        if op.endpoint != endpoint or op.method != method.lower():
            continue
        for param in op.params:
            if param.where == "header" and param.name != "If-Match":
                continue
            limit = param.schema.get("maxLength")
            source = {"query": args, "header": headers}.get(param.where)
            value = source.get(param.name) if source is not None else None
            if limit is not None and value is not None and len(value) > limit:
                errors[param.name] = f"At most {limit:,} characters."
    return errors


def _schema(model: type[BaseModel], components: dict[str, Any], mode: str) -> dict:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _rate_limit_headers() -> dict[str, Any]:
    """Declared, not required: a server whose operator turned rate limiting off
    (RATELIMIT_ENABLED) sends none of them."""
    return {name: {"description": text, "schema": {
        "type": "integer", "format": "int64" if biggest > s.INT32_MAX else "int32",
        "minimum": 0, "maximum": biggest}}
        for name, (text, biggest) in RATE_LIMIT_HEADERS.items()}


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
        success["content"] = {op.media: {"schema": schema}}
        success["headers"] = _rate_limit_headers()
        if op.peer_signed:
            success["headers"].update(FEED_HEADERS)
        if op.etag:
            success["headers"]["ETag"] = {"description": "The version, for If-Match.",
                                          "schema": ETAG}
        if op.idempotent:
            success.setdefault("headers", {})["Idempotent-Replayed"] = {
                "description": "`true` when this is the stored answer to an earlier "
                               "request with the same Idempotency-Key.",
                "schema": {"type": "string", "enum": ["true"]}}
        responses: dict[str, Any] = {str(op.status): success}
        if op.empty is not None:
            responses[str(op.empty)] = {"description": "Nothing new: the caller has every "
                                                       "bundle (its after= is acknowledged).",
                                        "headers": _rate_limit_headers()}
        # Any operation refuses query parameters it does not take (422), and NUL
        # characters in its address or query (400).
        # Every operation counts toward the token's rate limit (429), may fail (500), and
        # waits for a database that is down or busy (503).
        codes = sorted(set(op.errors) | {400, 429, 500, 503} | (
            {422} if op.endpoint != "api.openapi" else set()))
        for code in codes:
            text = (IDEMPOTENT_ERRORS.get(code, ERROR_TEXT[code]) if op.idempotent
                    else dict(op.error_text).get(code) or ERROR_TEXT[code])
            responses[str(code)] = {"description": text, "content": {
                "application/problem+json": {"schema": problem}}}
            if code < 500:
                responses[str(code)]["headers"] = _rate_limit_headers()
            elif code == 503:
                responses[str(code)]["headers"] = {"Retry-After": {
                    "description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer", "format": "int32", "minimum": 0,
                               "maximum": s.INT32_MAX}}}
        operation: dict[str, Any] = {
            "operationId": op.endpoint.removeprefix("api."), "summary": op.summary,
            "parameters": [_parameter(p) for p in op.params], "responses": responses}
        if op.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": _schema(op.body, components, "validation")}}}
        if op.endpoint == "api.openapi":
            operation["security"] = []
        if op.peer_signed:
            operation["security"] = [PEER_SECURITY]
        paths.setdefault(op.path, {})[op.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Muster API", "version": "1",
                 "description": "Lessons learned and exercise integration for armies that "
                                "operate together. Every call acts as the token's user, "
                                "under the same sharing rules as the web pages.\n\n"
                                f"{RATE_LIMIT_TEXT}\n\n{CORS}"},
        # Internal: for the coalition's own users and their scripts, not the public.
        "servers": [{"url": "/api/v1", "x-internal": True,
                     "description": "This deployment (production, or whichever environment "
                                    "serves this document): paths are relative to it."}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "A personal API token from your account page."},
            **PEER_SCHEMES}},
    }


@bp.get("/openapi.json")
def openapi():
    return jsonify(document())

