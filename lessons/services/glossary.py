"""Glossary use cases: the admins' editor, the shipped default, and ``current()`` for search.

The glossary lives in the database (``glossary_groups``) so admins edit it in the app, and
expansion happens when a query is parsed, not when lessons are indexed, so an edit never
needs a reindex. Every edit bumps the single ``glossary_state`` revision in its own
transaction; ``current()`` reads that one integer per call and rebuilds its per-process
``Glossary`` only when it moved, so an edit made by any process applies to the next search
in every process without a restart.

Each editing use case checks ``policy.require_admin``, takes the revision row as its
lock (its first write), validates the whole resulting glossary with
``glossary.validate_groups``, writes an audit record and commits once; on any refusal
it rolls back, so nothing (not even the bump) is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from lessons import policy
from lessons.errors import NotFound, ValidationFailed
from lessons.extensions import db
from lessons.models import GlossaryGroup, GlossaryState, User
from lessons.models.base import utcnow
from lessons.models.glossary import STATE_ID
from lessons.policy import UserLike
from lessons.search.glossary import (
    MAX_NOTE_LENGTH,
    Glossary,
    clean_group,
    clean_term,
    describe_group,
    load_default_entries,
    validate_groups,
)
from lessons.services import audit

# How the group being edited is named in validation messages.
THIS_GROUP = "this group"
_CACHE_KEY = "muster.glossary"


# --- reading ---------------------------------------------------------------------------
@dataclass
class GlossaryListing:
    """The admin list page: the groups matching ``query``, and figures for the whole."""

    groups: list[GlossaryGroup]
    query: str
    total_groups: int
    total_terms: int


def _all_groups() -> list[GlossaryGroup]:
    # populate_existing: after the revision lock, rows already in the session's identity
    # map (say, loaded to prefill a form) must be re-read, not trusted.
    return list(db.session.scalars(
        select(GlossaryGroup).order_by(GlossaryGroup.id)
        .execution_options(populate_existing=True)))


def _matches(group: GlossaryGroup, needle: str) -> bool:
    return any(needle in term for term in group.terms) or needle in group.note.lower()


def list_groups(user: UserLike, query: str = "") -> GlossaryListing:
    """Groups whose terms or note contain ``query`` (case-insensitive), sorted by first
    term, with the whole glossary's counts. Raises ``NotAllowed`` for non-admins.

    Filtered in Python: the glossary is at most ``MAX_GROUPS`` rows and JSON substring
    search differs between SQLite and PostgreSQL.
    """
    policy.require_admin(user)
    groups = _all_groups()
    needle = clean_term(query)
    shown = [g for g in groups if _matches(g, needle)] if needle else groups
    shown.sort(key=lambda g: (g.terms[0] if g.terms else "", g.id))
    return GlossaryListing(groups=shown, query=query.strip(), total_groups=len(groups),
                           total_terms=sum(len(g.terms) for g in groups))


def get_group(user: UserLike, group_id: int) -> GlossaryGroup:
    """The group with ``group_id``; raises ``NotAllowed`` for non-admins, ``NotFound``."""
    policy.require_admin(user)
    group = db.session.get(GlossaryGroup, group_id)
    if group is None:
        raise NotFound("No such glossary group; it may have been deleted.")
    return group


# --- the per-process cache that search reads -------------------------------------------
@dataclass(frozen=True)
class _Cached:
    revision: int
    glossary: Glossary


def revision() -> int | None:
    """The glossary's current revision, or ``None`` when the state row is missing."""
    return db.session.scalar(select(GlossaryState.revision).where(GlossaryState.id == STATE_ID))


def current() -> Glossary:
    """The glossary as committed now, for expanding a query. Needs an app context.

    One small query per call (the revision); the ``Glossary`` is rebuilt only when the
    revision differs from the one this app last built from, so another process's edit
    shows on the next call here. The cache lives on the app object (one per process in
    production; a fresh one per test app). The revision is read before the groups: a
    concurrent edit can at worst be cached under the older revision and rebuilt once
    more, never the reverse. Without a state row (a database not built by the
    migrations nor edited through this service) nothing is cached. Commits nothing.
    """
    rev = revision()
    cached: _Cached | None = current_app.extensions.get(_CACHE_KEY)
    if rev is not None and cached is not None and cached.revision == rev:
        return cached.glossary
    glossary = Glossary(db.session.scalars(select(GlossaryGroup.terms)
                                           .order_by(GlossaryGroup.id)))
    if rev is not None:
        # One assignment: concurrent requests see the old or the new entry, never half.
        current_app.extensions[_CACHE_KEY] = _Cached(rev, glossary)
    return glossary


# --- writing ---------------------------------------------------------------------------
def _bump_revision() -> None:
    """Bump the revision as the use case's first write: it tells every process to rebuild
    and serialises concurrent glossary edits (see ``GlossaryState``)."""
    result = db.session.execute(
        update(GlossaryState).where(GlossaryState.id == STATE_ID)
        .values(revision=GlossaryState.revision + 1))
    if result.rowcount:
        return
    try:  # a database made by create_all, or emptied: start the counter
        with db.session.begin_nested():
            db.session.add(GlossaryState(id=STATE_ID, revision=1))
    except IntegrityError:  # another process started it meanwhile
        db.session.execute(
            update(GlossaryState).where(GlossaryState.id == STATE_ID)
            .values(revision=GlossaryState.revision + 1))


def _refuse(errors: dict[str, str]) -> ValidationFailed:
    db.session.rollback()
    return ValidationFailed(errors)


def _checked(terms: Sequence[str], note: str, others: list[GlossaryGroup]) -> list[str]:
    """The cleaned terms, if the glossary made of ``others`` plus this group is valid.

    Problems are those this group brings: the whole glossary is validated with and
    without it and only the new sentences are reported, so a fault already stored
    elsewhere does not block an unrelated edit. Each problem gets its own key
    (``terms``, ``terms.2``, ...) so the form can list them all under the field.
    """
    cleaned = clean_group(terms)
    existing = [g.terms for g in others]
    labels = [describe_group(t) for t in existing]
    before = set(validate_groups(existing, labels=labels))
    problems = [p for p in validate_groups(existing + [cleaned], labels=labels + [THIS_GROUP])
                if p not in before]
    errors = {("terms" if n == 1 else f"terms.{n}"): p for n, p in enumerate(problems, 1)}
    if len(note) > MAX_NOTE_LENGTH:
        errors["note"] = f"At most {MAX_NOTE_LENGTH} characters ({len(note)} given)."
    if errors:
        raise _refuse(errors)
    return cleaned


def _summary(terms: Sequence[str]) -> str:
    return ", ".join(terms)


def create_group(user: User, terms: Sequence[str], note: str = "") -> GlossaryGroup:
    """Add a group of equivalent terms; commits once and applies to the next search.

    Terms are cleaned (``glossary.clean_group``). Raises ``NotAllowed`` for non-admins and
    ``ValidationFailed`` (nothing stored) when a term is already in another group, the
    group has too few or too many terms, a term is too long, or the glossary is full.
    """
    policy.require_admin(user)
    note = note.strip()
    _bump_revision()
    cleaned = _checked(terms, note, _all_groups())
    group = GlossaryGroup(terms=cleaned, note=note, updated_at=utcnow(), updated_by=user)
    db.session.add(group)
    db.session.flush()
    audit.record("glossary_group_created", actor=user,
                 comment=f"Glossary group {group.id}: {_summary(cleaned)}")
    db.session.commit()
    return group


def update_group(user: User, group_id: int, terms: Sequence[str],
                 note: str = "") -> GlossaryGroup:
    """Replace a group's terms and note; commits once (nothing when nothing changed).

    Raises ``NotAllowed``, ``NotFound`` (deleted meanwhile) or ``ValidationFailed`` as
    ``create_group`` does; the group's own current terms never count as a clash.
    """
    policy.require_admin(user)
    note = note.strip()
    _bump_revision()
    groups = _all_groups()
    group = next((g for g in groups if g.id == group_id), None)
    if group is None:
        db.session.rollback()
        raise NotFound("No such glossary group; it may have been deleted.")
    cleaned = _checked(terms, note, [g for g in groups if g.id != group_id])
    changes = [name for name, old, new in (("terms", group.terms, cleaned),
                                           ("note", group.note, note)) if old != new]
    if not changes:
        db.session.rollback()  # leave the revision alone: no process need rebuild
        return group
    comment = f"Glossary group {group.id}: {_summary(group.terms)}"
    if "terms" in changes:
        comment += f" -> {_summary(cleaned)}"
    group.terms, group.note = cleaned, note
    group.updated_at, group.updated_by = utcnow(), user
    audit.record("glossary_group_edited", actor=user, comment=comment, changes=changes)
    db.session.commit()
    return group


def delete_group(user: User, group_id: int) -> None:
    """Delete a group; commits once. The audit record keeps its terms and note.

    Raises ``NotAllowed`` for non-admins and ``NotFound`` if it is already gone.
    """
    policy.require_admin(user)
    _bump_revision()
    group = db.session.scalar(select(GlossaryGroup).where(GlossaryGroup.id == group_id)
                              .execution_options(populate_existing=True))
    if group is None:
        db.session.rollback()
        raise NotFound("No such glossary group; it may have been deleted.")
    comment = f"Glossary group {group.id}: {_summary(group.terms)}"
    if group.note:
        comment += f" (note: {group.note})"
    audit.record("glossary_group_deleted", actor=user, comment=comment)
    db.session.delete(group)
    db.session.commit()


def _insert_defaults(user: User | None) -> int:
    entries = load_default_entries()
    now = utcnow()
    db.session.add_all(GlossaryGroup(terms=e.terms, note=e.note, updated_at=now,
                                     updated_by=user) for e in entries)
    return len(entries)


def reset_to_default(user: User) -> int:
    """Replace the whole glossary by the shipped default; returns its group count.

    Commits once, audited with how many groups were replaced. Raises ``NotAllowed``.
    """
    policy.require_admin(user)
    _bump_revision()
    replaced = db.session.scalar(select(func.count()).select_from(GlossaryGroup))
    db.session.execute(delete(GlossaryGroup))
    loaded = _insert_defaults(user)
    audit.record("glossary_reset", actor=user,
                 comment=f"Replaced {replaced} glossary groups with the {loaded} shipped ones.")
    db.session.commit()
    return loaded


def load_defaults() -> int:
    """Seed the shipped glossary when there is none; returns the groups loaded (0 if the
    glossary already had groups). Commits once when it loads.

    For the demo loader and tests, whose databases come from ``create_all``; the
    migrations seed a migrated database themselves. No user: a set-up step, audited with
    no actor as ``flask users create`` is.
    """
    _bump_revision()
    if db.session.scalar(select(func.count()).select_from(GlossaryGroup)):
        db.session.rollback()
        return 0
    loaded = _insert_defaults(None)
    audit.record("glossary_loaded", actor=None,
                 comment=f"Loaded the {loaded} shipped glossary groups.")
    db.session.commit()
    return loaded
