"""``GET /health`` for load balancers and monitoring, and the answer searches get while
the index is missing: 503 with Retry-After, never an empty result list nor a 500."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, render_template
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from lessons import search
from lessons.errors import is_api_request, problem
from lessons.extensions import db

bp = Blueprint("health", __name__)

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30
UNAVAILABLE_MESSAGE = ("The search index is missing or being rebuilt. Search is back once "
                       "the rebuild has finished; please try again in a few minutes.")


@bp.get("/health")
def health():
    """Whether this process can serve: the database answers and the index is usable.

    Polled, so cheap: one trivial query and one count, no drift check. Says nothing of
    any lesson (no titles, no ids), and needs no login."""
    database = _database_answers()
    try:
        index = search.status(database=database)
    except Exception:  # noqa: BLE001 - a health check reports, it does not fail
        log.exception("health: reading the search index state failed")
        db.session.rollback()
        index = search.IndexStatus(None, "unknown", None)
    ok = database and index.usable
    body = {
        "status": "ok" if ok else "unavailable",
        "database": "ok" if database else "unreachable",
        # pending: logged changes this host's index has not applied (its lag), and
        # lag_seconds: how long the oldest of them has waited (null when none waits).
        "index": {"generation": index.generation, "state": index.state,
                  "pending": index.pending,
                  "lag_seconds": None if index.oldest_pending_seconds is None
                  else round(index.oldest_pending_seconds, 3)},
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    if not ok:
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _database_answers() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except (SQLAlchemyError, OSError):
        db.session.rollback()
        return False


@bp.app_errorhandler(search.IndexMissing)
def index_missing(error: search.IndexMissing) -> tuple[str, int, dict] | Response:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    title = "Search unavailable"
    if is_api_request():
        return problem(503, title, UNAVAILABLE_MESSAGE, headers=headers)
    return render_template("errors/error.html", status=503, title=title,
                           message=UNAVAILABLE_MESSAGE), 503, headers
