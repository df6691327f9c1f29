"""The lessons exchange format: JSON Lines with the contract keys (docs/ARCHITECTURE.md, section 3).

Import checks every line against the one rule set before storing anything; by default a
file with any bad line stores nothing (all or nothing), ``skip_invalid`` stores the good
lines. Re-importing an ``external_id`` updates that lesson as a new version. Export then
import is lossless for every contract field.

An import is the importer's own work under the access policy (``import_records``): it
updates only lessons they may edit and moves a status only as they could on the lesson
page. Only an administrator's migration takes statuses and originators as they are.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask import current_app
from sqlalchemy import select

from lessons import policy, search
from lessons.errors import NotAllowed, ValidationFailed
from lessons.extensions import db
from lessons.models import Exercise, Lesson, RemedialAction, User
from lessons.models.base import new_public_id
from lessons.rules import (
    ACTIONS_MAX,
    KINDS,
    STATUS_LABELS,
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
from lessons.services.nations import expand, known_codes, nation_codes

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
# A record is an object holding arrays of actions, objects of strings: three levels. Far
# deeper values only exhaust the recursion of the parser and of every later check.
MAX_NESTING = 10
NESTED_TOO_DEEPLY = f"nested too deeply (at most {MAX_NESTING} levels of arrays and objects)"


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


def nesting(value: Any, stop: int = MAX_NESTING + 1) -> int:
    """How deeply arrays and objects nest in ``value`` (0 for a string or number),
    counted without recursion and no further than ``stop``."""
    deepest, level = 0, [(value, 0)]
    while level:
        item, depth = level.pop()
        if isinstance(item, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            if depth >= stop:
                return deepest
            level.extend((child, depth) for child in (
                item.values() if isinstance(item, dict) else item))
    return deepest


def loads_bounded(text: str) -> Any:
    """``json.loads`` that raises ``ValueError`` for a value nested more than
    ``MAX_NESTING`` deep (the parser itself fails with ``RecursionError`` near 1,000)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(NESTED_TOO_DEEPLY) from None
    if nesting(value) > MAX_NESTING:
        raise ValueError(NESTED_TOO_DEEPLY)
    return value


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
            record = loads_bounded(text)
        except json.JSONDecodeError as exc:
            yield number, None, LineError(number, "(line)", f"invalid JSON: {exc.msg}")
            continue
        except ValueError as exc:
            yield number, None, LineError(number, "(line)", str(exc))
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


# ``MUS-<public id>`` ids are minted by Muster for lessons born in it; no import but a
# migration creates a lesson under one.
MINTED_PREFIX = "MUS-"
# Moves that need a written note (a return comment, a reason, evidence): a file carries
# none, so an import never makes them.
NOTED_NEEDS = frozenset({"comment", "reason", "evidence"})


def own_namespace(user: User) -> str:
    """The prefix of the external ids ``user`` may give new lessons (``au.analyst:``).

    Any other id that names no lesson the importer may edit is refused, whether or not a
    lesson holds it: an id held by a lesson they cannot see must answer exactly like a
    free one, and only ids no one else can have taken (usernames hold no ``:``) can be
    promised free."""
    return f"{user.username}:"


def refused_id(user: User) -> str:
    """The one refusal for an external id the importer may not use (see own_namespace)."""
    return (f"names no lesson you may update (a new lesson's external_id must be empty or "
            f"begin with {own_namespace(user)})")


@dataclass
class Prospect:
    """A lesson as the policy reads it (status, author, originator, REL TO): the status
    walk tries moves on it without touching the stored lesson."""

    status: str
    author_id: int | None
    originator_nation: str
    releasable_to: list[str]


def status_walk(user: User, prospect: Prospect, to: str) -> list[str] | None:
    """The shortest chain of statuses from ``prospect.status`` to ``to``, each a move
    ``user`` could make on the lesson page (``policy.allowed_transitions``) and none
    needing a written note; None when there is none."""
    start = prospect.status
    walks = {start: [start]}
    queue = deque([start])
    try:
        while queue and to not in walks:
            prospect.status = queue.popleft()
            for move in policy.allowed_transitions(user, prospect):
                if move.needs not in NOTED_NEEDS and move.to not in walks:
                    walks[move.to] = [*walks[prospect.status], move.to]
                    queue.append(move.to)
    finally:
        prospect.status = start
    return walks.get(to)


def _refuse_walk(start: str, to: str, reason: str) -> str:
    return f"{STATUS_LABELS[start].lower()} to {STATUS_LABELS[to].lower()} {reason}"


def _policy_errors(record: CheckedRecord, existing: Lesson | None, importer: User
                   ) -> tuple[list[str] | None, list[LineError]]:
    """The status walk of one record under the importer's own rights, or why it is
    refused. Same words for a hidden lesson and a free id: no existence leak."""
    if record.originator != importer.nation_code:
        return None, [LineError(record.line, "originator_nation",
                                f"you may import lessons of {importer.nation_code} only")]
    if existing is not None:
        usable = policy.can_edit(importer, existing)
    else:
        usable = not record.external_id or record.external_id.startswith(
            own_namespace(importer))
    if not usable:
        return None, [LineError(record.line, "external_id", refused_id(importer))]
    if "releasable_to" in record.values:
        release = set(expand(record.values["releasable_to"] or []))
    else:
        release = set(existing.releasable_to) if existing is not None else set()
    prospect = Prospect(status=existing.status if existing is not None else "draft",
                        author_id=existing.author_id if existing is not None else importer.id,
                        originator_nation=record.originator,
                        releasable_to=sorted(release | {record.originator}))
    walk = status_walk(importer, prospect, record.status)
    if walk is None:
        return None, [LineError(record.line, "status", _refuse_walk(
            prospect.status, record.status,
            "is not a move you may make by import (only moves you could make on the lesson "
            "page, and none that needs a comment, a reason or evidence)"))]
    actions = record.actions if record.actions is not None else [
        a.to_contract() for a in existing.actions] if existing is not None else []
    if record.status == "action_assigned" and len(walk) > 1 and not any(
            a["status"] == "open" for a in actions):
        return None, [LineError(record.line, "status", _refuse_walk(
            prospect.status, record.status, "needs an open action in the line's actions"))]
    return walk, []


def _store(record: CheckedRecord, existing: Lesson | None, submitter: User,
           walk: list[str] | None) -> str:
    """Write one checked record; returns created, updated or unchanged. ``walk`` is the
    status chain the importer may make, None for a migration (status taken as is)."""
    if existing is None:
        public_id = new_public_id()
        lesson = Lesson(public_id=public_id, external_id=record.external_id
                        or f"{MINTED_PREFIX}{public_id}", author=submitter,
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
    comment = f"external id {lesson.external_id}"
    if walk is None:
        comment = f"migration (status and originator taken as is); {comment}"
    elif len(walk) > 1:
        comment += "; status " + " → ".join(walk)
    audit.record("imported", actor=submitter, lesson=lesson, from_status=previous_status,
                 to_status=lesson.status, changes=None if existing is None else changed,
                 comment=comment)
    search.queue_lesson(lesson)
    return "created" if existing is None else "updated"


def import_lines(lines: Iterable[str], submitter: User, *, field_map: FieldMap | None = None,
                 skip_invalid: bool = False, dry_run: bool = False,
                 migration: bool = False) -> ImportReport:
    """Import exchange-format lines as ``submitter``; see ``import_records``."""
    return import_records(read_lines(lines, field_map), submitter, skip_invalid=skip_invalid,
                          dry_run=dry_run, migration=migration)


def check_importer(submitter: User, *, migration: bool) -> None:
    """Raise ``NotAllowed`` unless ``submitter`` may import this way: an analyst their
    nation's lessons, an administrator a migration."""
    if migration and not policy.can_admin(submitter):
        raise NotAllowed("Only an administrator imports a migration.")
    if not migration and not policy.can_import_lessons(submitter):
        raise NotAllowed("Only analysts import lessons (an administrator may import a "
                         "migration).")


def _audit_import(submitter: User, report: ImportReport, *, migration: bool,
                  source: str) -> None:
    """One ``import`` record per run, stored or refused, beside the per-lesson
    ``imported`` records: who ran it, from where (upload or command line), with what
    result. Not committed here: the run's own commit (or the refusal's) carries it."""
    where = source or ("command line" if audit.client_address() is None else "upload")
    outcome = "stored" if report.stored else "refused, nothing stored"
    comment = (f"{where}: {outcome}; {report.created} created, {report.updated} updated, "
               f"{report.unchanged} unchanged, {len(report.rejected_lines)} line(s) rejected")
    if migration:
        comment += "; as migration"
    audit.record("import", actor=submitter, comment=comment[:1000])


def import_records(records: Iterable[tuple[int, dict[str, Any] | None, LineError | None]],
                   submitter: User, *, skip_invalid: bool = False, dry_run: bool = False,
                   migration: bool = False, source: str = "") -> ImportReport:
    """Import records (from JSON Lines or CSV, already mapped) as ``submitter``; commits
    once.

    Every record is checked before anything is stored. Without ``skip_invalid`` any bad
    record means nothing is stored and every bad one is reported; with it, the good ones
    are stored. ``dry_run`` does everything but commit (the upload page's preview: exact
    counts of new, updated and unchanged, nothing stored or indexed).

    An import is the submitter's own work (web and CLI alike): records of their nation
    only; an ``external_id`` must name a lesson they may edit (``policy.can_edit``) or be
    new in their own namespace (``own_namespace``), with one refusal for everything else;
    the status must be reachable from the current one (``draft`` for a new lesson) by
    moves they could make on the lesson page (``status_walk``). A ``migration`` (an
    administrator's only) takes statuses and originators as they are, and is audited as
    one. Raises ``NotAllowed`` when the submitter may not import this way.

    Every run but a dry run leaves one ``import`` audit record (``source`` names the file
    or channel), a refused one included: who tried to load what is on the record either way.
    """
    check_importer(submitter, migration=migration)
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
    walks: dict[int, list[str] | None] = {}
    for record in list(checked):
        if migration:
            walks[record.line] = None
            continue
        walk, errors = _policy_errors(record, existing.get(record.external_id or ""),
                                      submitter)
        if errors:
            report.errors.extend(errors)
            checked.remove(record)
        walks[record.line] = walk
    report.errors.sort(key=lambda e: e.line)
    report.outcomes = {}
    if report.errors and not skip_invalid and not dry_run:
        _audit_import(submitter, report, migration=migration, source=source)
        db.session.commit()
        return report
    try:
        for record in checked:
            outcome = _store(record, existing.get(record.external_id or ""), submitter,
                             walks[record.line])
            setattr(report, outcome, getattr(report, outcome) + 1)
            report.outcomes[record.line] = outcome
        if dry_run:
            db.session.rollback()
            return report
        report.stored = True
        _audit_import(submitter, report, migration=migration, source=source)
        db.session.commit()
    except BaseException:
        report.stored = False
        db.session.rollback()
        raise
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


def export_lessons(viewer: User | None, lesson_ids: list[int] | None = None, *,
                   what: str = "", fmt: str = "") -> list[Lesson]:
    """The lessons ``viewer`` may see (every lesson when ``viewer`` is None, an operator's
    export), optionally only ``lesson_ids``, in their given order (else by age).

    Every export is audited here, so no route or command can export unrecorded: one
    ``export`` record naming ``what`` was exported, how many lessons and ``fmt``, with
    the client address (none from the command line). Committed before the first byte
    goes out, so a download abandoned halfway is on the record too.
    """
    query = select(Lesson).order_by(Lesson.id)
    if viewer is not None:
        query = query.where(policy.visible_lessons(viewer))
    if lesson_ids is not None:
        query = query.where(Lesson.id.in_(lesson_ids))
    rank = {lesson_id: n for n, lesson_id in enumerate(lesson_ids or [])}
    lessons = list(db.session.scalars(query))
    if lesson_ids is not None:
        lessons.sort(key=lambda lesson: rank[lesson.id])
    lessons = [lesson for lesson in lessons if viewer is None or policy.can_view(viewer, lesson)]
    if not what:
        what = "lessons, command line" if audit.client_address() is None else "lessons"
        what += f" (as {viewer.username})" if viewer is not None else " (every lesson)"
    record_export(viewer, what, len(lessons), fmt)
    return lessons


def record_export(actor: User | None, what: str, count: int, fmt: str = "", *,
                  exercise: Exercise | None = None, unit: str = "lesson") -> None:
    """Audit one export and commit it: who took ``count`` lessons (``what``: search
    results, a packet, the audit trail) out of Muster, in which format, from where. For
    exports that have no other commit; the record names no lesson, so it reveals none."""
    comment = f"{what}: {count:,} {unit}{'' if count == 1 else 's'}"
    if fmt:
        comment += f", {fmt}"
    audit.record("export", actor=actor, exercise=exercise, comment=comment[:1000])
    db.session.commit()


def export_lines(viewer: User | None, lesson_ids: list[int] | None = None, *,
                 what: str = "", fmt: str = "jsonl") -> Iterator[str]:
    """JSON Lines for ``export_lessons(viewer, lesson_ids)`` (audited there)."""
    for lesson in export_lessons(viewer, lesson_ids, what=what, fmt=fmt):
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
