"""Muster: lessons-learned capture and exercise integration for combined operations."""

from __future__ import annotations

import threading
from pathlib import Path

from flask import Flask, Response, abort, request
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from config import Config, get_config
from lessons.extensions import csrf, db, login_manager, migrate
from lessons.rules import unstorable


def create_app(config: type[Config] | str | None = None, **overrides: object) -> Flask:
    """Build the app: extensions, blueprints, CLI and error pages.

    ``config`` is a Config class or its name; ``MUSTER_ENV`` decides when omitted.
    Production refuses to start with the development ``SECRET_KEY``, without a
    ``DATABASE_URL`` unless SQLite is asked for, or without a proxy count; every
    environment refuses settings that contradict each other (``Config.check``).
    """
    config_class = get_config(config) if config is None or isinstance(config, str) else config
    config_class.check()
    app = Flask(__name__, template_folder="../templates", static_folder="../static",
                instance_relative_config=True)
    app.config.from_object(config_class)
    app.config.update(overrides)
    _check_settings(app)
    from lessons import logs

    logs.init_app(app)  # first: the request id exists before any other hook can log
    _ensure_sqlite_folder(app.config["SQLALCHEMY_DATABASE_URI"])
    _sqlite_busy_timeout(app)

    db.init_app(app)
    from lessons import outages

    outages.guard_session_teardown(app)
    migrate.init_app(app, db, directory=str(app.root_path + "/../migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to see that page."
    login_manager.login_message_category = "info"
    # Sessions are rows the server can end, bound to the client's address and browser
    # (lessons.sessions); Flask-Login's own binding would believe X-Forwarded-For.
    login_manager.session_protection = None

    from lessons import sessions, throttle

    sessions.init_app(app)
    login_manager.user_loader(sessions.load)

    from lessons.errors import register_error_pages
    from lessons.http_semantics import register_http_semantics
    from lessons.views import register_blueprints

    register_http_semantics(app)
    app.before_request(_refuse_nul_characters)
    register_blueprints(app)
    throttle.init_app(app)
    register_error_pages(app)

    from lessons.cli import register_cli

    register_cli(app)

    from lessons.views.helpers import register_template_helpers

    register_template_helpers(app)
    app.after_request(_security_headers)
    if app.config.get("SEARCH_WARM_UP"):
        _start_search_on_first_request(app)
    return app


def _start_search_on_first_request(app: Flask) -> None:
    """Serving processes read the index's per-segment data in the background once, at
    their first request (not at import: CLI commands import the app too), and, with
    background indexing, start their standby indexer (``search.indexer``; gunicorn's
    worker hook starts it earlier, the development server only here)."""
    started = threading.Event()

    @app.before_request
    def _warm() -> None:
        if not started.is_set():
            started.set()
            from lessons import search
            from lessons.search import indexer

            search.warm_in_background(app)
            if app.config.get("SEARCH_INDEXER") == "background":
                indexer.start_standby(app)


def _refuse_nul_characters() -> None:
    """No database stores a NUL character (PostgreSQL refuses the whole statement), so a
    request carrying one in its address, query or form gets a 400 here, before any
    view, instead of a server error later (``rules.unstorable``; Werkzeug has already
    replaced undecodable bytes, so no unpaired surrogate gets this far)."""
    texts = [*(request.view_args or {}).values()]
    sources = [request.args]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        # Only then: reading the body sets its size limit, which the API sets lower.
        sources.append(request.form)
    for source in sources:
        for key, values in source.lists():
            texts.append(key)
            texts.extend(values)
    if unstorable(texts) is not None:
        abort(400, "Text may not contain NUL characters.")


def _security_headers(response: Response) -> Response:
    """Pages use no inline script or style, so a strict policy costs nothing.

    Everything but the static files is ``no-store``: pages, API answers and exports
    hold what one user may see, and a shared or back-button cache must not keep them.
    HSTS only over HTTPS (a browser ignores it over HTTP). No ``Server`` header is set
    here: gunicorn sends ``Server: gunicorn``, without its version (README)."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; object-src 'none'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security",
                                    "max-age=31536000; includeSubDomains")
    return response


def _ensure_sqlite_folder(url: str) -> None:
    """The one filesystem touch at start-up: SQLite cannot create its file's folder, and a
    fresh clone has no ``instance/`` yet."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_busy_timeout(app: Flask) -> None:
    """The busy timeout makes SQLite writers queue rather than fail; past it, the request
    gets a 503 (``outages``). The driver's ``timeout`` sets it on every connection."""
    if make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name() != "sqlite":
        return
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options["connect_args"] = {"timeout": float(app.config["SQLITE_BUSY_TIMEOUT"]),
                               **options.get("connect_args", {})}
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:  # noqa: ARG001
    """WAL lets readers work during a write."""
    module = type(dbapi_connection).__module__
    if module.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _check_settings(app: Flask) -> None:
    """Refuse to start on a malformed numeric setting, naming it, rather than later."""
    from lessons.federation.identity import check_settings as check_federation

    check_federation(app.config)
    procs = app.config.get("SEARCH_REINDEX_PROCS", 1)
    try:
        app.config["SEARCH_REINDEX_PROCS"] = int(procs)
        if app.config["SEARCH_REINDEX_PROCS"] < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise RuntimeError(f"MUSTER_REINDEX_PROCS must be a whole number of at least 1, "
                           f"not {procs!r}") from None
    file_mb = app.config.get("FILE_MAX_MB", 20)
    try:
        if not 0 < float(file_mb) <= 1024:
            raise ValueError
    except (TypeError, ValueError):
        raise RuntimeError(f"MUSTER_FILE_MAX_MB must be a number of megabytes above 0 and "
                           f"at most 1024, not {file_mb!r}") from None
