"""The lessons exchange format: JSON Lines with the contract keys (docs/ARCHITECTURE.md, section 3).

Import checks every line against the one rule set before storing anything; by default a
file with any bad line stores nothing (all or nothing), ``skip_invalid`` stores the good
lines. Re-importing an ``external_id`` updates that lesson as a new version. Export then
import is lossless for every contract field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask import current_app
from sqlalchemy import select

from lessons import policy, search
from lessons.errors import ValidationFailed
from lessons.extensions import db
from lessons.models import Lesson, RemedialAction, User
from lessons.models.base import new_public_id
from lessons.rules import (
    ACTIONS_MAX,
    KINDS,
    STATUSES,
    check_action,
    check_lesson,
    unstorable,
)
from lessons.services import audit
from lessons.services.lessons import (
    EDITABLE_LISTS,
    EDITABLE_SCALARS,
    apply_values,
    normalise_values,
)
from lessons.services.nations import known_codes, nation_codes

# Contract keys of the exchange format, in the order written on export.
RECORD_KEYS = (
    "external_id", "title", "observation", "discussion", "conclusion", "recommendation",
    "kind", "friction", "workaround", "limits", "permanence",
    "source_event", "observed_on", "location", "unit",
    "domains", "functions", "tags", "nations",
    "originator_nation", "classification", "releasable_to", "status", "actions",
)
LIST_KEYS = frozenset(EDITABLE_LISTS)
STRING_KEYS = frozenset(set(EDITABLE_SCALARS) - {"observed_on"}) | {
    "external_id", "originator_nation", "status"}
ACTION_KEYS = ("description", "owner_org", "owner_nation", "due_on", "status")
EXTERNAL_ID_MAX = 200
MAX_LINE_BYTES = 1_000_000


# --- mapping other systems' records ------------------------------------------------------
@dataclass(frozen=True)
class FieldMap:
    """How a foreign record becomes contract keys (a ``--map MAP.json`` file).

    ``rename``: foreign key -> contract key. ``join``: contract key -> foreign keys whose
    non-empty values are joined, in order, with a blank line. ``defaults``: values for
    contract keys a record lacks or leaves empty. ``ignore_unknown``: drop foreign keys
    the map does not mention instead of reporting them.
    """

    rename: dict[str, str] = field(default_factory=dict)
    join: dict[str, list[str]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    ignore_unknown: bool = False

    @classmethod
    def from_json(cls, text: str) -> FieldMap:
        """Read a map file; ``ValueError`` with a readable reason when it is malformed."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"map is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError("map must be a JSON object")
        unknown = set(raw) - {"rename", "join", "defaults", "ignore_unknown", "description"}
        if unknown:
            raise ValueError(f"map has unknown sections: {', '.join(sorted(unknown))}")
        rename, join, defaults = (raw.get(k, {}) for k in ("rename", "join", "defaults"))
        if not (isinstance(rename, dict) and all(isinstance(v, str) for v in rename.values())):
            raise ValueError("map 'rename' must map foreign keys to contract keys")
        if not (isinstance(join, dict) and all(
                isinstance(v, list) and all(isinstance(x, str) for x in v)
                for v in join.values())):
            raise ValueError("map 'join' must map a contract key to a list of foreign keys")
        if not isinstance(defaults, dict):
            raise ValueError("map 'defaults' must be an object")
        targets = set(rename.values()) | set(join) | set(defaults)
        bad = sorted(targets - set(RECORD_KEYS))
        if bad:
            raise ValueError(f"map targets unknown contract keys: {', '.join(bad)}")
        return cls(rename=rename, join=join, defaults=defaults,
                   ignore_unknown=bool(raw.get("ignore_unknown", False)))

    def apply(self, record: Mapping[str, Any]) -> dict[str, Any]:
        joined_sources = {key for keys in self.join.values() for key in keys}
        out: dict[str, Any] = {}
        for key, value in record.items():
            if key in self.rename:
                out[self.rename[key]] = value
            elif key in joined_sources:
                continue
            elif key in RECORD_KEYS or not self.ignore_unknown:
                out.setdefault(key, value)
        for target, sources in self.join.items():
            parts = [str(record[s]).strip() for s in sources
                     if record.get(s) not in (None, "", [])]
            if parts:
                out[target] = "\n\n".join(p for p in parts if p)
        for key, value in self.defaults.items():
            if out.get(key) in (None, "", []):
                out[key] = value
        return out


# --- reading and checking records -------------------------------------------------------
@dataclass
class LineError:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass
class CheckedRecord:
    line: int
    external_id: str | None
    values: dict[str, Any]
    originator: str
    status: str
    actions: list[dict[str, Any]] | None


def _as_date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError("must be a date string YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _check_types(record: Mapping[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for key, value in record.items():
        if unstorable(value) is not None:
            errors[key] = ("holds a NUL character or an unpaired surrogate, which no "
                           "database stores")
        elif key not in RECORD_KEYS:
            errors[key] = "unknown field (use --map to rename or ignore foreign fields)"
        elif value is None:
            continue
        elif key in LIST_KEYS and not (isinstance(value, list)
                                       and all(isinstance(v, str) for v in value)):
            errors[key] = "must be a JSON array of strings"
        elif key in STRING_KEYS and not isinstance(value, str):
            errors[key] = "must be a string"
        elif key == "actions" and not (isinstance(value, list)
                                       and all(isinstance(a, dict) for a in value)):
            errors[key] = "must be a JSON array of objects"
    return errors


def check_record(record: Mapping[str, Any], line: int, *, default_nation: str,
                 nations: set[str], codes: set[str]) -> tuple[CheckedRecord | None,
                                                             list[LineError]]:
    """Check one record (already mapped); returns it ready to store, or its errors."""
    errors = _check_types(record)
    if errors:
        return None, [LineError(line, k, v) for k, v in errors.items()]
    data = {k: v for k, v in record.items() if v is not None}
    external_id = (data.get("external_id") or "").strip() or None
    if external_id and len(external_id) > EXTERNAL_ID_MAX:
        errors["external_id"] = f"at most {EXTERNAL_ID_MAX} characters"
    originator = (data.get("originator_nation") or default_nation).strip().upper()
    if originator not in nations:
        errors["originator_nation"] = f"unknown nation {originator!r}"
    status = (data.get("status") or "draft").strip()
    if status not in STATUSES:
        errors["status"] = f"must be one of {', '.join(STATUSES)}"
    kind = data.get("kind") or "lesson"
    if kind not in KINDS:
        errors["kind"] = f"must be one of {', '.join(KINDS)}"
    try:
        data["observed_on"] = _as_date(data.get("observed_on"))
    except ValueError as exc:
        errors["observed_on"] = str(exc)
    values = normalise_values(data)
    values.setdefault("classification", current_app.config["CLASSIFICATIONS"][0])
    values.setdefault("kind", "lesson")
    values["originator_nation"] = originator
    for key, message in check_lesson(
            values, submitting=status != "draft", known_nations=codes,
            classifications=current_app.config["CLASSIFICATIONS"]).items():
        errors.setdefault(key, message)
    actions: list[dict[str, Any]] | None = None
    if "actions" in data:
        actions = []
        if len(data["actions"]) > ACTIONS_MAX:
            errors["actions"] = f"at most {ACTIONS_MAX} actions"
        for n, raw in enumerate(data["actions"], start=1):
            unknown = set(raw) - set(ACTION_KEYS)
            if unknown:
                errors[f"actions[{n}]"] = f"unknown keys {', '.join(sorted(unknown))}"
                continue
            action = {k: (raw.get(k) or None) if k in ("owner_nation", "due_on")
                      else str(raw.get(k) or "").strip() for k in ACTION_KEYS}
            action["status"] = action["status"] or "open"
            if action["owner_nation"]:
                action["owner_nation"] = str(action["owner_nation"]).upper()
            try:
                action["due_on"] = _as_date(action["due_on"])
            except ValueError as exc:
                errors[f"actions[{n}].due_on"] = str(exc)
                continue
            for key, message in check_action(action, known_nations=nations).items():
                errors.setdefault(f"actions[{n}].{key}", message)
            actions.append(action)
    if status == "action_assigned" and actions is not None and not any(
            a["status"] == "open" for a in actions):
        errors.setdefault("actions", "an action_assigned lesson needs an open action")
    values.pop("originator_nation")
    if errors:
        return None, [LineError(line, k, v) for k, v in errors.items()]
    return CheckedRecord(line, external_id, values, originator, status, actions), []


def read_lines(lines: Iterable[str], field_map: FieldMap | None
               ) -> Iterator[tuple[int, dict[str, Any] | None, LineError | None]]:
    """Yield (line number, mapped record, error) for each non-blank line."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        if len(text.encode("utf-8")) > MAX_LINE_BYTES:
            yield number, None, LineError(number, "(line)", f"longer than {MAX_LINE_BYTES:,} bytes")
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, None, LineError(number, "(line)", f"invalid JSON: {exc.msg}")
            continue
        if not isinstance(record, dict):
            yield number, None, LineError(number, "(line)", "must be a JSON object")
            continue
        yield number, field_map.apply(record) if field_map else record, None


# --- import -----------------------------------------------------------------------------
@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[LineError] = field(default_factory=list)
    stored: bool = False
    # Line number -> created / updated / unchanged, for the upload page's preview.
    outcomes: dict[int, str] = field(default_factory=dict)

    @property
    def rejected_lines(self) -> list[int]:
        return sorted({e.line for e in self.errors})


def _store(record: CheckedRecord, existing: Lesson | None, submitter: User) -> str:
    """Write one checked record; returns created, updated or unchanged."""
    if existing is None:
        public_id = new_public_id()
        lesson = Lesson(public_id=public_id, external_id=record.external_id
                        or f"MUS-{public_id}", author=submitter,
                        originator_nation=record.originator, status=record.status,
                        version=1, title=record.values["title"])
        db.session.add(lesson)
        with db.session.no_autoflush:
            apply_values(lesson, {**record.values, "releasable_to": record.values.get(
                "releasable_to", [])})
        changed = ["(new)"]
        previous_status = None
    else:
        lesson = existing
        previous_status = lesson.status
        changed = []
        with db.session.no_autoflush:
            if lesson.originator_nation != record.originator:
                lesson.originator_nation = record.originator
                changed.append("originator_nation")
            # REL TO is re-applied even when the record omits it: a new originator joins it.
            changed += apply_values(lesson, {"releasable_to": list(lesson.releasable_to),
                                             **record.values})
        if lesson.status != record.status:
            lesson.status = record.status
            changed.append("status")
    if record.actions is not None:
        current = [a.to_contract() for a in lesson.actions]
        wanted = [{**a, "due_on": a["due_on"].isoformat() if a["due_on"] else None}
                  for a in record.actions]
        if current != wanted:
            lesson.actions = [RemedialAction(position=n, **a)
                              for n, a in enumerate(record.actions, start=1)]
            changed.append("actions")
    if existing is not None and not changed:
        return "unchanged"
    if existing is not None:
        lesson.version += 1
    db.session.flush()
    audit.record("imported", actor=submitter, lesson=lesson, from_status=previous_status,
                 to_status=lesson.status, changes=None if existing is None else changed,
                 comment=f"external id {lesson.external_id}")
    search.queue_lesson(lesson)
    return "created" if existing is None else "updated"


def import_lines(lines: Iterable[str], submitter: User, *, field_map: FieldMap | None = None,
                 skip_invalid: bool = False, dry_run: bool = False,
                 own_nation_only: bool = False) -> ImportReport:
    """Import exchange-format lines as ``submitter``; see ``import_records``."""
    return import_records(read_lines(lines, field_map), submitter, skip_invalid=skip_invalid,
                          dry_run=dry_run, own_nation_only=own_nation_only)


def import_records(records: Iterable[tuple[int, dict[str, Any] | None, LineError | None]],
                   submitter: User, *, skip_invalid: bool = False, dry_run: bool = False,
                   own_nation_only: bool = False) -> ImportReport:
    """Import records (from JSON Lines or CSV, already mapped) as ``submitter``; commits
    once.

    Every record is checked before anything is stored. Without ``skip_invalid`` any bad
    record means nothing is stored and every bad one is reported; with it, the good ones
    are stored. A status in the file is taken as is and audited as imported.
    ``dry_run`` does everything but commit (the upload page's preview: exact counts of
    new, updated and unchanged, nothing stored or indexed). ``own_nation_only`` (an
    analyst's upload) refuses records of, or updates to, another nation's lessons.
    """
    report = ImportReport()
    nations = nation_codes()
    codes = known_codes()
    checked: list[CheckedRecord] = []
    seen: dict[str, int] = {}
    for number, record, error in records:
        if error is not None:
            report.errors.append(error)
            continue
        assert record is not None
        result, errors = check_record(record, number, default_nation=submitter.nation_code,
                                      nations=nations, codes=codes)
        if result is not None and own_nation_only and result.originator != \
                submitter.nation_code:
            errors = [LineError(number, "originator_nation",
                                f"you may import lessons of {submitter.nation_code} only")]
            result = None
        if result is not None and result.external_id:
            if result.external_id in seen:
                errors = [LineError(number, "external_id",
                                    f"repeats line {seen[result.external_id]}")]
                result = None
            else:
                seen[result.external_id] = number
        report.errors.extend(errors)
        if result is not None:
            checked.append(result)
    existing = {lesson.external_id: lesson for lesson in db.session.scalars(
        select(Lesson).where(Lesson.external_id.in_(list(seen))))} if seen else {}
    if own_nation_only:
        for record in list(checked):
            current = existing.get(record.external_id or "")
            if current is not None and current.originator_nation != submitter.nation_code:
                # Same words whether or not the submitter could see it: no existence leak.
                report.errors.append(LineError(record.line, "external_id",
                                               "names a lesson you may not update"))
                checked.remove(record)
    report.errors.sort(key=lambda e: e.line)
    report.outcomes = {}
    if report.errors and not skip_invalid and not dry_run:
        return report
    try:
        for record in checked:
            outcome = _store(record, existing.get(record.external_id or ""), submitter)
            setattr(report, outcome, getattr(report, outcome) + 1)
            report.outcomes[record.line] = outcome
        if dry_run:
            db.session.rollback()
            return report
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    report.stored = True
    search.after_commit()
    return report


# --- export -----------------------------------------------------------------------------
def lesson_record(lesson: Lesson) -> dict[str, Any]:
    """One lesson in the exchange format (lists as arrays, dates as YYYY-MM-DD)."""
    record: dict[str, Any] = {}
    for key in RECORD_KEYS:
        if key == "actions":
            record[key] = [a.to_contract() for a in lesson.actions]
        elif key in ("domains", "functions", "nations", "releasable_to"):
            record[key] = sorted(getattr(lesson, key))
        elif key == "tags":
            record[key] = lesson.tags
        elif key == "observed_on":
            record[key] = lesson.observed_on.isoformat() if lesson.observed_on else None
        else:
            record[key] = getattr(lesson, key)
    return record


def export_lessons(viewer: User | None, lesson_ids: list[int] | None = None) -> list[Lesson]:
    """The lessons ``viewer`` may see (every lesson when ``viewer`` is None, an operator's
    export), optionally only ``lesson_ids``, in their given order (else by age)."""
    query = select(Lesson).order_by(Lesson.id)
    if viewer is not None:
        query = query.where(policy.visible_lessons(viewer))
    if lesson_ids is not None:
        query = query.where(Lesson.id.in_(lesson_ids))
    rank = {lesson_id: n for n, lesson_id in enumerate(lesson_ids or [])}
    lessons = list(db.session.scalars(query))
    if lesson_ids is not None:
        lessons.sort(key=lambda lesson: rank[lesson.id])
    return [lesson for lesson in lessons if viewer is None or policy.can_view(viewer, lesson)]


def export_lines(viewer: User | None, lesson_ids: list[int] | None = None) -> Iterator[str]:
    """JSON Lines for ``export_lessons(viewer, lesson_ids)``."""
    for lesson in export_lessons(viewer, lesson_ids):
        yield json_line(lesson)


def json_line(lesson: Lesson) -> str:
    return json.dumps(lesson_record(lesson), ensure_ascii=False) + "\n"


def default_submitter() -> User:
    """The submitter of an import run without ``--as``: the one active admin, the
    operator's account on a single-site install. With none or several, the operator must
    say who (nothing is guessed)."""
    admins = [user for user in db.session.scalars(
        select(User).where(User.active.is_(True)).order_by(User.username))
        if "admin" in user.roles]
    if len(admins) != 1:
        names = ", ".join(user.username for user in admins) or "none"
        raise ValidationFailed({"--as": "say who submits the lessons with --as USERNAME "
                                        f"(active admins: {names})"})
    return admins[0]


def require_user(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None or not user.is_active:
        raise ValidationFailed({"--as": f"no active user {username!r}"})
    return user
