"""Domain errors raised by services and the policy, and their one mapping to HTTP.

Services raise these; ``register_error_pages`` turns them into pages with the right
status, so views never choose status codes for domain failures.
"""

from __future__ import annotations

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException


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


class NotAllowed(DomainError):
    """The user can see the thing but may not change it this way."""

    status = 403
    title = "Not allowed"


class InvalidTransition(DomainError):
    """The status table does not allow this move from the current status."""

    status = 409
    title = "Not possible in this status"


class ValidationFailed(DomainError):
    """Input breaks a rule; ``errors`` maps contract keys to messages."""

    status = 422
    title = "Please correct the highlighted fields"

    def __init__(self, errors: dict[str, str], message: str = "") -> None:
        super().__init__(message or "; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def register_error_pages(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        return render_template("errors/error.html", status=error.status,
                               title=error.title, message=error.message), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code is None or error.code < 400:  # routing redirects are not errors
            return error
        return render_template("errors/error.html", status=error.code,
                               title=error.name, message=error.description), error.code
