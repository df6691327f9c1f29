"""Log-in sessions that end: each is a row (``UserSession``) named by a random secret in
the signed session cookie, so the server can end it.

A session ends at log-out, after ``SESSION_IDLE_MINUTES`` without a request, at
``SESSION_MAX_HOURS`` after log-in, when its user's password, roles or active flag change
(``User.session_generation``), and when a request comes from another client address or
browser than the one that logged in (what Flask-Login's "strong" protection did, but with
the address Werkzeug's ProxyFix derives from ``PROXIES``, never a forgeable header).
"""

from __future__ import annotations

import hashlib
import secrets

from flask import Flask, request, session
from flask_login import current_user, login_user, logout_user

from lessons.models import User
from lessons.services import audit
from lessons.services import sessions as session_rows

SESSION_KEY = "_sid"


def init_app(app: Flask) -> None:
    """Check the timeouts at start, naming a malformed one."""
    for key, env in (("SESSION_IDLE_MINUTES", "MUSTER_SESSION_IDLE_MINUTES"),
                     ("SESSION_MAX_HOURS", "MUSTER_SESSION_MAX_HOURS")):
        app.config[key] = whole_setting(app.config[key], env, low=1)


def whole_setting(value: object, name: str, low: int) -> int:
    raw = str(value).strip()
    if not raw.isdigit() or int(raw) < low:
        raise RuntimeError(f"{name} must be a whole number of at least {low}, not {value!r}")
    return int(raw)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _agent() -> str:
    return hashlib.sha256(request.user_agent.string.encode("utf-8")).hexdigest()


def _address() -> str:
    """The address a session is bound to: the one the audit trail records."""
    return audit.client_address() or ""


def start(user: User) -> None:
    """Log ``user`` in with a new session: nothing of the session before it survives
    (no fixation), so the CSRF token is new too."""
    session.clear()
    secret = secrets.token_urlsafe(32)
    session_rows.open_session(user, _digest(secret), address=_address(), agent=_agent())
    login_user(user)
    session[SESSION_KEY] = secret


def end() -> None:
    """Log out: the session's row goes, so a copy of the cookie is worth nothing."""
    secret = session.get(SESSION_KEY)
    user = current_user._get_current_object() if current_user.is_authenticated else None
    session_rows.close_session(_digest(secret) if isinstance(secret, str) else None, user)
    logout_user()
    session.clear()


def load(user_id: str) -> User | None:
    """Flask-Login's user loader: the user of this request's live session, or ``None``
    (and an ended session's cookie is cleared)."""
    secret = session.get(SESSION_KEY)
    if not isinstance(secret, str) or not user_id.isdigit():
        return None
    user = session_rows.live_user(_digest(secret), int(user_id), address=_address(),
                                  agent=_agent())
    if user is None:
        session.clear()
    return user
