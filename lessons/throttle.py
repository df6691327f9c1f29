"""Throttling, with Flask-Limiter and its ``limits``: log-ins per client address, the API
per token, imports and exports per user, and the back-off of an account after failed
log-ins.

Counters live in Redis when ``REDIS_URL`` is set (every worker shares them), otherwise in
the process's memory. Each app gets its own limiter, so a test's app with low limits
shares nothing with another's. The client address is the connection's, or the one
``PROXIES`` trusted reverse proxies reported (Werkzeug's ProxyFix); a forged
``X-Forwarded-For`` changes nothing when no proxy is configured.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from flask_login import current_user
from limits import parse_many
from limits.storage import Storage
from werkzeug.middleware.proxy_fix import ProxyFix

from lessons.services import audit
from lessons.sessions import whole_setting

EXTENSION = "muster.limiter"
# Failed log-ins are forgotten a day after the first of a run.
FAILURES_KEPT_SECONDS = 24 * 60 * 60
# Endpoints throttled per user, by the setting that holds their limit; the endpoints of
# one setting share one budget.
PER_USER = {
    "IMPORT_RATE_LIMIT": ("lessons.import_file", "lessons.confirm_import", "aar.upload",
                          "aar.review"),
    "EXPORT_RATE_LIMIT": ("search.export", "exercises.packet"),
}


def init_app(app: Flask) -> None:
    """Install the client address and the limits; call after the blueprints."""
    proxies = whole_setting(app.config["PROXIES"], "MUSTER_PROXIES", low=0)
    app.config["PROXIES"] = proxies
    if proxies:
        # The scheme too: behind a proxy that ends TLS, the app sees plain HTTP, and only
        # the proxy's X-Forwarded-Proto says the browser used HTTPS (HSTS, secure URLs).
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies)
    for key in ("LOGIN_FAILURES_ALLOWED", "LOGIN_BACKOFF_SECONDS", "LOGIN_BACKOFF_MAX_SECONDS"):
        app.config[key] = whole_setting(app.config[key], key, low=1)
    for key in ("LOGIN_RATE_LIMIT", "API_RATE_LIMIT", *PER_USER):
        try:
            parse_many(str(app.config[key]))
        except ValueError:
            raise RuntimeError(f"MUSTER_{key} is not a rate limit such as '30 per minute': "
                               f"{app.config[key]!r}") from None
    # Flask-Limiter's own headers would also rewrite the Retry-After of other answers
    # (a 503's) to its window's end; _headers writes them and leaves one that is set.
    app.config["RATELIMIT_HEADERS_ENABLED"] = False
    limiter = Limiter(key_func=client_address, app=app)
    app.extensions[EXTENSION] = limiter
    app.after_request(_headers)

    from lessons.api import bp as api_bp

    limiter.limit(_setting("API_RATE_LIMIT"), key_func=_api_key, error_message=(
        "Too many requests with this token; wait for the seconds in Retry-After."))(api_bp)
    for setting, endpoints in PER_USER.items():
        shared = limiter.shared_limit(
            _setting(setting), scope=setting.lower(), key_func=_user_key, methods=["POST"]
            if setting == "IMPORT_RATE_LIMIT" else None,
            error_message="You have done that too often; wait a while and try again.")
        for endpoint in endpoints:
            _wrap(app, endpoint, shared)


def _headers(response: Response) -> Response:
    """``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` (epoch seconds) and
    ``Retry-After`` (seconds until the window ends: on a 429, how long to wait) on every
    limited answer, except that an answer's own ``Retry-After`` (a 503's) stands."""
    current = current_app.extensions[EXTENSION].current_limit
    if current is None:
        return response
    response.headers["X-RateLimit-Limit"] = str(current.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(current.remaining)
    response.headers["X-RateLimit-Reset"] = str(current.reset_at)
    if "Retry-After" not in response.headers:
        wait = math.ceil(current.window.reset_time - time.time())
        response.headers["Retry-After"] = str(max(1, wait))
    return response


def _wrap(app: Flask, endpoint: str, decorator: Callable) -> None:
    """Decorate a view of this app only: another app (a test's) keeps its own limiter."""
    app.view_functions[endpoint] = decorator(app.view_functions[endpoint])


def _setting(name: str) -> Callable[[], str]:
    return lambda: str(current_app.config[name])


def client_address() -> str:
    """The address throttles count by: the one the audit trail records."""
    return audit.client_address() or "unknown"


def _api_key() -> str:
    """Per token (a digest: the secret itself is never stored), or per address without."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        return "token:" + hashlib.sha256(secret.strip().encode()).hexdigest()
    return "address:" + client_address()


def _user_key() -> str:
    if current_user.is_authenticated:
        return f"user:{current_user.get_id()}"
    return "address:" + client_address()


# --- log-ins ------------------------------------------------------------------------------
def _storage() -> Storage:
    return current_app.extensions[EXTENSION].storage


def client_wait() -> int:
    """Count a log-in attempt from this client address against ``LOGIN_RATE_LIMIT``;
    the seconds it must wait when over (0: go on). Counted here rather than by a route
    limit so that an account's own wait keeps its exact ``Retry-After``."""
    strategy = current_app.extensions[EXTENSION].limiter
    address = client_address()
    for item in parse_many(current_app.config["LOGIN_RATE_LIMIT"]):
        if not strategy.hit(item, "muster", "login", address):
            reset = strategy.get_window_stats(item, "muster", "login", address).reset_time
            return max(1, math.ceil(reset - time.time()))
    return 0


def _keys(username: str) -> tuple[str, str]:
    """Keyed by the name typed, whether or not such a user exists, so an unknown
    account locks exactly like a real one and the answer tells nothing."""
    account = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return f"muster/login-failures/{account}", f"muster/login-wait/{account}"


def login_wait(username: str) -> int:
    """Seconds before this account may try again (0: now)."""
    _failures, wait = _keys(username)
    storage = _storage()
    if storage.get(wait) <= 0:
        return 0
    return max(1, math.ceil(storage.get_expiry(wait) - time.time()))


@dataclass(frozen=True)
class Reservation:
    """The answer to "may this account's password be checked now?"."""

    wait: int = 0  # refused: seconds before the account may try again
    starts_wait: int = 0  # allowed, and a wrong password makes the account wait this long


def reserve_login(username: str) -> Reservation:
    """Count a password check of this account *before* it is made, and say whether to
    make it; a right password then forgets the count (``login_succeeded``).

    Counting after the check left a hole: the check hashes the password (slow, on
    purpose), so parallel guesses all passed "does the account wait?" before the first
    failure was counted, and twenty guesses sent at once were all checked. Every step
    here is one atomic ``incr`` of the storage (memory or Redis), so no two requests can
    hold the same place: the first ``LOGIN_FAILURES_ALLOWED - 1`` attempts are checked;
    from then on an attempt is checked only if its ``incr`` of the wait key is the one
    that starts the wait (doubling, up to ``LOGIN_BACKOFF_MAX_SECONDS``), which every
    other attempt then waits out. Guesses in parallel get no more checks than guesses
    in a row; they can only make the next wait longer.
    """
    config = current_app.config
    failures_key, wait_key = _keys(username)
    storage = _storage()
    if wait := login_wait(username):
        return Reservation(wait=wait)
    failures = storage.incr(failures_key, FAILURES_KEPT_SECONDS)
    over = failures - config["LOGIN_FAILURES_ALLOWED"]
    if over < 0:
        return Reservation()
    wait = min(config["LOGIN_BACKOFF_SECONDS"] * 2 ** min(over, 30),
               config["LOGIN_BACKOFF_MAX_SECONDS"])
    if storage.incr(wait_key, wait) == 1:
        return Reservation(starts_wait=wait)
    # Another attempt started the wait a moment ago: this one was never checked, so
    # it does not count.
    storage.incr(failures_key, FAILURES_KEPT_SECONDS, amount=-1)
    return Reservation(wait=login_wait(username) or 1)


def login_succeeded(username: str) -> None:
    """A right password: the account's failures and wait are forgotten."""
    for key in _keys(username):
        _storage().clear(key)
