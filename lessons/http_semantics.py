"""What HTTP says every route does, pages and API alike, whoever calls.

``OPTIONS`` asks what a URL allows. The answer (``Allow``) is the same for everyone and
tells nothing the OpenAPI document does not, so it is given before any login, token or
role check: Flask answers it itself, but only after every ``before_request`` hook, and
a hook that redirects to the login page or refuses a missing token would answer first.

Pages take form data only. A JSON body would reach Flask-WTF, which reads it as form
data and fails on anything but a flat object; refusing it up front (415) keeps a client
that posts JSON to the wrong URL from getting a server error.
"""

from __future__ import annotations

from flask import Flask, Response, abort, current_app, request

from lessons.errors import is_api_request

SUBMIT_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def answer_options() -> Response | None:
    rule = request.url_rule
    if (request.method == "OPTIONS" and rule is not None
            and request.routing_exception is None
            and getattr(rule, "provide_automatic_options", False)):
        return current_app.make_default_options_response()
    return None


def refuse_json_to_pages() -> None:
    if request.method in SUBMIT_METHODS and request.is_json and not is_api_request():
        abort(415, "Pages take form data; the JSON API is under /api/v1.")


def register_http_semantics(app: Flask) -> None:
    """Before any hook that checks who the caller is (hooks run in order)."""
    app.before_request(answer_options)
    app.before_request(refuse_json_to_pages)
