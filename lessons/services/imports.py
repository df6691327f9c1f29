"""An analyst's upload of lessons (JSON Lines or CSV): checked and previewed first, stored
only when confirmed. The upload is kept in the database between the two steps, for its
owner only, for a limited time."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, select

from lessons import policy
from lessons.errors import NotFound, ValidationFailed
from lessons.extensions import db
from lessons.models import StagedImport, User
from lessons.models.base import utcnow
from lessons.services import exchange, spreadsheet

STAGED_FOR = timedelta(hours=1)
FORMATS = ("jsonl", "csv")


@dataclass
class Preview:
    """What confirming would do, line by line."""

    staged: StagedImport
    report: exchange.ImportReport
    titles: dict[int, str] = field(default_factory=dict)
    # An administrator's migration: statuses and originators taken as is.
    migration: bool = False

    @property
    def lines(self) -> list[tuple[int, str, str, list[str]]]:
        """(line, title, outcome, reasons) in file order; outcome is created, updated,
        unchanged or rejected."""
        reasons: dict[int, list[str]] = {}
        for error in self.report.errors:
            reasons.setdefault(error.line, []).append(f"{error.field}: {error.reason}")
        numbers = sorted(set(self.report.outcomes) | set(reasons))
        return [(n, self.titles.get(n, ""), "rejected" if n in reasons
                 else self.report.outcomes[n], reasons.get(n, [])) for n in numbers]

    @property
    def storable(self) -> int:
        return self.report.created + self.report.updated


def _records(staged: StagedImport) -> list:
    field_map = exchange.FieldMap.from_json(staged.field_map) if staged.field_map else None
    if staged.format == "csv":
        return list(spreadsheet.read_rows(staged.content, field_map))
    return list(exchange.read_lines(staged.content.splitlines(), field_map))


def _decode(data: bytes, what: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed({what: f"Not UTF-8 text (byte {exc.start}); save the file as "
                                      "UTF-8 and upload it again."}) from None
    if "\x00" in text:
        raise ValidationFailed({what: "The file holds NUL characters: it is not a text file."})
    return text


def may_open(user: User) -> bool:
    """The upload page is for analysts, and for administrators' migrations."""
    return policy.can_import_lessons(user) or policy.can_admin(user)


def _check(user: User, migration: bool) -> None:
    if migration or not policy.can_admin(user) or policy.can_import_lessons(user):
        exchange.check_importer(user, migration=migration)
    else:  # an administrator who forgot the box: say so beside it, not with a 403
        raise ValidationFailed({"as_migration": "You import lessons as a migration only."})


def stage(user: User, filename: str, data: bytes, fmt: str = "",
          map_data: bytes = b"", *, migration: bool = False) -> Preview:
    """Keep an upload and preview its import (a dry run: nothing stored, nothing
    indexed). Raises ``NotAllowed`` when the user may not import this way (a migration
    is an administrator's), ``ValidationFailed`` for an unreadable file or map."""
    _check(user, migration)
    fmt = fmt or ("csv" if filename.lower().endswith(".csv") else "jsonl")
    if fmt not in FORMATS:
        raise ValidationFailed({"format": "Choose JSON Lines or CSV."})
    content = _decode(data, "file")
    if not content.strip():
        raise ValidationFailed({"file": "The file is empty."})
    field_map = _decode(map_data, "map") if map_data else ""
    if field_map:
        try:
            exchange.FieldMap.from_json(field_map)
        except ValueError as exc:
            raise ValidationFailed({"map": str(exc)}) from None
    db.session.execute(delete(StagedImport).where(StagedImport.created_at
                                                  < utcnow() - STAGED_FOR))
    staged = StagedImport(token=secrets.token_urlsafe(24), user_id=user.id, format=fmt,
                          filename=filename[:200], content=content, field_map=field_map)
    db.session.add(staged)
    db.session.commit()
    return preview(user, staged.token, migration=migration)


def _staged(user: User, token: str) -> StagedImport:
    staged = db.session.scalar(select(StagedImport).where(
        StagedImport.token == str(token), StagedImport.user_id == user.id,
        StagedImport.format.in_(FORMATS),  # not a report waiting to become drafts
        StagedImport.created_at >= utcnow() - STAGED_FOR))
    if staged is None:
        raise NotFound("That upload has expired or was already imported; upload it again.")
    return staged


def preview(user: User, token: str, *, migration: bool = False) -> Preview:
    staged = _staged(user, token)
    records = _records(staged)
    titles = {n: str(r.get("title") or "") for n, r, _ in records if isinstance(r, dict)}
    report = exchange.import_records(records, user, dry_run=True, migration=migration)
    return Preview(staged=staged, report=report, titles=titles, migration=migration)


def confirm(user: User, token: str, *, skip_invalid: bool,
            migration: bool = False) -> exchange.ImportReport:
    """Import the staged upload for real (checked again, rights included: lessons may
    have changed since the preview); the upload is discarded once stored. The run is
    audited (``exchange.import_records``) whether stored or refused; the preview, a dry
    run that stores nothing, is not."""
    _check(user, migration)
    staged = _staged(user, token)
    report = exchange.import_records(_records(staged), user, skip_invalid=skip_invalid,
                                     migration=migration,
                                     source=f"upload {staged.filename or '(unnamed)'} "
                                            f"({staged.format})")
    if report.stored:
        db.session.delete(staged)
        db.session.commit()
    return report
