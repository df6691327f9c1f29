"""Password checks and what follows them: the throttling of the client address and of
the account, the audit of every success, failure and lockout.

One place decides, so the log-in form and the account page's current-password check
cannot drift apart: both are guesses at the same password and count against the same
account.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lessons import throttle
from lessons.extensions import db
from lessons.models import User
from lessons.services import audit, users

WRONG = "Unknown username or wrong password."


@dataclass(frozen=True)
class Outcome:
    """The user when the password was right; else the seconds to wait (a 429) or the
    error to show (a wrong password, said the same way for an unknown name)."""

    user: User | None = None
    wait: int = 0
    error: str = ""
    # The wait is the client address's (too many log-ins from it), not the account's.
    address_wait: bool = False


def log_in(username: str, password: str) -> Outcome:
    """Check a log-in. The caller starts the session of ``Outcome.user``."""
    if wait := throttle.client_wait():
        return Outcome(wait=wait, address_wait=True)
    outcome = _checked(username, lambda: users.authenticate(username, password),
                       where="log-in", error=WRONG)
    if outcome.user is not None:
        audit.record("login", actor=outcome.user, subject=outcome.user.username)
        db.session.commit()
    return outcome


def confirm_password(user: User, password: str) -> Outcome:
    """Check ``user``'s current password before a change: a wrong one counts as a failed
    log-in, so a borrowed session cannot be used to guess it."""
    if wait := throttle.client_wait():
        return Outcome(wait=wait, address_wait=True)
    return _checked(user.username,
                    lambda: user if users.password_matches(user, password) else None,
                    where="password change", error="That is not your current password.")


def _checked(username: str, check: Callable[[], User | None], *, where: str,
             error: str) -> Outcome:
    """Reserve the check with the account's throttle before the (slow) hash, so that
    parallel guesses cannot all slip past the limit (see ``throttle.reserve_login``)."""
    reservation = throttle.reserve_login(username)
    if reservation.wait:
        return Outcome(wait=reservation.wait)
    user = check()
    if user is not None:
        throttle.login_succeeded(username)
        return Outcome(user=user)
    known = users.find_user(username)
    name = username.strip().lower()
    why = ("unknown username" if known is None
           else "wrong password" if known.is_active else "inactive account")
    audit.record("login_failed", actor=known, subject=name, comment=f"{why} ({where})")
    if reservation.starts_wait:
        audit.record("login_locked", actor=known, subject=name,
                     comment=f"{name[:64]}: failed log-ins; next attempt allowed in "
                             f"{reservation.starts_wait} s")
    db.session.commit()
    if reservation.starts_wait:
        return Outcome(wait=reservation.starts_wait)
    return Outcome(error=error)
