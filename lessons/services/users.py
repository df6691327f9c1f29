"""User accounts: creation, authentication, listing."""

from __future__ import annotations

import re
from collections.abc import Iterable

from flask import current_app
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from lessons.errors import ValidationFailed
from lessons.extensions import db
from lessons.models import User
from lessons.rules import ROLES, SHORT_MAX
from lessons.services import audit
from lessons.services.nations import nation_codes

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
PASSWORD_MIN = 8
PASSWORD_MAX = 1024  # hashing megabytes of "password" is a denial of service

# Checked when a username does not exist, so a wrong username costs as much time as a
# wrong password and response times do not reveal which usernames exist.
_dummy_hash: str | None = None


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def create_user(username: str, *, nation: str, roles: Iterable[str], password: str,
                display_name: str = "", unit: str = "", weak_password_ok: bool = False,
                actor: User | None = None) -> User:
    """Create and commit an active user. Raises ``ValidationFailed`` listing every problem.

    ``weak_password_ok`` exists for the demo data's published ``demo`` password only.
    """
    username = username.strip().lower()
    nation = nation.strip().upper()
    roles = {r.strip().lower() for r in roles if r.strip()}
    errors: dict[str, str] = {}
    if not USERNAME_RE.match(username):
        errors["username"] = ("2-64 characters: lower-case letters, digits, '.', '_' or '-', "
                              "starting with a letter or digit.")
    elif db.session.scalar(select(User.id).where(User.username == username)) is not None:
        errors["username"] = f"User {username!r} already exists."
    if nation not in nation_codes():
        errors["nation"] = f"Unknown nation {nation!r} (use an ISO 3166-1 alpha-3 code)."
    unknown = sorted(roles - set(ROLES))
    if unknown:
        errors["roles"] = f"Unknown role(s) {', '.join(unknown)}; choose from {', '.join(ROLES)}."
    if not weak_password_ok and len(password) < PASSWORD_MIN:
        errors["password"] = f"At least {PASSWORD_MIN} characters."
    elif len(password) > PASSWORD_MAX:
        errors["password"] = f"At most {PASSWORD_MAX} characters."
    if len(display_name) > 120:
        errors["display_name"] = "At most 120 characters."
    if len(unit) > SHORT_MAX:
        errors["unit"] = f"At most {SHORT_MAX} characters."
    if errors:
        raise ValidationFailed(errors)
    user = User(username=username, display_name=display_name.strip() or username,
                nation_code=nation, unit=unit.strip(), password_hash=hash_password(password))
    user.roles = roles
    db.session.add(user)
    db.session.flush()
    audit.record("user_created", actor=actor,
                 comment=f"{username} ({nation}; {', '.join(sorted(roles)) or 'no roles'})")
    db.session.commit()
    return user


def authenticate(username: str, password: str) -> User | None:
    """The active user with these credentials, or ``None`` (same cost either way)."""
    global _dummy_hash
    user = db.session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None or len(password) > PASSWORD_MAX:
        if _dummy_hash is None:
            _dummy_hash = hash_password("not-a-password")
        check_password_hash(_dummy_hash, password[:PASSWORD_MAX])
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    return user if user.is_active else None


def load_user(user_id: str) -> User | None:
    """Flask-Login's loader: inactive users are dropped at their next request."""
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.is_active else None


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.nation_code, User.username)))
