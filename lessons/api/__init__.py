"""The JSON API, ``/api/v1``: bearer tokens only (no cookies, so no CSRF; the federation
feed alone is called by peer instances signing each request instead), the same
services and policy as the pages, RFC 9457 problems for every error, and ``ETag`` /
``If-Match`` on everything that can be changed.

The OpenAPI document (``/api/v1/openapi.json``) is generated from ``schemas`` and the
operation table in ``openapi``; ``/api/docs`` renders it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, g, jsonify, request
from pydantic import BaseModel, ValidationError

from lessons.errors import PreconditionFailed, PreconditionRequired, ValidationFailed, problem
from lessons.extensions import csrf
from lessons.models import User
from lessons.rules import unstorable
from lessons.services import idempotency, tokens

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# A lesson is eight 50,000-character texts at most; escaped JSON of that fits in 2 MB.
API_MAX_BODY = 2 * 1024 * 1024
PUBLIC = frozenset({"api.openapi"})
# Called by other Muster instances, which sign each request (``federation.online``).
PEER_SIGNED = frozenset({"api.federation_feed"})

Model = TypeVar("Model", bound=BaseModel)
Created = TypeVar("Created")


@bp.before_request
def authenticate() -> Response | None:
    """Every API call names its user by a bearer token; the session cookie is ignored."""
    request.max_content_length = API_MAX_BODY
    if request.endpoint in PUBLIC or request.endpoint in PEER_SIGNED:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    user = tokens.authenticate(secret.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        return problem(401, "Unauthorized", "Send a valid API token: "
                       "'Authorization: Bearer <token>' (create one on your account page "
                       "or with `flask users token`).",
                       headers={"WWW-Authenticate": 'Bearer realm="muster"'})
    g.api_user = user
    check_query_names()
    return None


def check_query_names() -> None:
    """Refuse query parameters the operation does not take: a misspelt filter
    (``?stauts=``) would otherwise be ignored silently and return everything. Values
    longer than the document declares are refused too (``openapi.too_long``)."""
    from lessons.api.openapi import query_names, too_long

    # HEAD is GET without the body, so it takes GET's parameters.
    method = "GET" if request.method == "HEAD" else request.method
    allowed = query_names(request.endpoint or "", method)
    if allowed is None:
        return
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise ValidationFailed({name[:60]: "Not a parameter of this operation."
                                for name in unknown[:20]})
    errors = too_long(request.endpoint or "", method, request.args, request.headers)
    if errors:
        raise ValidationFailed(errors)


def caller() -> User:
    return g.api_user


def body(model: type[Model]) -> Model:
    """The request's JSON body, checked against ``model``: 400 if it is not JSON, 422
    listing every field that breaks the schema."""
    if not request.is_json:
        raise BadBody("Send a JSON body with 'Content-Type: application/json'.")
    try:
        data = request.get_json(silent=True)
        bad = unstorable(data)
    except RecursionError:  # ``silent`` covers malformed JSON only, not too deep
        raise BadBody("The JSON is nested too deeply.") from None
    if data is None:
        raise BadBody("The body is not readable JSON.")
    if bad is not None:
        raise ValidationFailed({bad or "body": "Text may not contain NUL characters or "
                                               "unpaired surrogates."})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(_field_errors(exc)) from None


def _field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "body"
        errors.setdefault(where, error["msg"])
    return errors


class BadBody(ValidationFailed):
    """Not a readable JSON body at all: 400, not 422."""

    status = 400
    title = "Bad request"

    def __init__(self, message: str) -> None:
        super().__init__({"body": message}, message)


def if_match(required: bool = True) -> int | None:
    """The version named by ``If-Match`` (``None`` for ``*``, or when optional and
    absent). 428 when required and absent; 412 when it names no version."""
    header = request.headers.get("If-Match", "").strip()
    if not header:
        if required:
            raise PreconditionRequired("Send 'If-Match' with the ETag of the version your "
                                       "change is based on (GET it first).")
        return None
    if header == "*":
        return None
    value = header.split(",")[0].strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise PreconditionFailed(f"If-Match {header!r} names no version of this resource.")
    return int(value)


def query_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValidationFailed({name: f"Must be a whole number from {low} to {high}."})
    return int(raw)


def respond(data: Any, status: int = 200, *, version: int | None = None,
            location: str | None = None) -> Response:
    response = jsonify(data)
    response.status_code = status
    if version is not None:
        response.headers["ETag"] = f'"{version}"'
    if location:
        response.headers["Location"] = location
    return response


def create_once(create: Callable[[], Created], made: type[Created],
                answer: Callable[[Created], Response]) -> Response:
    """Run ``create`` (a service call making one new ``made``) and answer with
    ``answer(created)``; with an ``Idempotency-Key``, at most once per user and key,
    a repeat getting the first answer again (marked ``Idempotent-Replayed: true``)."""
    key = request.headers.get(idempotency.HEADER)
    if key is None:
        return answer(create())

    def stored(created: Created) -> idempotency.Answer:
        response = answer(created)
        return idempotency.Answer(response.status_code, response.get_data(as_text=True),
                                  dict(response.headers))

    result = idempotency.run_once(caller(), key, request.endpoint or "", request.get_data(),
                                  create, made, stored)
    response = Response(result.body, status=result.status, headers=result.headers,
                        mimetype="application/json")
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def register_api(app: Flask) -> None:
    from lessons.api import (  # noqa: F401  (routes)
        docs,
        exercises,
        federation,
        lessons,
        openapi,
    )

    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.register_blueprint(docs.bp)
