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
from datetime import datetime, timedelta

from flask import Flask, current_app, request, session
from flask_login import login_user, logout_user
from sqlalchemy import delete, or_, select

from lessons.extensions import db
from lessons.models import User
from lessons.models.base import utcnow
from lessons.models.user import UserSession

SESSION_KEY = "_sid"
# Writing last_seen_at at every request would turn reads into writes; a minute's
# precision is plenty for an idle timeout counted in hours.
TOUCH_EVERY = timedelta(minutes=1)


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
    return (request.remote_addr or "")[:64]


def start(user: User) -> None:
    """Log ``user`` in with a new session: nothing of the session before it survives
    (no fixation), so the CSRF token is new too. Commits."""
    session.clear()
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    # Sessions nobody ended (a closed browser) go when anyone logs in after they expired.
    db.session.execute(delete(UserSession).where(or_(
        UserSession.last_seen_at < now - _idle(), UserSession.created_at < now - _max(),
        (UserSession.user_id == user.id)
        & (UserSession.generation != user.session_generation))))
    db.session.add(UserSession(user_id=user.id, digest=_digest(secret),
                               generation=user.session_generation, address=_address(),
                               agent=_agent(), created_at=now, last_seen_at=now))
    db.session.commit()
    login_user(user)
    session[SESSION_KEY] = secret


def end() -> None:
    """Log out: the session's row goes, so a copy of the cookie is worth nothing."""
    secret = session.get(SESSION_KEY)
    if isinstance(secret, str):
        db.session.execute(delete(UserSession).where(UserSession.digest == _digest(secret)))
        db.session.commit()
    logout_user()
    session.clear()


def load(user_id: str) -> User | None:
    """Flask-Login's user loader: the user of this request's live session, or ``None``
    (and an ended session's row is deleted)."""
    secret = session.get(SESSION_KEY)
    if not isinstance(secret, str) or not user_id.isdigit():
        return None
    row = db.session.scalar(select(UserSession).where(UserSession.digest == _digest(secret)))
    if row is None or row.user_id != int(user_id):
        return None
    now = utcnow()
    if not _alive(row, now):
        db.session.delete(row)
        db.session.commit()
        session.clear()
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
        db.session.commit()
    return row.user


def _alive(row: UserSession, now: datetime) -> bool:
    user = row.user
    return (user.is_active and row.generation == user.session_generation
            and now - row.last_seen_at <= _idle() and now - row.created_at <= _max()
            and row.address == _address() and row.agent == _agent())


def _idle() -> timedelta:
    return timedelta(minutes=int(current_app.config["SESSION_IDLE_MINUTES"]))


def _max() -> timedelta:
    return timedelta(hours=int(current_app.config["SESSION_MAX_HOURS"]))
