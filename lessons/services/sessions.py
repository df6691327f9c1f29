"""The rows of log-in sessions (``UserSession``): opened at log-in, deleted at log-out
and when found ended, touched as they are used. ``lessons.sessions`` keeps the cookie
and Flask-Login's side; the rows and their transactions are here, like every other
write."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, or_, select

from lessons.extensions import db
from lessons.models import User
from lessons.models.base import utcnow
from lessons.models.user import UserSession
from lessons.services import audit

# Writing last_seen_at at every request would turn reads into writes; a minute's
# precision is plenty for an idle timeout counted in hours.
TOUCH_EVERY = timedelta(minutes=1)


def open_session(user: User, digest: str, *, address: str, agent: str) -> None:
    """Store a new session of ``user`` under the digest of its cookie's secret. Commits."""
    now = utcnow()
    # Sessions nobody ended (a closed browser) go when anyone logs in after they expired.
    db.session.execute(delete(UserSession).where(or_(
        UserSession.last_seen_at < now - _idle(), UserSession.created_at < now - _max(),
        (UserSession.user_id == user.id)
        & (UserSession.generation != user.session_generation))))
    db.session.add(UserSession(user_id=user.id, digest=digest,
                               generation=user.session_generation, address=address,
                               agent=agent, created_at=now, last_seen_at=now))
    db.session.commit()


def close_session(digest: str | None, user: User | None) -> None:
    """Log-out: the row goes, so a copy of the cookie is worth nothing; audited as the
    user's. Commits."""
    if digest is not None:
        db.session.execute(delete(UserSession).where(UserSession.digest == digest))
    if user is not None:
        audit.record("logout", actor=user, subject=user.username)
    db.session.commit()


def live_user(digest: str, user_id: int, *, address: str, agent: str) -> User | None:
    """The user of the live session stored under ``digest`` for ``user_id``, seen now
    from ``address`` with ``agent``; ``None`` when there is none or it has ended (its row
    is then deleted). Commits when it deletes or touches the row."""
    row = db.session.scalar(select(UserSession).where(UserSession.digest == digest))
    if row is None or row.user_id != user_id:
        return None
    now = utcnow()
    if not _alive(row, now, address, agent):
        db.session.delete(row)
        db.session.commit()
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
        db.session.commit()
    return row.user


def _alive(row: UserSession, now: datetime, address: str, agent: str) -> bool:
    user = row.user
    return (user.is_active and row.generation == user.session_generation
            and now - row.last_seen_at <= _idle() and now - row.created_at <= _max()
            and row.address == address and row.agent == agent)


def _idle() -> timedelta:
    return timedelta(minutes=int(current_app.config["SESSION_IDLE_MINUTES"]))


def _max() -> timedelta:
    return timedelta(hours=int(current_app.config["SESSION_MAX_HOURS"]))
