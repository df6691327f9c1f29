"""User accounts: creation, authentication, password, roles and active flag, listing;
every change audited with the account as its subject."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

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
PASSWORD_MIN = 12
PASSWORD_MAX = 1024  # hashing megabytes of "password" is a denial of service
# The 10,000 most common passwords of the list Django ships
# (django/contrib/auth/common-passwords.txt.gz, BSD licence), lower-case, most common first.
COMMON_PASSWORDS = Path(__file__).resolve().parent.parent / "data" / "common-passwords.txt"

# Checked when a username does not exist, so a wrong username costs as much time as a
# wrong password and response times do not reveal which usernames exist.
_dummy_hash: str | None = None


@cache
def _common_passwords() -> frozenset[str]:
    return frozenset(COMMON_PASSWORDS.read_text(encoding="utf-8").split())


def password_problem(password: str, username: str) -> str | None:
    """Why ``password`` will not do for ``username``, or ``None``. Length, the username
    and a list of common passwords: the checks that stop guessing without annoying
    rules about digits and symbols."""
    if len(password) < PASSWORD_MIN:
        return f"At least {PASSWORD_MIN} characters."
    if len(password) > PASSWORD_MAX:
        return f"At most {PASSWORD_MAX} characters."
    lowered = password.lower()
    name = username.strip().lower()
    if name and (lowered == name or (len(name) >= 4 and name in lowered)):
        return "A password may not contain the username."
    if lowered in _common_passwords():
        return "This password is among the most common ones; choose another."
    return None


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
    problem = password_problem(password, username)
    if problem is not None and not (weak_password_ok and len(password) <= PASSWORD_MAX):
        errors["password"] = problem
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
    audit.record("user_created", actor=actor, subject=username,
                 comment=f"{username} ({nation}; {', '.join(sorted(roles)) or 'no roles'})")
    db.session.commit()
    return user


def authenticate(username: str, password: str) -> User | None:
    """The active user with these credentials, or ``None`` (same cost either way)."""
    global _dummy_hash
    user = find_user(username)
    if user is None or len(password) > PASSWORD_MAX:
        if _dummy_hash is None:
            _dummy_hash = hash_password("not-a-password")
        check_password_hash(_dummy_hash, password[:PASSWORD_MAX])
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    return user if user.is_active else None


def password_matches(user: User, password: str) -> bool:
    """Whether ``password`` is ``user``'s. Callers go through ``services.logins``, which
    throttles the guessing."""
    return len(password) <= PASSWORD_MAX and check_password_hash(user.password_hash, password)


def change_password(user: User, new: str) -> None:
    """Set ``user``'s own password, the current one having been confirmed
    (``logins.confirm_password``); every session of the user ends with the change
    (``User.session_generation``). Commits with an audit entry. ``ValidationFailed``
    names the field at fault."""
    problem = password_problem(new, user.username)
    if problem is None and check_password_hash(user.password_hash, new):
        problem = "Choose a password other than your current one."
    if problem is not None:
        raise ValidationFailed({"new_password": problem})
    user.password_hash = hash_password(new)
    audit.record("password_changed", actor=user, subject=user.username,
                 comment=user.username)
    db.session.commit()


def reset_password(user: User, new: str, *, actor: User | None) -> None:
    """Set a password for ``user`` on an administrator's word (``actor``; ``None`` from
    the command line), for a forgotten one. The user's sessions end. Commits with an
    audit entry; ``ValidationFailed`` when the password will not do."""
    problem = password_problem(new, user.username)
    if problem is not None:
        raise ValidationFailed({"password": problem})
    user.password_hash = hash_password(new)
    audit.record("password_reset", actor=actor, subject=user.username,
                 comment=f"password of {user.username} reset")
    db.session.commit()


def set_roles(user: User, roles: Iterable[str], *, actor: User | None) -> bool:
    """Give ``user`` exactly ``roles``; their sessions end, so no page keeps rights
    taken away. Commits with an audit entry (old to new); ``False`` when nothing
    changed (no entry). ``ValidationFailed`` for an unknown role."""
    wanted = {r.strip().lower() for r in roles if r.strip()}
    unknown = sorted(wanted - set(ROLES))
    if unknown:
        raise ValidationFailed({"roles": f"Unknown role(s) {', '.join(unknown)}; choose "
                                         f"from {', '.join(ROLES)}."})
    _lock(user)
    old = user.roles
    if wanted == old:
        return False
    user.roles = wanted
    audit.record("roles_changed", actor=actor, subject=user.username,
                 comment=f"{_listed(old)} \u2192 {_listed(wanted)}")
    db.session.commit()
    return True


def set_active(user: User, active: bool, *, actor: User | None) -> bool:
    """Deactivate (or reactivate) ``user``: a deactivated user cannot log in, their
    sessions and API tokens stop working. Commits with an audit entry; ``False`` when
    the user already was so (no entry)."""
    _lock(user)
    if user.active == active:
        return False
    user.active = active
    audit.record("user_activated" if active else "user_deactivated", actor=actor,
                 subject=user.username,
                 comment="inactive \u2192 active" if active else "active \u2192 inactive")
    db.session.commit()
    return True


def _lock(user: User) -> None:
    """Reload ``user`` locked until commit (PostgreSQL), so two changes at once queue and
    the second's audit entry names the first's result as its "old"."""
    from lessons.services.lessons import locked  # noqa: PLC0415

    db.session.scalar(locked(select(User).where(User.id == user.id), User))


def _listed(roles: Iterable[str]) -> str:
    return ", ".join(sorted(roles)) or "no roles"


def find_user(username: str) -> User | None:
    """The user of this name as typed (any case, spaces around), or ``None``."""
    return db.session.scalar(select(User).where(User.username == username.strip().lower()))


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.nation_code, User.username)))
