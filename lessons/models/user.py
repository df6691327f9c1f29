"""Users: one nation, one unit, combinable roles."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, event, inspect
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from lessons.extensions import db
from lessons.models.base import utcnow


class UserRole(db.Model):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True)


# Usernames of the accounts standing for federation peers (lessons.federation).
PEER_ACCOUNT_PREFIX = "peer:"


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    nation_code: Mapped[str] = mapped_column(ForeignKey("nations.code"))
    unit: Mapped[str] = mapped_column(String(200), default="")
    # Where notifications are e-mailed (none: in the app only).
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Raised whenever the password, roles or active flag change (see _end_sessions): a
    # session started under another generation is over.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Raised by every write of the row (SQLAlchemy's ``version_id_col``: each UPDATE says
    # ``WHERE version = <the one loaded>``), so an admin's edit page made on an older
    # version is refused instead of silently undoing a newer change (see users.update_user).
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    role_rows: Mapped[list[UserRole]] = relationship(cascade="all, delete-orphan",
                                                     lazy="selectin")

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(r.role for r in self.role_rows)

    @roles.setter
    def roles(self, value: set[str] | list[str]) -> None:
        wanted = set(value)
        self.role_rows = [r for r in self.role_rows if r.role in wanted] + [
            UserRole(role=role) for role in sorted(wanted - self.roles)
        ]

    def has_role(self, role: str) -> bool:
        return role in self.roles

    __mapper_args__ = {"version_id_col": version}

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users at login and reload
        return self.active and not self.stands_for_peer

    @property
    def stands_for_peer(self) -> bool:
        """The local author of lessons received from another instance (``peer:NAME``, a
        name no person's account can have): never logs in, whatever an admin sets."""
        return self.username.startswith(PEER_ACCOUNT_PREFIX)

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class UserSession(db.Model):
    """One logged-in browser. The cookie holds a random secret; only its digest is here,
    so deleting the row (log-out, expiry) ends the session even for a copied cookie."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    user: Mapped[User] = relationship(lazy="joined")
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    generation: Mapped[int] = mapped_column(Integer)
    # Where it started: a request from another address or browser ends it.
    address: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


_ENDS_SESSIONS = ("password_hash", "active", "role_rows")


@event.listens_for(Session, "before_flush")
def _end_sessions(session: Session, flush_context, instances) -> None:  # noqa: ARG001
    """A new password, other roles or deactivation end every session of the user,
    whichever code path made the change."""
    for obj in session.dirty:
        if not isinstance(obj, User):
            continue
        state = inspect(obj)
        if any(state.attrs[name].history.has_changes() for name in _ENDS_SESSIONS):
            obj.session_generation = (obj.session_generation or 0) + 1
