"""Database outages: telling "the database cannot be reached right now" apart from every
other database error, and leaving the session usable after one.

An unreachable or busy database is temporary and not the caller's fault, so it is a 503
with ``Retry-After`` (``errors.DatabaseUnavailable``); a programming or integrity error
is not, and stays a 500 or its own domain error. Service resumes without a restart:
SQLAlchemy invalidates the pool when it sees a disconnect, ``pool_pre_ping`` replaces
dead pooled connections at checkout, and the session of a request that failed is
discarded here rather than handed on.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator

import psycopg
from flask import Flask
from sqlalchemy import exc as sa_exc

from lessons.extensions import db

log = logging.getLogger(__name__)

# SQLSTATEs of a server that cannot serve us now: class 08 (connection exception),
# shutting down or starting up, out of connection slots, and a lock wait that timed out
# (PostgreSQL's counterpart of SQLite's "database is locked").
_PG_UNAVAILABLE_PREFIXES = ("08",)
_PG_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300", "55P03"})
# SQLite reports its temporary failures only in the message text.
_SQLITE_UNAVAILABLE = ("unable to open database file", "database is locked",
                       "database table is locked", "disk i/o error")


def database_unavailable(error: BaseException | None) -> bool:
    """True when ``error`` (or an error it was raised from) means the database cannot be
    reached or is busy right now, as opposed to a mistake in a statement or data."""
    return any(_unavailable(each) for each in _chain(error))


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _unavailable(error: BaseException) -> bool:
    if isinstance(error, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True  # the pool gave up reconnecting, or no connection was free in time
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True  # the dialect recognised a dropped connection
        error = error.orig
    if isinstance(error, psycopg.OperationalError):
        # No SQLSTATE: the client library failed (refused, timed out, connection lost).
        state = error.sqlstate
        return (state is None or state.startswith(_PG_UNAVAILABLE_PREFIXES)
                or state in _PG_UNAVAILABLE)
    if isinstance(error, sqlite3.OperationalError):
        message = str(error).lower()
        return any(text in message for text in _SQLITE_UNAVAILABLE)
    return False


def discard_session() -> None:
    """Give up the request's session after an outage: roll back what can be, and
    invalidate connections that cannot even do that, so that nothing later in the
    request (or the next request) finds a broken transaction."""
    try:
        db.session.rollback()
    except Exception:  # the connection is gone: invalidating is the cure
        _invalidate()


def guard_session_teardown(app: Flask) -> None:
    """Replace Flask-SQLAlchemy's session removal at the end of each app context with one
    that cannot fail: when the connection died, the rollback inside ``remove()`` raises,
    and an error from a teardown escapes Flask's error handling entirely (the WSGI
    server answers with its own bare 500 page). The response is already made by then,
    so the failure is logged and the connection invalidated."""
    funcs = app.teardown_appcontext_funcs
    funcs[funcs.index(db._teardown_session)] = _remove_session


def _remove_session(exc: BaseException | None) -> None:
    try:
        db.session.remove()
    except Exception as error:  # see guard_session_teardown
        if database_unavailable(error):
            log.warning("closing the database session failed (%s); connection discarded",
                        describe(error))
        else:
            log.exception("closing the database session failed; connection discarded")
        _invalidate()


def _invalidate() -> None:
    try:
        db.session.invalidate()
    except Exception as error:  # best effort on an already dead connection
        log.warning("invalidating the database session failed (%s)", describe(error))
    finally:
        db.session.registry.clear()  # a fresh session for whatever comes next


def describe(error: BaseException) -> str:
    """One line for the log: an outage is expected, its traceback is noise."""
    return f"{type(error).__name__}: {_first_line(error)}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
