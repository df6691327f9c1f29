"""Personal API tokens: create (shown once), list, revoke, and authenticate a request."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from lessons.errors import NotFound, ValidationFailed
from lessons.extensions import db
from lessons.models import ApiToken, User
from lessons.models.base import utcnow
from lessons.services import audit

TOKEN_PREFIX = "mus_"
TOKEN_NAME_MAX = 100
TOKENS_MAX = 20  # active tokens per user
# Writing last_used_at on every call would turn each read into a write; once a minute
# is enough to tell a user which token is still in use.
LAST_USED_EVERY = timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns it with its secret, which is not stored and
    cannot be shown again. Commits with an audit entry. ``ValidationFailed`` for a
    missing or long name, a name in use, or too many active tokens."""
    name = " ".join(str(name or "").split())
    errors: dict[str, str] = {}
    active = list_tokens(user)
    if not name:
        errors["name"] = "Give the token a name, e.g. the script that will use it."
    elif len(name) > TOKEN_NAME_MAX:
        errors["name"] = f"At most {TOKEN_NAME_MAX} characters."
    elif any(t.name == name for t in active):
        errors["name"] = "You already have an active token with this name."
    elif len(active) >= TOKENS_MAX:
        errors["name"] = f"At most {TOKENS_MAX} active tokens; revoke one first."
    if errors:
        raise ValidationFailed(errors)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, digest=_digest(secret),
                     prefix=secret[:len(TOKEN_PREFIX) + 6])
    db.session.add(token)
    audit.record("token_created", actor=user, subject=user.username, comment=name)
    db.session.commit()
    return token, secret


def list_tokens(user: User) -> list[ApiToken]:
    """``user``'s active tokens, newest first."""
    return list(db.session.scalars(select(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def revoke_token(user: User, token_id: int) -> ApiToken:
    """Revoke one of ``user``'s tokens; it stops working at once. ``NotFound`` for a token
    that is not theirs or already revoked."""
    token = db.session.scalar(select(ApiToken).where(
        ApiToken.id == token_id, ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)))
    if token is None:
        raise NotFound("No such token.")
    token.revoked_at = utcnow()
    audit.record("token_revoked", actor=user, subject=user.username, comment=token.name)
    db.session.commit()
    return token


def authenticate(secret: str) -> User | None:
    """The active user owning the active token ``secret``, or ``None``.

    A token's first use on each UTC calendar day is audited (``token_used``, with the
    client address): enough to see from where a token works without a row per call. The
    day's first use is claimed by a conditional UPDATE, so of two calls at once exactly
    one writes the record; later uses only refresh ``last_used_at``, once a minute.
    """
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = db.session.scalar(select(ApiToken).where(ApiToken.digest == _digest(secret),
                                                     ApiToken.revoked_at.is_(None)))
    if token is None or not token.user.is_active:
        return None
    now = utcnow()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    last = token.last_used_at
    if last is None or last < today:
        claimed = db.session.execute(
            update(ApiToken).where(ApiToken.id == token.id, or_(
                ApiToken.last_used_at.is_(None), ApiToken.last_used_at < today))
            .values(last_used_at=now).execution_options(synchronize_session=False)).rowcount
        if claimed:
            audit.record("token_used", actor=token.user, subject=token.user.username,
                         comment=token.name)
        db.session.commit()
        set_committed_value(token, "last_used_at", now)  # what the UPDATE wrote
    elif now - last > LAST_USED_EVERY:
        token.last_used_at = now
        db.session.commit()
    return token.user
