"""Safe retries of API creates: a request sent with an ``Idempotency-Key`` is carried out
once per user and key; sending it again (the client lost the connection, a proxy
retried) within 24 hours gets the first answer back instead of a second lesson.

The stored answer commits in the same transaction as what it describes, so a crash
never keeps one without the other: the key's row is inserted (and flushed) before the
create runs, and filled in with the answer just before the create's own commit, when
the new row has its id, version and timestamps. Because the row is flushed first, the
unique (user, key) constraint makes a concurrent request with the same key wait for the
first one's transaction (PostgreSQL's unique index, SQLite's single writer); when that
commits, the waiting insert fails and the waiter replays the stored answer. Nobody ever
sees a half-done key. A create that is refused (422, 403...) stores nothing: its
answer would be the same again, and the client may correct the body and reuse the key.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, event, select
from sqlalchemy.exc import IntegrityError

from lessons.errors import DomainError, ValidationFailed
from lessons.extensions import db
from lessons.models import IdempotentRequest, User
from lessons.models.base import utcnow

HEADER = "Idempotency-Key"
KEEP_FOR = timedelta(hours=24)
KEY_MAX = 255
# Visible ASCII, no spaces: what UUIDs and random tokens are made of, and what every
# proxy passes through a header unchanged.
KEY_PATTERN = re.compile(rf"[\x21-\x7e]{{1,{KEY_MAX}}}")
# The answer's headers worth repeating; the rest (Date, Content-Length...) are the
# server's to set on each response.
KEPT_HEADERS = ("Location", "ETag")

Created = TypeVar("Created")


@dataclass(frozen=True)
class Answer:
    """A response as stored: what the first request got, and every replay gets."""

    status: int
    body: str
    headers: dict[str, str]
    replayed: bool = False


class KeyReused(ValidationFailed):
    """The key was first used with another body or operation: a client bug (two
    different requests under one key), never something to replay."""

    def __init__(self) -> None:
        super().__init__({HEADER: "This key was already used with a different request "
                                  "body (or operation) in the last 24 hours; use a new key "
                                  "for a new request."})


class KeyInProgress(DomainError):
    status = 409
    title = "A request with this key is still in progress"

    def __init__(self) -> None:
        super().__init__("A request with this Idempotency-Key is still being carried out; "
                         "send it again in a moment to get its answer.")


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise ValidationFailed({HEADER: f"1 to {KEY_MAX} visible ASCII characters "
                                        "(no spaces), e.g. a UUID."})
    return key


def body_digest(raw: bytes) -> str:
    """The body's fingerprint: its JSON re-serialised canonically, so a client that
    re-encodes the same values (other key order or spacing) still matches."""
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()


def run_once(user: User, key: str, operation: str, raw_body: bytes,
             create: Callable[[], Any], made: type[Created],
             answer: Callable[[Created], Answer]) -> Answer:
    """``create()`` (a service call that commits once, making one new ``made``), with
    its ``answer`` stored under ``key``; or the stored answer when this user sent the
    same request under ``key`` before. ``ValidationFailed`` (422) for a malformed key,
    ``KeyReused`` (422) when ``key`` came with another body or operation."""
    check_key(key)
    digest = body_digest(raw_body)
    stored = _stored(user, key)
    if stored is not None:
        return _replay(stored, operation, digest)
    _prune()
    row = IdempotentRequest(user_id=user.id, key=key, operation=operation,
                            body_digest=digest, status=0, body="", headers={})
    db.session.add(row)
    try:
        db.session.flush()  # waits here while another request holds this key
    except IntegrityError:
        db.session.rollback()
        stored = _stored(user, key)
        if stored is None:  # the other request's row expired in between
            raise KeyInProgress() from None
        return _replay(stored, operation, digest)
    try:
        with _AnswerAtCommit(row, made, answer):
            create()
    except BaseException:
        db.session.rollback()  # the reserved key goes with the refused create
        raise
    return Answer(row.status, row.body, dict(row.headers))


def _stored(user: User, key: str) -> IdempotentRequest | None:
    row = db.session.scalar(select(IdempotentRequest).where(
        IdempotentRequest.user_id == user.id, IdempotentRequest.key == key))
    if row is not None and row.created_at < utcnow() - KEEP_FOR:
        return None  # expired: the next write prunes it
    return row


def _replay(row: IdempotentRequest, operation: str, digest: str) -> Answer:
    if row.operation != operation or row.body_digest != digest:
        raise KeyReused()
    return Answer(row.status, row.body, dict(row.headers), replayed=True)


def _prune() -> None:
    """Expired keys go with any write that stores one: one indexed DELETE, in the same
    transaction, so no job has to run for it."""
    db.session.execute(delete(IdempotentRequest).where(
        IdempotentRequest.created_at < utcnow() - KEEP_FOR))


class _AnswerAtCommit:
    """While the create runs: note the one ``made`` row its flushes insert, and just
    before its commit write that row's answer into ``row``, so both commit together."""

    def __init__(self, row: IdempotentRequest, made: type, answer: Callable) -> None:
        self.row, self.made, self.answer = row, made, answer
        self.created: list = []
        self.session = db.session()

    def after_flush(self, session, context) -> None:  # noqa: ARG002 - event signature
        self.created.extend(obj for obj in session.new if isinstance(obj, self.made))

    def before_commit(self, session) -> None:
        if session.in_nested_transaction() or self.row.status or not self.created:
            return  # a savepoint's "commit" (a new tag), or a commit after the create's
        result = self.answer(self.created[0])
        self.row.status, self.row.body = result.status, result.body
        self.row.headers = {k: v for k, v in result.headers.items() if k in KEPT_HEADERS}

    def __enter__(self) -> None:
        event.listen(self.session, "after_flush", self.after_flush)
        event.listen(self.session, "before_commit", self.before_commit)

    def __exit__(self, *exc: object) -> None:
        event.remove(self.session, "after_flush", self.after_flush)
        event.remove(self.session, "before_commit", self.before_commit)
        if exc[0] is None and not self.row.status:
            raise RuntimeError(f"the create made no {self.made.__name__} to answer with")
