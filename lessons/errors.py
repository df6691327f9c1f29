"""Domain errors raised by services and the policy, and their one mapping to HTTP.

Services raise these; ``register_error_pages`` turns them into pages with the right
status, so views never choose status codes for domain failures.
"""

from __future__ import annotations

import json
import logging
import sqlite3

import psycopg
from flask import Flask, Response, current_app, render_template, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import NotFound as NotFoundPage

log = logging.getLogger(__name__)


class DomainError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.title)
        self.message = message or self.title


class NotFound(DomainError):
    """The thing does not exist *or the user may not see it*: the two look the same."""

    status = 404
    title = "Not found"


# An address that names no page (Werkzeug's own 404, which no view raised on purpose).
PAGE_NOT_FOUND = ("Page not found", "There is no page at this address: it may have been "
                  "mistyped, or the link may be out of date.")


class NotAllowed(DomainError):
    """The user can see the thing but may not change it this way."""

    status = 403
    title = "Not allowed"


class InvalidTransition(DomainError):
    """The status table does not allow this move from the current status."""

    status = 409
    title = "Not possible in this status"


class PreconditionFailed(DomainError):
    """The change was based on a version that is no longer the current one."""

    status = 412
    title = "Changed since you loaded it"


class ConcurrentChange(PreconditionFailed):
    """Someone else's change to the same thing committed first, between this request's
    read and its write (the version-checked UPDATE matched no row). Nothing of this
    request was stored. 409 on pages; over the API 412 when the request named its version
    with ``If-Match``, otherwise 409."""

    status = 409
    title = "Changed by someone else at the same moment"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or "Someone else changed this at the same moment, and "
                         "their change was saved first; nothing of yours was stored. "
                         "Reload it and apply your change again if it is still needed.")


class PreconditionRequired(DomainError):
    """A change to a versioned thing must say which version it was based on."""

    status = 428
    title = "Version required"


class DatabaseUnavailable(DomainError):
    """The database cannot be reached, or stayed busy past the wait: nothing is wrong
    with the request, so the client is told to try again shortly."""

    status = 503
    title = "Service unavailable"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or "Muster cannot reach its database at the moment. "
                         "Nothing was changed; please try again in a little while.")


class ValidationFailed(DomainError):
    """Input breaks a rule; ``errors`` maps contract keys to messages."""

    status = 422
    title = "Please correct the highlighted fields"

    def __init__(self, errors: dict[str, str], message: str = "") -> None:
        super().__init__(message or "; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def problem(status: int, title: str, detail: str, *,
            errors: list[dict[str, str]] | None = None,
            headers: dict[str, str] | None = None) -> Response:
    """An RFC 9457 problem document: what API clients get for every error."""
    body: dict = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    response = Response(json.dumps(body, ensure_ascii=False), status=status,
                        mimetype="application/problem+json", headers=headers)
    return response


def unavailable(error: DatabaseUnavailable) -> Response:
    """The 503 answer. Its page extends no layout and runs no context processor: those
    load the logged-in user, which needs the very database that is down."""
    headers = {"Retry-After": str(current_app.config["UNAVAILABLE_RETRY_AFTER"])}
    if is_api_request():
        return problem(error.status, error.title, error.message, headers=headers)
    page = current_app.jinja_env.get_template("errors/unavailable.html").render(
        title=error.title, message=error.message)
    return Response(page, status=error.status, mimetype="text/html", headers=headers)


def too_large_message() -> str:
    """What a 413 says: Werkzeug's text names no limit, and a user cannot fix what they
    are not told. The limit is this request's (the API sets a smaller one)."""
    limit = request.max_content_length or current_app.config["MAX_CONTENT_LENGTH"]
    size = f"{limit / (1024 * 1024):g} MB" if limit else "the size limit"
    return (f"The request is larger than {size}, the most Muster accepts at once. "
            "Nothing was stored: split the file into smaller ones and upload each.")


def register_error_pages(app: Flask) -> None:
    from lessons import outages

    def database_error(error: Exception):
        """Database errors reach here unhandled by services; only an unreachable or busy
        database is a 503, every other one stays the server error it is."""
        if not outages.database_unavailable(error):
            raise error
        log.warning("database unavailable: %s", outages.describe(error))
        outages.discard_session()
        return unavailable(DatabaseUnavailable())

    for kind in (SQLAlchemyError, sqlite3.Error, psycopg.Error):
        app.register_error_handler(kind, database_error)

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        if isinstance(error, DatabaseUnavailable):
            return unavailable(error)
        if is_api_request():
            errors = None
            if isinstance(error, ValidationFailed):
                errors = [{"field": key, "message": message}
                          for key, message in error.errors.items()]
            status = error.status
            if isinstance(error, ConcurrentChange) and request.headers.get("If-Match"):
                status = PreconditionFailed.status
            return problem(status, error.title, error.message, errors=errors)
        return render_template("errors/error.html", status=error.status,
                               title=error.title, message=error.message), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code is None or error.code < 400:  # routing redirects are not errors
            return error
        if error.code == 413:
            error.description = too_large_message()
        original = getattr(error, "original_exception", None)
        if error.code == 500 and outages.database_unavailable(original):
            # Raised where no handler above applies: after the response was made, or
            # while an error page was drawn (it loads the user).
            return database_error(original)
        if is_api_request():
            headers = dict(error.get_headers())
            headers.pop("Content-Type", None)
            return problem(error.code, error.name, error.description or error.name,
                           headers=headers)
        # The headers the error carries, such as a 405's Allow, belong on the page too.
        headers = [(k, v) for k, v in error.get_headers() if k != "Content-Type"]
        title, message = error.name, error.description
        if error.code == 404 and message == NotFoundPage.description:
            title, message = PAGE_NOT_FOUND  # not Werkzeug's stock wording
        return render_template("errors/error.html", status=error.code,
                               title=title, message=message), error.code, headers
