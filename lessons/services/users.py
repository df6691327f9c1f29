"""User accounts: creation, authentication, password, roles and active flag, listing;
every change audited with the account as its subject.

Two doors: the command line (``flask users ...``, no actor: whoever holds the server is
trusted) and the admins' pages (``add_user``, ``update_user``, ``admin_reset_password``),
where the acting administrator is checked and bound by two rules: nobody raises their
own rights, and the last active administrator stays one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from flask import current_app
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import func, or_, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from lessons import policy
from lessons.errors import NotFound, PreconditionFailed, ValidationFailed
from lessons.extensions import db
from lessons.models import AuditRecord, User
from lessons.models.user import UserRole
from lessons.rules import PER_PAGE_MAX, ROLES, SHORT_MAX
from lessons.services import audit, notifications
from lessons.services.nations import nation_codes

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
PASSWORD_MIN = 12
PASSWORD_MAX = 1024  # hashing megabytes of "password" is a denial of service
DISPLAY_NAME_MAX = 120
USERS_PER_PAGE = 50
SEARCH_MAX = 120  # the list's name search: a display name at most
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
    if len(display_name) > DISPLAY_NAME_MAX:
        errors["display_name"] = f"At most {DISPLAY_NAME_MAX} characters."
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


# --- the admins' pages ---------------------------------------------------------------------
@dataclass(frozen=True)
class UserFilter:
    """The user list's filters, already checked by its form."""

    q: str = ""  # part of a username or display name, any case
    nation: str = ""
    role: str = ""
    active: str = ""  # "yes", "no" or "" for both

    def query_args(self) -> dict[str, str]:
        """The filters as the page's query string (the pager keeps them)."""
        return {key: value for key, value in (
            ("q", self.q), ("nation", self.nation), ("role", self.role),
            ("active", self.active)) if value}


@dataclass
class UserRow:
    user: User
    last_login: datetime | None


@dataclass
class UserPage:
    rows: list[UserRow]
    pagination: Pagination


def user_page(viewer: User, flt: UserFilter, page: int = 1,
              per_page: int = USERS_PER_PAGE) -> UserPage:
    """One page of users, by nation then username, for an administrator. The last
    log-in is read from the audit trail (the ``login`` records of the page's users), so
    no write happens at log-in for the list's sake."""
    policy.require_admin(viewer)
    query = select(User)
    if flt.q:
        needle = flt.q.strip().lower()
        query = query.where(or_(User.username.contains(needle, autoescape=True),
                                func.lower(User.display_name).contains(needle,
                                                                       autoescape=True)))
    if flt.nation:
        query = query.where(User.nation_code == flt.nation)
    if flt.role:
        query = query.where(User.id.in_(select(UserRole.user_id)
                                        .where(UserRole.role == flt.role)))
    if flt.active:
        query = query.where(User.active.is_(flt.active == "yes"))
    pagination = db.paginate(query.order_by(User.nation_code, User.username), page=page,
                             per_page=per_page, error_out=False, max_per_page=PER_PAGE_MAX)
    users = list(pagination.items)
    last = dict(db.session.execute(
        select(AuditRecord.subject, func.max(AuditRecord.created_at))
        .where(AuditRecord.action == "login",
               AuditRecord.subject.in_([u.username for u in users]))
        .group_by(AuditRecord.subject)).all()) if users else {}
    return UserPage(rows=[UserRow(u, last.get(u.username)) for u in users],
                    pagination=pagination)


def get_user(viewer: User, user_id: int) -> User:
    """The user of this id for an administrator; ``NotFound`` when there is none."""
    policy.require_admin(viewer)
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("There is no user with this id.")
    return user


def add_user(actor: User, *, username: str, nation: str, roles: Iterable[str],
             password: str, display_name: str = "", unit: str = "") -> User:
    """An administrator creates an account with a password they typed (the same rules
    as the command line's). Commits with its audit entry."""
    policy.require_admin(actor)
    return create_user(username, nation=nation, roles=roles, password=password,
                       display_name=display_name, unit=unit, actor=actor)


def update_user(actor: User, user_id: int, *, display_name: str, unit: str, nation: str,
                roles: Iterable[str], active: bool, email: str | None = None,
                expected_version: int | None = None) -> list[str]:
    """An administrator's edit of an account: display name, unit, nation, roles, the
    active flag and the e-mail address notifications go to (``None``: left as it is;
    ``""``: none), in one transaction, each kind of change audited with the account as
    its subject. Returns the names of what changed (``[]``: nothing, no entry).

    ``expected_version`` is the account's version the edit page was loaded at: when
    anything changed the account since (another administrator's save, a new password,
    the user's own e-mail address), ``PreconditionFailed`` and nothing is stored, so no
    newer change is silently undone.

    A new nation, other roles or deactivation end every session of the user: what they
    may see and do changed, and no open page keeps the old rights. Refused (as input,
    nothing stored): an administrator giving themselves a role, changing their own
    nation (it decides what they see) or deactivating themselves; and anyone removing
    the last active administrator, by role or by deactivation.

    The rows of every active administrator and of the user are locked in id order (on
    SQLite, the database's write lock), so two administrators demoting each other at
    once queue, and the second sees the first's result (no deadlock: everyone locks in
    the same order).
    """
    policy.require_admin(actor)
    nation = nation.strip().upper()
    display_name = display_name.strip()
    unit = unit.strip()
    wanted = {r.strip().lower() for r in roles if r.strip()}
    errors: dict[str, str] = {}
    if nation not in nation_codes():
        errors["nation"] = f"Unknown nation {nation!r} (use an ISO 3166-1 alpha-3 code)."
    unknown = sorted(wanted - set(ROLES))
    if unknown:
        errors["roles"] = (f"Unknown role(s) {', '.join(unknown)}; choose from "
                           f"{', '.join(ROLES)}.")
    if len(display_name) > DISPLAY_NAME_MAX:
        errors["display_name"] = f"At most {DISPLAY_NAME_MAX} characters."
    if len(unit) > SHORT_MAX:
        errors["unit"] = f"At most {SHORT_MAX} characters."
    new_email = notifications.normal_email(email)
    problem = notifications.email_problem(new_email)
    if problem:
        errors["email"] = problem
    if errors:
        raise ValidationFailed(errors)
    from lessons.services.lessons import check_version  # noqa: PLC0415

    user = _lock_with_admins(user_id)
    try:
        check_version(user.version, expected_version, "user")
    except PreconditionFailed:
        db.session.rollback()
        raise
    errors = _refusals(actor, user, nation=nation, roles=wanted, active=active)
    if errors:
        db.session.rollback()
        raise ValidationFailed(errors)

    changed: list[str] = []
    notes: list[str] = []
    if display_name and display_name != user.display_name:
        user.display_name = display_name
        changed.append("display_name")
        notes.append("display name changed")
    if unit != user.unit:
        user.unit = unit
        changed.append("unit")
        notes.append("unit changed")
    if nation != user.nation_code:
        notes.append(f"nation {user.nation_code} \u2192 {nation}")
        user.nation_code = nation
        # The nation decides what a user sees: their sessions end, as with roles.
        user.session_generation = (user.session_generation or 0) + 1
        changed.append("nation")
    if email is not None and new_email != (user.email or None):
        # The address itself stays out of the trail: it says that, not what.
        notes.append("e-mail address " + ("removed" if new_email is None else
                                          "changed" if user.email else "set"))
        user.email = new_email
        changed.append("email")
    if changed:
        audit.record("user_edited", actor=actor, subject=user.username, changes=changed,
                     comment=f"{user.username}: {'; '.join(notes)}")
    old_roles = user.roles
    if wanted != old_roles:
        user.roles = wanted
        audit.record("roles_changed", actor=actor, subject=user.username,
                     comment=f"{_listed(old_roles)} \u2192 {_listed(wanted)}")
        changed.append("roles")
    if active != user.active:
        user.active = active
        audit.record("user_activated" if active else "user_deactivated", actor=actor,
                     subject=user.username,
                     comment="inactive \u2192 active" if active else "active \u2192 inactive")
        changed.append("active")
    db.session.commit()
    return changed


def admin_reset_password(actor: User, user_id: int, password: str) -> User:
    """An administrator sets another user's password (a forgotten one); the user's
    sessions end. Their own password an administrator changes on the account page,
    which asks for the current one first: a borrowed session cannot take the account."""
    policy.require_admin(actor)
    user = get_user(actor, user_id)
    if user.id == actor.id:
        raise ValidationFailed({"password": "Change your own password on your account "
                                            "page, which asks for the current one."})
    _lock(user)
    reset_password(user, password, actor=actor)
    return user


def _lock_with_admins(user_id: int) -> User:
    """Lock the user's row and every active administrator's, in id order; the user,
    freshly read. ``NotFound`` when there is no such user."""
    from lessons.services.lessons import locked  # noqa: PLC0415

    if db.session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks, only one write lock for the file: a write that changes
        # nothing takes it first, so a second such change waits (busy timeout) and then
        # reads the first one's result, as the row locks make it on PostgreSQL.
        db.session.execute(update(User).where(User.id == user_id)
                           .values(session_generation=User.session_generation))
    admins = (select(UserRole.user_id).join(User, User.id == UserRole.user_id)
              .where(UserRole.role == "admin", User.active.is_(True)))
    rows = db.session.scalars(locked(
        select(User).where(or_(User.id == user_id, User.id.in_(admins))).order_by(User.id),
        User)).all()
    user = next((row for row in rows if row.id == user_id), None)
    if user is None:
        raise NotFound("There is no user with this id.")
    return user


def _refusals(actor: User, user: User, *, nation: str, roles: set[str],
              active: bool) -> dict[str, str]:
    """What the two rules refuse in this edit, by field."""
    errors: dict[str, str] = {}
    if user.id == actor.id:
        gained = sorted(roles - user.roles)
        if gained:
            errors["roles"] = (f"You may not give yourself roles ({', '.join(gained)}); "
                               "another administrator must.")
        if nation != user.nation_code:
            errors["nation"] = ("You may not change your own nation (it decides what you "
                                "see); another administrator must.")
        if not active and user.active:
            errors["active"] = "You may not deactivate your own account."
    stays_admin = active and "admin" in roles
    if user.active and user.has_role("admin") and not stays_admin and not _other_admins(user):
        key = "roles" if "admin" not in roles else "active"
        errors.setdefault(key, f"{user.username} is the last active administrator: make "
                               "another user an administrator first.")
    return errors


def _other_admins(user: User) -> int:
    """Active administrators other than ``user`` (their rows are locked by the caller)."""
    return db.session.scalar(
        select(func.count()).select_from(UserRole).join(User, User.id == UserRole.user_id)
        .where(UserRole.role == "admin", User.active.is_(True), User.id != user.id)) or 0
