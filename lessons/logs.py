"""Logging: one JSON object a line in production (text for a developer), and a request
id in every line written while a request is served, so a collector can gather all that
one request caused, across modules and workers, from the id a user or proxy reports.

Plain ``logging``: a ``Formatter`` subclass for the JSON, a ``Filter`` that stamps each
record with the request id held in a context variable, and one handler on the root
logger, so every module's ``logging.getLogger(__name__)`` is covered without knowing of
this one. ``gunicorn.conf.py`` gives gunicorn's own error log the same formatter.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

from flask import Flask, Response, g, request

REQUEST_ID_HEADER = "X-Request-ID"
# An id taken from a client or proxy goes into every log line: short, and only
# characters that cannot forge a field, break a line or smuggle markup.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_request_id: ContextVar[str | None] = ContextVar("muster_request_id", default=None)
# LogRecord's own attributes; anything else on a record was passed in ``extra``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id"}
ACCESS_LOGGER = "muster.access"


def current_request_id() -> str | None:
    return _request_id.get()


def request_id_from(header: str | None) -> str:
    """The caller's id when it is safe to repeat, else a fresh one: a proxy's id then
    ties its log to ours, and a hostile header cannot reach the logs."""
    if header and _SAFE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Stamps every record with the current request's id (``None`` outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, request
    id, the ``extra`` fields a caller passed, and the traceback as one string."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(log_format: str, stream=None) -> logging.Handler:
    """Give the root logger one handler (standard error) in ``log_format``, replacing
    the one an earlier call installed: an app built twice (tests, a CLI command that
    builds its own) must not write each line twice."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "muster", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.muster = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter_for(log_format))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


def init_app(app: Flask) -> None:
    """Install the handler and the per-request id and access line; call first in the
    factory, so the id exists before any other ``before_request`` can log."""
    if not app.config.get("TESTING"):
        # Tests read records through pytest's own handler (caplog) instead.
        configure(app.config["LOG_FORMAT"])
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_forget)


def _start() -> None:
    g.request_started = time.perf_counter()
    g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    g.request_id_token = _request_id.set(g.request_id)


def _finish(response: Response) -> Response:
    """The id goes back to the client (to quote when reporting a problem) and the
    access line is written; registered first, this runs after every other
    ``after_request``, so the status logged is the one sent."""
    request_id = g.get("request_id")
    if request_id is None:  # a request some earlier hook ended before _start ran
        return response
    response.headers[REQUEST_ID_HEADER] = request_id
    duration_ms = round((time.perf_counter() - g.request_started) * 1000, 1)
    logging.getLogger(ACCESS_LOGGER).info(
        "%s %s %s %sms", request.method, request.path, response.status_code, duration_ms,
        extra={"method": request.method, "path": request.path,
               "status": response.status_code, "duration_ms": duration_ms,
               "user_id": _user_id()})
    return response


def _user_id() -> int | None:
    """The API token's user, or the one Flask-Login already loaded for this request, if
    any. Not loaded here: that would cost a query on every static file, and fail while
    the database is away (turning a 503 into a 500)."""
    user = g.get("api_user") or g.get("_login_user")
    if user is not None and getattr(user, "is_authenticated", False):
        return user.id
    return None


def _forget(_error: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        _request_id.reset(token)
