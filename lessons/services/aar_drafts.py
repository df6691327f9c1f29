"""Draft lessons from an after-action report: the upload, kept with its proposals for
its contributor, then the drafts created from what they kept, in one transaction.

Between the two steps the upload waits in the database (``staged_imports``, as an
analyst's import waits there, under its own format ``aar``) so any app process can
finish it: for its uploader only, for ``STAGED_FOR``, at most ``PENDING_MAX`` a user.
Once the drafts exist the row keeps only their ids, so the page that lists them can
be reloaded and a second "Create drafts" is refused instead of creating them twice.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select, update

from lessons import policy, search
from lessons.errors import InvalidTransition, NotAllowed, NotFound, ValidationFailed
from lessons.extensions import db
from lessons.models import Lesson, StagedImport, User
from lessons.models.base import utcnow
from lessons.services import aar, audit, files
from lessons.services import lessons as lesson_service
from lessons.services.lessons import locked

FORMAT = "aar"  # the staged row's format: never one an import reads (imports.FORMATS)
STAGED_FOR = timedelta(hours=1)
PENDING_MAX = 5  # reports one user may have waiting for review
MAX_MB_DEFAULT = 10
# Room for the form's other fields and the multipart framing around the file itself.
REQUEST_OVERHEAD = 1024 * 1024
EXTENSIONS = {"docx": "docx", "pdf": "pdf", "txt": "txt"}


def max_bytes() -> int:
    """The largest report read (MUSTER_AAR_MAX_MB megabytes, 10 by default)."""
    value = current_app.config.get("AAR_MAX_MB", MAX_MB_DEFAULT)
    try:
        megabytes = float(value)
        if megabytes <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise RuntimeError(f"MUSTER_AAR_MAX_MB must be a positive number of megabytes, "
                           f"not {value!r}") from None
    return int(megabytes * 1024 * 1024)


def request_limit() -> int:
    """The most an upload request may carry: a report at its limit and the form."""
    return max_bytes() + REQUEST_OVERHEAD


def may_open(user: User) -> bool:
    """Drafting from a report is writing lessons: contributors only."""
    return policy.can_create_lesson(user)


def _require(user: User) -> None:
    if not may_open(user):
        raise NotAllowed("Only contributors can draft lessons from a report.")


@dataclass
class Staged:
    """An uploaded report as its contributor reviews it."""

    token: str
    filename: str
    kind: str
    context: aar.Context
    proposals: list[aar.Proposal]
    notes: list[str] = field(default_factory=list)
    created: list[str] | None = None  # public ids, once the drafts exist
    report: bytes = b""


def _clean_filename(filename: str, kind: str) -> str:
    """The uploader's name for the report, without folders, with the extension its
    content has (a text file called ``.pdf`` is kept as text)."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = re.sub(r"[\x00-\x1f\x7f<>:\"|?*]", "", " ".join(name.split())).strip(" .")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{(stem or 'after-action-report')[:150]}.{EXTENSIONS[kind]}"


def stage(user: User, filename: str, data: bytes) -> Staged:
    """Read an uploaded report and keep it with its proposals for review. Raises
    ``NotAllowed`` for non-contributors, ``ValidationFailed`` (key ``file``) for a file
    too large, of another type, unreadable, scanned, empty or without observations."""
    _require(user)
    try:
        report = aar.read_report(data, max_bytes=max_bytes())
    except aar.Unreadable as exc:
        raise ValidationFailed({"file": exc.message}) from None
    name = _clean_filename(filename, report.kind)
    # The uploader's row locked until commit (PostgreSQL; on SQLite the DELETE below
    # takes the write lock first): uploads at once count, trim and add one at a time.
    db.session.scalar(locked(select(User).where(User.id == user.id), User))
    db.session.execute(delete(StagedImport).where(
        StagedImport.format == FORMAT, StagedImport.created_at < utcnow() - STAGED_FOR))
    waiting = list(db.session.scalars(select(StagedImport.id).where(
        StagedImport.format == FORMAT, StagedImport.user_id == user.id)
        .order_by(StagedImport.created_at.desc(), StagedImport.id.desc())))
    if len(waiting) >= PENDING_MAX:  # the oldest make room
        db.session.execute(delete(StagedImport).where(
            StagedImport.id.in_(waiting[PENDING_MAX - 1:])))
    staged = Staged(token=secrets.token_urlsafe(24), filename=name, kind=report.kind,
                    context=report.context, proposals=report.proposals, notes=report.notes,
                    report=data)
    db.session.add(StagedImport(token=staged.token, user_id=user.id, format=FORMAT,
                                filename=name[:200], content=_dump(staged), field_map=""))
    db.session.commit()
    return staged


def _dump(staged: Staged) -> str:
    context = staged.context
    return json.dumps({
        "kind": staged.kind, "notes": staged.notes, "created": staged.created,
        "context": {"source_event": context.source_event, "unit": context.unit,
                    "observed_on": context.observed_on.isoformat()
                    if context.observed_on else None},
        "proposals": [p.as_dict() for p in staged.proposals],
        "report": base64.b64encode(staged.report).decode("ascii"),
    }, ensure_ascii=False)


def _load(row: StagedImport) -> Staged:
    data = json.loads(row.content)
    context = data.get("context") or {}
    observed = context.get("observed_on")
    return Staged(
        token=row.token, filename=row.filename, kind=data.get("kind", ""),
        context=aar.Context(source_event=context.get("source_event") or "",
                            unit=context.get("unit") or "",
                            observed_on=date.fromisoformat(observed) if observed else None),
        proposals=[aar.Proposal.from_dict(p) for p in data.get("proposals") or []],
        notes=list(data.get("notes") or []), created=data.get("created"),
        report=base64.b64decode(data.get("report") or ""))


def _row(user: User, token: str, *, for_update: bool = False) -> StagedImport:
    query = select(StagedImport).where(
        StagedImport.token == str(token), StagedImport.format == FORMAT,
        StagedImport.user_id == user.id, StagedImport.created_at >= utcnow() - STAGED_FOR)
    if for_update:
        query = locked(query, StagedImport)
    row = db.session.scalar(query)
    if row is None:
        raise NotFound("That report has expired or is not yours; upload it again.")
    return row


def get_staged(user: User, token: str) -> Staged:
    """The user's own uploaded report; ``NotFound`` for anyone else's, or an expired one."""
    _require(user)
    return _load(_row(user, token))


def created_lessons(user: User, staged: Staged) -> list[Lesson]:
    """The drafts made from the report, as far as the user may still see them."""
    ids = staged.created or []
    if not ids:
        return []
    found = {lesson.public_id: lesson for lesson in db.session.scalars(
        select(Lesson).where(Lesson.public_id.in_(ids), policy.visible_lessons(user)))}
    return [found[public_id] for public_id in ids if public_id in found]


# Proposal parts the review form carries (its field names, the lesson's contract keys).
PROPOSAL_KEYS = ("title", "kind", *aar.Proposal.PARTS)
CONTEXT_KEYS = ("source_event", "observed_on", "unit")


def create_drafts(user: User, token: str, context: Mapping[str, Any],
                  items: Sequence[tuple[Mapping[str, Any], bool, bool]]) -> list[Lesson]:
    """Create the kept proposals as drafts owned by ``user``, each with the report's
    event, date and unit and the report attached, in one transaction (all or none),
    audited. ``items`` holds (proposal values, keep, merge with the previous) in page
    order. Raises ``NotFound`` (not the user's report, or expired), ``InvalidTransition``
    (its drafts were already created) and ``ValidationFailed``, whose keys name the
    proposal by its place: ``proposals-<n>-<field>``, or a context field."""
    _require(user)
    row = _row(user, token, for_update=True)
    staged = _load(row)
    # Claimed by a conditional UPDATE before anything is made: SQLite has no row lock, so
    # two "Create drafts" at once both read the row unmade; the later one's claim waits
    # for the earlier commit and then matches nothing.
    claimed = db.session.execute(
        update(StagedImport).where(StagedImport.id == row.id,
                                   StagedImport.content == row.content)
        .values(content=StagedImport.content).execution_options(synchronize_session=False))
    if staged.created is not None or not claimed.rowcount:
        db.session.rollback()
        raise InvalidTransition("The drafts from this report were already created.")
    try:
        drafts = aar.combine([(aar.Proposal.from_dict(values), keep, merge)
                              for values, keep, merge in items])
    except aar.NothingKept as exc:
        key = f"proposals-{exc.index}-merge" if exc.index is not None else "kept"
        raise ValidationFailed({key: exc.message}) from None
    shared = {key: context.get(key) for key in CONTEXT_KEYS}
    made: list[Lesson] = []
    try:
        for index, proposal in drafts:
            values = {key: getattr(proposal, key) for key in PROPOSAL_KEYS}
            try:
                lesson = lesson_service.create_lesson(user, {**values, **shared}, commit=False)
            except ValidationFailed as exc:
                raise ValidationFailed({
                    (f"proposals-{index}-{key}" if key in PROPOSAL_KEYS else key): message
                    for key, message in exc.errors.items()}) from None
            audit.record("drafted_from_report", actor=user, lesson=lesson,
                         comment=f"{proposal.found_as or 'a proposal'} of after-action "
                                 f"report {staged.filename}"[:1000])
            try:
                files.add_file(user, lesson, staged.filename, staged.report)
            except ValidationFailed as exc:
                raise ValidationFailed({"file": "The report cannot be attached to the "
                                                f"drafts: {exc.errors.get('file', exc)}"}) \
                    from None
            made.append(lesson)
    except BaseException:
        db.session.rollback()
        raise
    staged.created = [lesson.public_id for lesson in made]
    staged.report = b""  # kept with each draft now; the row holds only what was made
    row.content = _dump(staged)
    db.session.commit()
    search.after_commit()
    return made
