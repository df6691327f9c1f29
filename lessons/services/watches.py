"""Watched searches: save a search, rename and delete it, and the daily check that tells
its owner of new lessons matching it.

The check runs the saved search as the owner through ``lessons.search`` (so what counts
as a match, and what the owner may see, is decided by the one search and the one policy),
at most once every ``WATCH_CHECK_HOURS`` per watch, and stores one notification per watch
with the lessons it found (``watched_search_hits``). What that notification shows and
e-mails is filtered again when shown or sent (``notifications._describe``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from flask import current_app
from sqlalchemy import func, select, update

from lessons import search
from lessons.errors import NotFound, ValidationFailed
from lessons.extensions import db
from lessons.models import Lesson, Notification, User, WatchedSearch, WatchedSearchHit
from lessons.models.base import utcnow
from lessons.rules import (
    QUERY_MAX,
    WATCH_CHECK_HOURS,
    WATCH_NAME_MAX,
    WATCH_QUERY_MAX,
    WATCHES_MAX,
)

EVENT = "watched_search"
SORTS = ("relevance", "newest")


# --- the saved search's URL state -------------------------------------------------------------
def normalise(text: str, filters: Mapping[str, Any] | None, sort: str) -> str:
    """The search as one canonical query string: the same search always gives the same
    string (facets in search's order, values as the search cleans them)."""
    pairs: list[tuple[str, str]] = []
    text = (text or "").strip()[:QUERY_MAX]
    if text:
        pairs.append(("q", text))
    for name, values in search.clean_filters(filters).items():
        pairs += [(name, value) for value in values]
    if sort in SORTS and sort != "relevance":
        pairs.append(("sort", sort))
    return urlencode(pairs)


def parse(query_string: str) -> tuple[str, dict[str, list[str]], str]:
    """The words, filters and sort a stored query string holds."""
    args = parse_qs(query_string, keep_blank_values=False)
    text = (args.get("q") or [""])[0]
    sort = (args.get("sort") or ["relevance"])[0]
    return text, search.clean_filters(args), sort if sort in SORTS else "relevance"


def search_path(watch: WatchedSearch) -> str:
    return f"/search?{watch.query_string}" if watch.query_string else "/search"


# --- save, list, rename, delete (each audited) --------------------------------------------
def _check_name(owner: User, name: str, *, keep: WatchedSearch | None = None) -> str:
    name = " ".join((name or "").split())
    if not name or len(name) > WATCH_NAME_MAX:
        raise ValidationFailed({"name": f"Give the watch a name of up to {WATCH_NAME_MAX} "
                                        "characters."})
    clash = db.session.scalar(select(WatchedSearch.id).where(
        WatchedSearch.owner_id == owner.id,
        func.lower(WatchedSearch.name) == name.lower()))
    if clash is not None and (keep is None or clash != keep.id):
        raise ValidationFailed({"name": f"You already watch a search named \u201c{name}\u201d."
                                        " Choose another name."})
    return name


def save_watch(owner: User, name: str, text: str, filters: Mapping[str, Any] | None,
               sort: str) -> WatchedSearch:
    """Watch the search (words, filters, sort) under ``name``; lessons already there now
    are not new. Commits once."""
    query_string = normalise(text, filters, sort)
    if not query_string.replace("sort=newest", ""):
        raise ValidationFailed({"name": "Search for something (words or filters) before "
                                        "watching the search."})
    if len(query_string) > WATCH_QUERY_MAX:
        raise ValidationFailed({"name": "This search is too long to watch; shorten it."})
    name = _check_name(owner, name)
    # The owner's row is locked so two saves at once cannot both pass the limit.
    db.session.execute(select(User.id).where(User.id == owner.id).with_for_update())
    count = db.session.scalar(select(func.count()).select_from(WatchedSearch)
                              .where(WatchedSearch.owner_id == owner.id)) or 0
    if count >= WATCHES_MAX:
        raise ValidationFailed({"name": f"You watch {WATCHES_MAX} searches already, the "
                                        "most one may. Delete one on your account page "
                                        "first."})
    newest = db.session.scalar(select(func.max(Lesson.id))) or 0
    watch = WatchedSearch(owner_id=owner.id, name=name, query_string=query_string,
                          created_at=utcnow(), last_lesson_id=newest)
    db.session.add(watch)
    _audit("watch_saved", owner, f"\u201c{name}\u201d")
    db.session.commit()
    return watch


def list_watches(owner: User) -> list[WatchedSearch]:
    return list(db.session.scalars(select(WatchedSearch)
                                   .where(WatchedSearch.owner_id == owner.id)
                                   .order_by(func.lower(WatchedSearch.name))))


def get_watch(owner: User, public_id: str) -> WatchedSearch:
    """One of ``owner``'s watches; anybody else's answers like one that does not exist."""
    watch = db.session.scalar(select(WatchedSearch).where(
        WatchedSearch.public_id == str(public_id)[:16], WatchedSearch.owner_id == owner.id))
    if watch is None:
        raise NotFound("No such watched search.")
    return watch


def rename_watch(owner: User, public_id: str, name: str) -> WatchedSearch:
    watch = get_watch(owner, public_id)
    old, watch.name = watch.name, _check_name(owner, name, keep=watch)
    if watch.name != old:
        _audit("watch_renamed", owner, f"\u201c{old}\u201d \u2192 \u201c{watch.name}\u201d")
    db.session.commit()
    return watch


def delete_watch(owner: User, public_id: str) -> str:
    """Stop watching; its notifications go with it. Returns the name it had."""
    watch = get_watch(owner, public_id)
    name = watch.name
    db.session.execute(Notification.__table__.delete().where(
        Notification.watched_search_id == watch.id))
    db.session.delete(watch)
    _audit("watch_deleted", owner, f"\u201c{name}\u201d")
    db.session.commit()
    return name


def _audit(action: str, owner: User, comment: str) -> None:
    """The owner's account is the subject, so their trail lists their watches. The name
    only, not the search: its filters may name lessons or exercises an administrator of
    another nation may not see."""
    from lessons.services import audit

    audit.record(action, actor=owner, subject=owner.username, comment=comment)


# --- the daily check (`flask notify send`) ----------------------------------------------------
def check_due(now: datetime | None = None) -> int:
    """Run every watch not checked in the last ``WATCH_CHECK_HOURS``; returns the
    notifications stored. Never called by a request."""
    from lessons.services import notifications

    now = now or utcnow()
    since = now - timedelta(hours=WATCH_CHECK_HOURS)
    due = list(db.session.scalars(
        select(WatchedSearch).join(User, User.id == WatchedSearch.owner_id)
        .where(User.active.is_(True),
               (WatchedSearch.last_checked_at.is_(None))
               | (WatchedSearch.last_checked_at <= since))
        .order_by(WatchedSearch.id)))
    stored = 0
    mail_on = bool(current_app.config.get("MAIL_SERVER"))
    for watch in due:
        # Claimed by a conditional UPDATE: two senders at once check a watch once.
        claimed = db.session.execute(
            update(WatchedSearch)
            .where(WatchedSearch.id == watch.id,
                   (WatchedSearch.last_checked_at.is_(None))
                   | (WatchedSearch.last_checked_at <= since))
            .values(last_checked_at=now)
            .execution_options(synchronize_session=False))
        if not claimed.rowcount:
            db.session.rollback()
            continue
        owner = watch.owner
        text, filters, _sort = parse(watch.query_string)
        try:
            ids = search.matching_ids(owner, text, filters=filters)
        except search.TooBroad:
            ids = []
        # New: written after the watch was saved and not reported yet. A lesson the owner
        # could not see at an earlier check (a draft, or not yet released to their nation)
        # is reported at the first check after it becomes theirs to see.
        reported = set(db.session.scalars(
            select(WatchedSearchHit.lesson_id)
            .join(Notification, Notification.id == WatchedSearchHit.notification_id)
            .where(Notification.watched_search_id == watch.id)))
        new = sorted(i for i in ids if i > watch.last_lesson_id and i not in reported)
        delivery = notifications.preferences(owner).get(EVENT, "immediately")
        if new and delivery != "never":
            notice = notifications.new_notification(
                owner, EVENT, delivery, now, mail_on=mail_on, action=EVENT,
                watched_search_id=watch.id)
            db.session.add(notice)
            db.session.flush()
            db.session.add_all(WatchedSearchHit(notification_id=notice.id, lesson_id=i)
                               for i in new)
            stored += 1
        db.session.commit()
    return stored
