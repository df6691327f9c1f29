"""The lessons exchange format: JSON Lines with the contract keys (docs/ARCHITECTURE.md, section 3).

Import checks every line against the one rule set before storing anything; by default a
file with any bad line stores nothing (all or nothing), ``skip_invalid`` stores the good
lines. Re-importing an ``external_id`` updates that lesson as a new version. Export then
import is lossless for every contract field. A bulk load (the command line) stores the
checked file in batches, each committed with its index changes on its own, so lessons
are searchable as batches land and a failure midway keeps whole batches only.

An import is the importer's own work under the access policy (``import_records``): it
updates only lessons they may edit and moves a status only as they could on the lesson
page. Only an administrator's migration takes statuses and originators as they are.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, NoReturn

from flask import current_app
from sqlalchemy import select

from lessons import policy, rules, search
from lessons.errors import ConcurrentChange, NotAllowed, ValidationFailed
from lessons.extensions import db
from lessons.models import Exercise, Lesson, RemedialAction, Tag, User
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
    _tag_objects,
    apply_values,
    normalise_values,
)
from lessons.services.nations import all_groups, known_codes, nation_codes
from lessons.workflow import TRANSITIONS

log = logging.getLogger(__name__)

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
    # Transactions committed with lessons in them (a batched import's batches).
    batches: int = 0
    # Lines stored that named no external_id: a re-run of the file creates them again.
    without_external_id: int = 0

    @property
    def rejected_lines(self) -> list[int]:
        return sorted({e.line for e in self.errors})

    @property
    def lessons_stored(self) -> int:
        return self.created + self.updated + self.unchanged


class ImportStopped(Exception):
    """A batched import that failed midway (``import_records`` with ``batch_size``).

    Each batch commits its lessons, their audit records and their index queue rows in one
    transaction, so the batches before the failing one stay stored and searchable and
    the failing one stored nothing. ``report`` counts what was stored; ``lines`` is the
    failing batch's first and last line; ``reason`` says what went wrong."""

    def __init__(self, report: ImportReport, lines: tuple[int, int], reason: str) -> None:
        super().__init__(f"lines {lines[0]}-{lines[1]}: {reason}")
        self.report = report
        self.lines = lines
        self.reason = reason


# ``MUS-<public id>`` ids are minted by Muster for lessons born in it; no import but a
# migration creates a lesson under one.
MINTED_PREFIX = "MUS-"
# Moves that need a written note (a return comment, a reason, evidence): a file carries
# none, so an import never makes them.
NOTED_NEEDS = frozenset({"comment", "reason", "evidence"})
# Lessons read per query while checking a file against what is stored (bounded memory,
# and well under SQLite's limit of bound parameters).
LOOKUP_CHUNK = 500
# A batched import's default and largest batch (the command line's --batch-size): big
# enough that per-transaction costs vanish and that each batch's index segment is not a
# "small" one the index merges again and again (a 20,000-lesson load spent half its time
# re-merging segments of 500), small enough that a batch's lessons and index work stay a
# few megabytes and seconds, and a failure loses one batch.
BATCH_SIZE = 1000
BATCH_SIZE_MAX = 5000


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
    origin_instance: str | None = None  # received from another instance: read-only here


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


Groups = dict[str, list[str]]


def _groups() -> Groups:
    """Every nation group's members, read once per import (``nations.expand`` reads
    them once per call, i.e. once per lesson)."""
    return {group.code: list(group.member_codes) for group in all_groups()}


def _expand(codes: Iterable[str], groups: Groups) -> list[str]:
    """``nations.expand`` with the groups already read."""
    result: set[str] = set()
    for code in codes:
        result.update(groups.get(code, [code]))
    return sorted(result)


def _policy_errors(record: CheckedRecord, existing: Lesson | None, importer: User,
                   groups: Groups) -> tuple[list[str] | None, list[LineError]]:
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
        release = set(_expand(record.values["releasable_to"] or [], groups))
    else:
        release = set(existing.releasable_to) if existing is not None else set()
    prospect = Prospect(status=existing.status if existing is not None else "draft",
                        author_id=existing.author_id if existing is not None else importer.id,
                        originator_nation=record.originator,
                        releasable_to=sorted(release | {record.originator}),
                        origin_instance=existing.origin_instance if existing is not None else None)
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


@dataclass
class Planned:
    """A checked record the importer may store: its status walk (None for a migration)
    and the version of the lesson it updates as it was checked (None: a new lesson)."""

    record: CheckedRecord
    walk: list[str] | None
    version: int | None


@dataclass
class _Stored:
    """One lesson written in the current batch, waiting for its flush to be audited."""

    lesson: Lesson
    new: bool
    changed: list[str]
    previous_status: str | None
    walk: list[str] | None


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _lessons_named(external_ids: list[str]) -> dict[str, Lesson]:
    """The stored lessons holding ``external_ids``, read afresh (with their lists)."""
    if not external_ids:
        return {}
    return {lesson.external_id: lesson for lesson in db.session.scalars(
        select(Lesson).where(Lesson.external_id.in_(external_ids))
        .execution_options(populate_existing=True))}


def _plan(checked: list[CheckedRecord], importer: User, report: ImportReport, *,
          migration: bool, groups: Groups) -> list[Planned]:
    """Check every record against what is stored (the policy, unless a migration) and
    note each updated lesson's version; refused records go to ``report.errors``. Reads
    ``LOOKUP_CHUNK`` lessons at a time and keeps none, so memory stays flat."""
    planned: list[Planned] = []
    for chunk in _chunks(checked, LOOKUP_CHUNK):
        named = [r.external_id for r in chunk if r.external_id]
        if migration:
            stored = {external_id: (version, origin) for external_id, version, origin in
                      db.session.execute(
                          select(Lesson.external_id, Lesson.version, Lesson.origin_instance)
                          .where(Lesson.external_id.in_(named))).all()} if named else {}
            for record in chunk:
                version, origin = stored.get(record.external_id or "", (None, None))
                if origin is not None or (record.external_id or "").startswith(
                        rules.FEDERATED_ID_PREFIX):
                    # Received lessons are kept by the instance that sent them; their
                    # ids are that instance's (lessons.federation).
                    report.errors.append(LineError(
                        record.line, "external_id",
                        f"ids beginning {rules.FEDERATED_ID_PREFIX} name lessons received "
                        f"from another Muster instance, which only it changes"))
                else:
                    planned.append(Planned(record, None, version))
            continue
        existing = _lessons_named(named)
        for record in chunk:
            lesson = existing.get(record.external_id or "")
            walk, errors = _policy_errors(record, lesson, importer, groups)
            if errors:
                report.errors.extend(errors)
            else:
                planned.append(Planned(record, walk,
                                       lesson.version if lesson is not None else None))
    return planned


def _write(plan: Planned, existing: Lesson | None, submitter: User, tags: dict[str, Tag],
           groups: Groups) -> _Stored | None:
    """Write one planned record onto a new or the existing lesson, without flushing;
    None when it changes nothing. ``tags`` holds every tag the batch names."""
    record = plan.record
    values = dict(record.values)
    # REL TO and tags are applied here, not by ``apply_values``: it reads the groups and
    # the tags from the database for every lesson; this reads them once per batch.
    release = values.pop("releasable_to", None)
    tag_names = values.pop("tags", None)
    if existing is None:
        public_id = new_public_id()
        lesson = Lesson(public_id=public_id, external_id=record.external_id
                        or f"{MINTED_PREFIX}{public_id}", author=submitter,
                        originator_nation=record.originator, status=record.status,
                        version=1, title=record.values["title"])
        db.session.add(lesson)
        changed = apply_values(lesson, values)
        previous_status = None
    else:
        lesson = existing
        previous_status = lesson.status
        changed = []
        if lesson.originator_nation != record.originator:
            lesson.originator_nation = record.originator
            changed.append("originator_nation")
        changed += apply_values(lesson, values)
        # REL TO is re-applied even when the record omits it: a new originator joins it.
        if release is None:
            release = list(lesson.releasable_to)
    wanted = sorted(set(_expand(release or [], groups)) | {lesson.originator_nation})
    if sorted(lesson.releasable_to) != wanted:
        lesson.releasable_to = wanted
        changed.append("releasable_to")
    if tag_names is not None and lesson.tags != sorted(tag_names):
        lesson.tag_objects = [tags[name] for name in tag_names]
        changed.append("tags")
    if existing is not None and lesson.status != record.status:
        lesson.status = record.status
        changed.append("status")
    if record.actions is not None:
        current = [a.to_contract() for a in lesson.actions]
        wanted_actions = [{**a, "due_on": a["due_on"].isoformat() if a["due_on"] else None}
                          for a in record.actions]
        if current != wanted_actions:
            lesson.actions = [RemedialAction(position=n, **a)
                              for n, a in enumerate(record.actions, start=1)]
            changed.append("actions")
    if existing is not None and not changed:
        return None
    if existing is not None:
        lesson.version += 1
    return _Stored(lesson, existing is None, changed, previous_status, plan.walk)


def _audit_lesson(stored: _Stored, submitter: User) -> None:
    """The ``imported`` record of one lesson (after the flush that gave it its id)."""
    lesson = stored.lesson
    comment = f"external id {lesson.external_id}"
    if stored.walk is None:
        comment = f"migration (status and originator taken as is); {comment}"
    elif len(stored.walk) > 1:
        comment += "; status " + " → ".join(stored.walk)
        if any(TRANSITIONS[to].separated for to in stored.walk[1:]):
            flag = policy.self_review_flag(submitter, lesson)
            comment += f" ({flag})" if flag else ""
    audit.record("imported", actor=submitter, lesson=lesson,
                 from_status=stored.previous_status, to_status=lesson.status,
                 changes=None if stored.new else stored.changed, comment=comment)


def _store_batch(batch: list[Planned], submitter: User, groups: Groups) -> dict[int, str]:
    """Write one batch of planned records into the session (not committed): lessons,
    their ``imported`` audit records and their index queue rows. Returns each line's
    outcome (created, updated, unchanged).

    Per batch, not per lesson: one read of the lessons updated, one of the tags named,
    one flush. Raises ``ConcurrentChange`` when a lesson changed (or appeared, or went)
    since the file was checked: its checks no longer hold."""
    existing = _lessons_named([p.record.external_id for p in batch if p.record.external_id])
    for plan in batch:
        lesson = existing.get(plan.record.external_id or "")
        now = lesson.version if lesson is not None else None
        if now != plan.version:
            raise ConcurrentChange(
                f"Line {plan.record.line}: lesson {plan.record.external_id} was "
                f"{'changed' if now and plan.version else 'stored or deleted'} by someone "
                "else while the file was being imported.")
    names = sorted({name for p in batch for name in p.record.values.get("tags") or []})
    tags = dict(zip(names, _tag_objects(names), strict=True)) if names else {}
    outcomes: dict[int, str] = {}
    written: list[_Stored] = []
    with db.session.no_autoflush:
        for plan in batch:
            stored = _write(plan, existing.get(plan.record.external_id or ""), submitter,
                            tags, groups)
            if stored is None:
                outcomes[plan.record.line] = "unchanged"
            else:
                outcomes[plan.record.line] = "created" if stored.new else "updated"
                written.append(stored)
    db.session.flush()
    for stored in written:
        _audit_lesson(stored, submitter)
        search.queue_lesson(stored.lesson)
    return outcomes


def import_lines(lines: Iterable[str], submitter: User, *, field_map: FieldMap | None = None,
                 skip_invalid: bool = False, dry_run: bool = False,
                 migration: bool = False, batch_size: int | None = None) -> ImportReport:
    """Import exchange-format lines as ``submitter``; see ``import_records``."""
    return import_records(read_lines(lines, field_map), submitter, skip_invalid=skip_invalid,
                          dry_run=dry_run, migration=migration, batch_size=batch_size)


def check_importer(submitter: User, *, migration: bool) -> None:
    """Raise ``NotAllowed`` unless ``submitter`` may import this way: an analyst their
    nation's lessons, an administrator a migration."""
    if migration and not policy.can_admin(submitter):
        raise NotAllowed("Only an administrator imports a migration.")
    if not migration and not policy.can_import_lessons(submitter):
        raise NotAllowed("Only analysts import lessons (an administrator may import a "
                         "migration).")


def _audit_import(submitter: User, report: ImportReport, *, migration: bool,
                  source: str, stopped: str = "") -> None:
    """One ``import`` record per run, stored, refused or stopped midway, beside the
    per-lesson ``imported`` records: who ran it, from where (upload or command line),
    with what result. Not committed here: the run's own commit (its last batch's, or the
    refusal's) carries it; a run stopped midway commits it on its own, saying which
    batches stayed."""
    where = source or ("command line" if audit.client_address() is None else "upload")
    if stopped:
        outcome = (f"stopped midway, {report.batches} batch(es) stored, the rest not: "
                   f"{stopped}")
    else:
        outcome = "stored" if report.stored else "refused, nothing stored"
    comment = (f"{where}: {outcome}; {report.created} created, {report.updated} updated, "
               f"{report.unchanged} unchanged, {len(report.rejected_lines)} line(s) rejected")
    if migration:
        comment += "; as migration"
    audit.record("import", actor=submitter, comment=comment[:1000])


def _check_lines(records: Iterable[tuple[int, dict[str, Any] | None, LineError | None]],
                 submitter: User, report: ImportReport) -> list[CheckedRecord]:
    """Every record checked against the rule set (no database but the nation codes);
    bad ones go to ``report.errors``."""
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
    return checked


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return getattr(exc, "message", "") or str(exc) or type(exc).__name__


def import_records(records: Iterable[tuple[int, dict[str, Any] | None, LineError | None]],
                   submitter: User, *, skip_invalid: bool = False, dry_run: bool = False,
                   migration: bool = False, source: str = "", batch_size: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Import records (from JSON Lines or CSV, already mapped) as ``submitter``.

    Every record is checked before anything is stored. Without ``skip_invalid`` any bad
    record means nothing is stored and every bad one is reported; with it, the good ones
    are stored. ``dry_run`` does everything but commit (the upload page's preview: exact
    counts of new, updated and unchanged, nothing stored or indexed).

    Without ``batch_size`` the import commits once (an upload: size-limited). With it
    (the command line's bulk loads), the checked records are stored ``batch_size`` at a
    time, each batch committed with its lessons' audit records and index queue rows and
    then applied to the index (``search.after_commit``): lessons become searchable as
    batches land, and a crash loses at most the batch in flight, whole. A failure
    midway rolls that batch back, commits an ``import`` record saying what stayed, and
    raises ``ImportStopped``. ``progress(done, total)`` is told of each committed batch.

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
    groups = _groups()
    planned = _plan(_check_lines(records, submitter, report), submitter, report,
                    migration=migration, groups=groups)
    report.errors.sort(key=lambda e: e.line)
    if report.errors and not skip_invalid and not dry_run:
        _audit_import(submitter, report, migration=migration, source=source)
        db.session.commit()
        return report
    batched = batch_size is not None and not dry_run
    batches = list(_chunks(planned, batch_size if batched else max(len(planned), 1))) or [[]]
    if len(batches) < 2:
        return _store_batches(batches, report, submitter, groups, dry_run=dry_run,
                              batched=batched, migration=migration, source=source,
                              progress=progress)
    # Indexing a batch costs about four times storing it: a process of its own indexes
    # each batch while the next one is stored.
    with search.batch(), search.applied_alongside():
        return _store_batches(batches, report, submitter, groups, dry_run=dry_run,
                              batched=batched, migration=migration, source=source,
                              progress=progress)


def _store_batches(batches: list[list[Planned]], report: ImportReport, submitter: User,
                   groups: Groups, *, dry_run: bool, batched: bool, migration: bool,
                   source: str, progress: Callable[[int, int], None] | None
                   ) -> ImportReport:
    total = sum(len(batch) for batch in batches)
    done = 0
    for number, batch in enumerate(batches, start=1):
        try:
            landed = _tallied(report, _store_batch(batch, submitter, groups), batch)
            if dry_run:
                db.session.rollback()
                return landed
            if number == len(batches):
                landed.stored = True
                _audit_import(submitter, landed, migration=migration, source=source)
            db.session.commit()
        except (Exception, KeyboardInterrupt) as exc:
            db.session.rollback()
            if not batched:
                raise
            report.stored = report.batches > 0
            _stop(report, exc, batch, submitter, migration=migration, source=source)
        report = landed
        report.batches += 1
        search.after_commit()
        done += len(batch)
        if progress is not None:
            progress(done, total)
    return report


def _tallied(report: ImportReport, outcomes: dict[int, str],
             batch: list[Planned]) -> ImportReport:
    """The report with one more batch's outcomes counted (a copy: until the batch is
    committed, the report must still say only what was)."""
    landed = replace(report, outcomes=dict(report.outcomes))
    for line, outcome in outcomes.items():
        setattr(landed, outcome, getattr(landed, outcome) + 1)
        landed.outcomes[line] = outcome
    landed.without_external_id += sum(1 for p in batch if not p.record.external_id)
    return landed


def _stop(report: ImportReport, exc: BaseException, batch: list[Planned], submitter: User,
          *, migration: bool, source: str) -> NoReturn:
    """A batch failed: record what stayed and raise ``ImportStopped`` (from ``exc``)."""
    lines = (batch[0].record.line, batch[-1].record.line) if batch else (0, 0)
    reason = _reason(exc)
    try:
        _audit_import(submitter, report, migration=migration, source=source,
                      stopped=f"lines {lines[0]}-{lines[1]}: {reason}")
        db.session.commit()
    except Exception:  # noqa: BLE001 - the database itself failed; say what we know
        db.session.rollback()
        log.exception("the import record of an import stopped midway was not stored")
    raise ImportStopped(report, lines, reason) from exc


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
