"""Notifications: who is told of a change, in the app and by e-mail.

They are derived from audit records in one place, ``on_audit`` (called by
``audit.record``), so every change that is audited notifies whoever it concerns, in the
same transaction, and no service can forget. Requests only store rows; ``deliver_due``
(``flask notify send``) sends the e-mails. What a notification shows is decided when it
is shown or sent, under ``lessons.policy``: one about a lesson the recipient may no longer
see is not listed, not counted, and its e-mail is skipped.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from flask import current_app
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update

from lessons import policy
from lessons.errors import NotFound, ValidationFailed
from lessons.extensions import db
from lessons.models import (
    AuditRecord,
    Exercise,
    Lesson,
    Notification,
    NotificationPreference,
    User,
)
from lessons.models.base import utcnow
from lessons.models.user import UserRole


@dataclass(frozen=True)
class Event:
    label: str  # the settings page's wording
    default: str  # immediately, digest or never


EVENTS: dict[str, Event] = {
    "my_lesson_status": Event("My lesson is submitted, returned, validated, rejected or "
                              "recorded as learned", "immediately"),
    "my_lesson_attached": Event("My lesson is taken up by an exercise", "immediately"),
    "my_lesson_linked": Event("A lesson is linked with mine", "digest"),
    "nation_lesson_submitted": Event("A lesson of my nation is submitted for review "
                                     "(analysts)", "digest"),
    "release_request": Event("A release request waits for my decision (analysts)",
                             "immediately"),
    "outcome_to_confirm": Event("An exercise outcome waits for my confirmation (analysts)",
                                "immediately"),
    "release_decided": Event("A release request for my exercise is decided (planners)",
                             "immediately"),
    "watched_search": Event("A search I watch has new lessons (checked once a day)",
                            "immediately"),
}
DELIVERIES = {"immediately": "Immediately", "digest": "Daily digest", "never": "Never"}
EMAIL_MAX = 254
EMAIL_RULE = f"Give an e-mail address of up to {EMAIL_MAX} characters."
PER_PAGE = 30
COUNT_CAP = 99  # the header says "99+" past this: the count stays one short query
BATCH = 200  # rows the sender looks at per run and kind

# The author hears of these moves of their lesson (by someone else).
AUTHOR_MOVES = {"submitted": "submitted", "returned": "returned to you",
                "validated": "validated", "rejected": "rejected",
                "learned": "recorded as learned"}


# --- deriving notifications from audit records ------------------------------------------------
def on_audit(entry: AuditRecord, *, actor: User | None, lesson: Lesson | None,
             exercise: Exercise | None) -> None:
    """Add the notifications ``entry`` calls for to the session (the caller commits).

    Runs without autoflush: the caller's pending changes are flushed by its own commit,
    where it expects their errors, not by the look-ups here."""
    if lesson is None:
        return
    with db.session.no_autoflush:
        wanted = _recipients(entry, actor, lesson, exercise)
        if not wanted:
            return
        _store(entry, actor, wanted)


Wanted = list[tuple[int, str, Lesson, Lesson | None]]  # (user id, event, lesson, other)


def _recipients(entry: AuditRecord, actor: User | None, lesson: Lesson,
                exercise: Exercise | None) -> Wanted:
    action = entry.action
    wanted: Wanted = []
    if action in AUTHOR_MOVES:
        wanted.append((lesson.author_id, "my_lesson_status", lesson, None))
    if action == "submitted":
        wanted += [(uid, "nation_lesson_submitted", lesson, None)
                   for uid in _analysts_of(lesson.originator_nation)]
    elif action == "lesson_attached" and exercise is not None:
        wanted.append((lesson.author_id, "my_lesson_attached", lesson, None))
    elif action == "release_requested":
        wanted += [(uid, "release_request", lesson, None)
                   for uid in _analysts_of(lesson.originator_nation)]
    elif action == "outcome_recorded" and _outcome_waits(actor, lesson, entry.to_status):
        wanted += [(uid, "outcome_to_confirm", lesson, None)
                   for uid in _analysts_of(lesson.originator_nation)]
    elif action in ("release_approved", "release_declined") and exercise is not None:
        wanted += [(p.id, "release_decided", lesson, None) for p in exercise.planners]
    elif action == "linked":
        other = db.session.scalar(select(Lesson).where(Lesson.public_id == entry.comment))
        wanted.append((lesson.author_id, "my_lesson_linked", lesson, other))
        if other is not None:
            wanted.append((other.author_id, "my_lesson_linked", other, lesson))
    actor_id = actor.id if actor is not None else None
    seen: set[int] = set()
    out: Wanted = []
    for item in wanted:
        if item[0] is None or item[0] == actor_id or item[0] in seen:
            continue  # nobody is told of their own action, nor twice of one
        seen.add(item[0])
        out.append(item)
    return out


def _outcome_waits(actor: User | None, lesson: Lesson, to_status: str | None) -> bool:
    """An effective outcome that an originator analyst must confirm (the same test
    ``attachments._advance`` makes right after auditing it)."""
    from lessons.services.attachments import LEARNABLE

    return (to_status == "effective" and lesson.status in LEARNABLE and actor is not None
            and not policy.outcome_moves_at_once(actor, lesson))


def _analysts_of(nation: str) -> list[int]:
    return list(db.session.scalars(
        select(User.id).join(UserRole, UserRole.user_id == User.id)
        .where(User.nation_code == nation, User.active.is_(True),
               UserRole.role == "analyst")))


def _store(entry: AuditRecord, actor: User | None, wanted: Wanted) -> None:
    ids = sorted({uid for uid, *_ in wanted})
    users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))}
    choices = {(p.user_id, p.event): p.delivery for p in db.session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id.in_(ids)))}
    mail_on = bool(current_app.config.get("MAIL_SERVER"))
    now = utcnow()
    for uid, event, lesson, other in wanted:
        user = users.get(uid)
        if user is None or not user.active or not _may_see(user, lesson, other):
            continue
        delivery = choices.get((uid, event), EVENTS[event].default)
        if delivery == "never":
            continue
        exercise_id = entry.exercise_id if event in (
            "my_lesson_attached", "release_request", "outcome_to_confirm",
            "release_decided") else None
        db.session.add(new_notification(
            user, event, delivery, now, mail_on=mail_on,
            actor_id=actor.id if actor is not None else None, action=entry.action,
            lesson_id=lesson.id, other_lesson_id=other.id if other is not None else None,
            exercise_id=exercise_id))


def new_notification(recipient: User, event: str, delivery: str, now: datetime, *,
                     mail_on: bool, **about: Any) -> Notification:
    """A notification for ``recipient`` (not ``never``), its e-mail waiting for the sender
    when mail is on and they have an address; ``about`` names what it concerns."""
    return Notification(
        recipient_id=recipient.id, event=event, created_at=now,
        email_mode="digest" if delivery == "digest" else "immediate",
        email_state="pending" if mail_on and recipient.email else "skipped",
        attempts=0, last_error="", next_attempt_at=now, **about)


def _may_see(user: User, lesson: Lesson | None, other: Lesson | None) -> bool:
    return ((lesson is None or policy.can_view(user, lesson))
            and (other is None or policy.can_view(user, other)))


# --- reading them in the app ------------------------------------------------------------------
def _visible_to(user: User) -> ColumnElement[bool]:
    """Notifications about lessons ``user`` may see now (the one policy, in SQL)."""
    from lessons.models import WatchedSearchHit

    visible = select(Lesson.id).where(policy.visible_lessons(user))
    # A watched search's notice counts while one of its lessons is visible.
    watch_news = (select(WatchedSearchHit.lesson_id)
                  .where(WatchedSearchHit.notification_id == Notification.id,
                         WatchedSearchHit.lesson_id.in_(visible)))
    return and_(or_(Notification.lesson_id.is_(None), Notification.lesson_id.in_(visible)),
                or_(Notification.other_lesson_id.is_(None),
                    Notification.other_lesson_id.in_(visible)),
                or_(Notification.watched_search_id.is_(None), watch_news.exists()))


def unread_count(user: User) -> int:
    """The header's figure: one query on the recipient index, capped at COUNT_CAP + 1."""
    capped = (select(Notification.id)
              .where(Notification.recipient_id == user.id, Notification.read_at.is_(None),
                     _visible_to(user))
              .limit(COUNT_CAP + 1).subquery())
    return db.session.scalar(select(func.count()).select_from(capped)) or 0


@dataclass
class Item:
    """One notification as its recipient may read it."""

    public_id: str
    created_at: datetime
    read: bool
    text: str
    url_path: str
    lesson_title: str = ""
    details: list[str] = field(default_factory=list)  # lines the e-mail adds


def _describe(n: Notification, user: User) -> Item | None:
    """The wording of ``n`` for ``user``, or ``None`` when it names a lesson they may not
    see now. An exercise is named only to its participants."""
    if n.event == "watched_search":
        return _describe_watch(n, user)
    lesson, other = n.lesson, n.other_lesson
    if lesson is None or not _may_see(user, lesson, other):
        return None
    title = f"\u201c{lesson.title}\u201d"
    who = n.actor.display_name if n.actor is not None else "Someone"
    exercise = (n.exercise.name if n.exercise is not None
                and policy.can_view_exercise(user, n.exercise) else "an exercise")
    texts: dict[str, Callable[[], str]] = {
        "my_lesson_status": lambda: f"{who} {AUTHOR_MOVES.get(n.action, n.action)} your "
                                    f"lesson {title}.",
        "nation_lesson_submitted": lambda: f"{who} submitted {title} for review.",
        "my_lesson_attached": lambda: f"Your lesson {title} was taken up by {exercise}.",
        "release_request": lambda: f"{who} asks to widen the release of {title} for "
                                   f"{exercise}.",
        "outcome_to_confirm": lambda: f"An effective outcome of {title} in {exercise} "
                                      "waits for your confirmation.",
        "release_decided": lambda: f"The release request for {title} in {exercise} was "
                                   f"{n.action.removeprefix('release_')}.",
        "my_lesson_linked": lambda: f"{who} linked your lesson {title} with "
                                    f"\u201c{other.title if other else ''}\u201d.",
    }
    text = texts.get(n.event, lambda: f"{title}: {n.action.replace('_', ' ')}.")()
    return Item(public_id=n.public_id, created_at=n.created_at, read=n.read_at is not None,
                text=text, url_path=f"/lessons/{lesson.public_id}", lesson_title=lesson.title)


def _describe_watch(n: Notification, user: User) -> Item | None:
    """A watched search's news: its name and the count of its new lessons ``user`` may
    see now (the e-mail lists their titles); ``None`` when they may see none of them."""
    from lessons.models import WatchedSearchHit
    from lessons.rules import WATCH_TITLES_MAX
    from lessons.services.watches import search_path

    watch = n.watched_search
    if watch is None or watch.owner_id != user.id:
        return None
    lessons = [lesson for lesson in db.session.scalars(
        select(Lesson).join(WatchedSearchHit, WatchedSearchHit.lesson_id == Lesson.id)
        .where(WatchedSearchHit.notification_id == n.id, policy.visible_lessons(user))
        .order_by(Lesson.id)) if policy.can_view(user, lesson)]
    if not lessons:
        return None
    count = len(lessons)
    details = [f"- {lesson.title}" for lesson in lessons[:WATCH_TITLES_MAX]]
    if count > WATCH_TITLES_MAX:
        details.append(f"- and {count - WATCH_TITLES_MAX} more")
    return Item(public_id=n.public_id, created_at=n.created_at, read=n.read_at is not None,
                text=f"Your watched search \u201c{watch.name}\u201d has {count} new "
                     f"lesson{'s' if count != 1 else ''}.",
                url_path=search_path(watch), lesson_title=watch.name, details=details)


def list_for(user: User, page: int = 1) -> tuple[Pagination, list[Item]]:
    """``user``'s notifications they may read now, newest first, a page at a time."""
    query = (select(Notification)
             .where(Notification.recipient_id == user.id, _visible_to(user))
             .order_by(Notification.created_at.desc(), Notification.id.desc()))
    pagination = db.paginate(query, page=page, per_page=PER_PAGE, error_out=False)
    items = [item for n in pagination.items if (item := _describe(n, user)) is not None]
    return pagination, items


def mark_read(user: User, public_id: str) -> None:
    """Mark one of ``user``'s notifications read (``NotFound`` for any other id)."""
    done = db.session.execute(
        update(Notification)
        .where(Notification.public_id == str(public_id)[:16],
               Notification.recipient_id == user.id)
        .values(read_at=func.coalesce(Notification.read_at, utcnow())))
    if not done.rowcount:
        db.session.rollback()
        raise NotFound("No such notification.")
    db.session.commit()


def mark_all_read(user: User) -> int:
    done = db.session.execute(
        update(Notification)
        .where(Notification.recipient_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow()))
    db.session.commit()
    return done.rowcount or 0


# --- preferences ------------------------------------------------------------------------------
def preferences(user: User) -> dict[str, str]:
    """Every event's delivery for ``user``: their choice, else the event's default."""
    chosen = {p.event: p.delivery for p in db.session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id == user.id))}
    return {event: chosen.get(event, spec.default) for event, spec in EVENTS.items()}


def normal_email(email: str | None) -> str | None:
    """An address as stored: spaces around dropped, ``None`` for none."""
    return (email or "").strip() or None


def email_problem(email: str | None) -> str | None:
    """Why ``email`` (as ``normal_email`` gives it) will not do, or ``None``: the one
    rule for the settings page, the admins' user page and ``flask users set-email``."""
    if email is not None and (len(email) > EMAIL_MAX or "@" not in email.strip("@")
                              or any(c.isspace() for c in email)):
        return EMAIL_RULE
    return None


def save_preferences(user: User, choices: dict[str, str], email: str | None) -> None:
    """Store ``user``'s delivery per event and e-mail address; commits once, audited."""
    errors = {event: "Choose immediately, daily digest or never."
              for event in EVENTS if choices.get(event) not in DELIVERIES}
    email = normal_email(email)
    problem = email_problem(email)
    if problem:
        errors["email"] = problem
    if errors:
        raise ValidationFailed(errors)
    from lessons.services.lessons import locked

    # One save per user at a time (PostgreSQL's row lock; SQLite's write lock is taken by
    # the delete below). The rows are then written whole, not updated where found: two
    # saves at once would otherwise both insert the choice the other inserts.
    user = db.session.scalar(locked(select(User).where(User.id == user.id), User))
    before = preferences(user)
    changed = [event for event in EVENTS if before[event] != choices[event]]
    db.session.execute(delete(NotificationPreference)
                       .where(NotificationPreference.user_id == user.id))
    db.session.add_all(NotificationPreference(user_id=user.id, event=event,
                                              delivery=choices[event]) for event in EVENTS)
    if user.email != email:
        user.email = email
        changed.append("email")
    if changed:
        from lessons.services import audit

        audit.record("notification_settings_changed", actor=user, subject=user.username,
                     changes=changed)
    db.session.commit()


# --- e-mail delivery (`flask notify send`) ----------------------------------------------------
@dataclass
class Report:
    sent: int = 0  # e-mails (a digest is one)
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


class MailError(Exception):
    pass


def _send_mail(to: str, subject: str, body: str) -> None:
    """One plain-text e-mail over SMTP (STARTTLS and login when configured)."""
    cfg = current_app.config
    message = EmailMessage()
    message["From"] = cfg["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    try:
        with smtplib.SMTP(cfg["MAIL_SERVER"], int(cfg["MAIL_PORT"]),
                          timeout=float(cfg.get("MAIL_TIMEOUT", 10))) as smtp:
            if cfg.get("MAIL_USE_STARTTLS"):
                smtp.starttls(context=ssl.create_default_context())
            if cfg.get("MAIL_USERNAME"):
                smtp.login(cfg["MAIL_USERNAME"], cfg.get("MAIL_PASSWORD", ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        raise MailError(f"{type(exc).__name__}: {exc}"[:500]) from exc


def _line(item: Item) -> str:
    base = current_app.config.get("BASE_URL", "")
    text = f"{item.text}\n  {base}{item.url_path}" if base else item.text
    return "\n".join([text, *item.details])


def _claim(n: Notification) -> bool:
    """Take ``n`` for this sender (one attempt more), so two senders never both send it."""
    done = db.session.execute(
        update(Notification)
        .where(Notification.id == n.id, Notification.attempts == n.attempts,
               Notification.email_state.in_(("pending", "failed")))
        .values(attempts=Notification.attempts + 1))
    db.session.commit()
    return bool(done.rowcount)


def _finish(ids: Iterable[int], error: str | None, now: datetime) -> None:
    cfg = current_app.config
    for n in db.session.scalars(select(Notification).where(Notification.id.in_(list(ids)))):
        if error is None:
            n.email_state, n.emailed_at, n.next_attempt_at, n.last_error = (
                "sent", now, None, "")
            continue
        n.email_state, n.last_error = "failed", error
        more = n.attempts < int(cfg["NOTIFY_MAX_ATTEMPTS"])
        n.next_attempt_at = (now + timedelta(seconds=float(cfg["NOTIFY_RETRY_SECONDS"])
                                             * 2 ** (n.attempts - 1)) if more else None)
    db.session.commit()


def _skip(n: Notification, why: str) -> None:
    n.email_state, n.next_attempt_at, n.last_error = "skipped", None, why
    db.session.commit()


def _due(mode: str, now: datetime):
    return (select(Notification)
            .where(Notification.email_state.in_(("pending", "failed")),
                   Notification.email_mode == mode,
                   Notification.next_attempt_at.is_not(None),
                   Notification.next_attempt_at <= now,
                   Notification.attempts < int(current_app.config["NOTIFY_MAX_ATTEMPTS"]))
            .order_by(Notification.id).limit(BATCH))


def _deliverable(n: Notification) -> Item | None:
    """What ``n`` says to its recipient now, or ``None`` (then skipped) when they are
    inactive, have no address, or may no longer see its lesson."""
    user = n.recipient
    if not user.active or not user.email:
        _skip(n, "no active recipient with an e-mail address")
        return None
    item = _describe(n, user)
    if item is None:
        _skip(n, "the lesson is no longer visible to the recipient")
    return item


def deliver_due(now: datetime | None = None) -> Report:
    """Send what is due: each immediate notification as its own e-mail, and each user's
    daily digest as one; failures wait for their back-off. Never called by a request."""
    report = Report()
    if not current_app.config.get("MAIL_SERVER"):
        return report
    now = now or utcnow()
    for n in list(db.session.scalars(_due("immediate", now))):
        item = _deliverable(n)
        if item is None:
            report.skipped += 1
            continue
        if not _claim(n):
            continue
        error = _try(n.recipient.email, f"Muster: {item.lesson_title[:120]}",
                     _line(item) + "\n\nYour notifications: " + _list_url() + "\n", report)
        _finish([n.id], error, now)
    _deliver_digests(now, report)
    return report


def _list_url() -> str:
    return (current_app.config.get("BASE_URL", "") or "Muster") + "/notifications"


def _try(to: str, subject: str, body: str, report: Report) -> str | None:
    try:
        _send_mail(to, subject, body)
    except MailError as exc:
        report.failed += 1
        report.errors.append(f"{to}: {exc}")
        return str(exc)
    report.sent += 1
    return None


def _deliver_digests(now: datetime, report: Report) -> None:
    hours = float(current_app.config["NOTIFY_DIGEST_HOURS"])
    due = list(db.session.scalars(_due("digest", now)))
    by_user: dict[int, list[Notification]] = {}
    for n in due:
        by_user.setdefault(n.recipient_id, []).append(n)
    for user_id, rows in by_user.items():
        last = db.session.scalar(select(func.max(Notification.emailed_at)).where(
            Notification.recipient_id == user_id, Notification.email_mode == "digest",
            Notification.email_state == "sent"))
        if last is not None and now - last < timedelta(hours=hours):
            continue  # today's digest went already
        items: list[tuple[Notification, Item]] = []
        for n in rows:
            item = _deliverable(n)
            if item is None:
                report.skipped += 1
            elif _claim(n):
                items.append((n, item))
        if not items:
            continue
        body = "\n\n".join(_line(item) for _n, item in items)
        error = _try(items[0][0].recipient.email,
                     f"Muster: {len(items)} notification{'s' if len(items) != 1 else ''}",
                     f"Your daily digest from Muster:\n\n{body}\n\nYour notifications: "
                     f"{_list_url()}\n", report)
        _finish([n.id for n, _item in items], error, now)


@dataclass
class Failure:
    """A failed e-mail as administrators see it: who, what kind, why; no lesson named."""

    recipient: str
    event: str
    attempts: int
    last_error: str
    next_attempt_at: datetime | None
    created_at: datetime


def failures(viewer: User, limit: int = 50) -> list[Failure]:
    """The latest failed deliveries, for administrators only."""
    if not policy.can_admin(viewer):
        return []
    rows = db.session.execute(
        select(Notification, User.username).join(User, User.id == Notification.recipient_id)
        .where(Notification.email_state == "failed")
        .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit))
    return [Failure(recipient=name, event=EVENTS.get(n.event, Event(n.event, "")).label,
                    attempts=n.attempts, last_error=n.last_error,
                    next_attempt_at=n.next_attempt_at, created_at=n.created_at)
            for n, name in rows]
