"""What a received bundle does here: checked whole before anything is stored, then
applied in one transaction.

Refused, with nothing applied (and the refusal audited): a file that is not a bundle,
a bundle for another instance, from an unregistered sender or with another key, altered
after signing, already applied (a replay: its sequence number is not above the last
one applied) or ahead of a missing one (a gap, named). Applying is idempotent: a record
of a version already held changes nothing.

A received lesson is stored read-only (``policy.is_foreign``) with its origin, marking
and REL TO as sent; this instance's own policy then decides who sees it, and it is
queued for search like any lesson. A revocation withdraws it, which hides it from
everyone here. Its local author is an inactive account named for the peer
(``peer:NAME``), which nobody can log in as.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from lessons import policy, search
from lessons.extensions import db
from lessons.federation import bundles, identity, outbound, peers, returns
from lessons.federation.identity import FederationError
from lessons.models import Lesson, Peer, PeerLesson, RemedialAction, User
from lessons.models.base import new_public_id, utcnow
from lessons.models.user import PEER_ACCOUNT_PREFIX
from lessons.rules import FEDERATED_ID_PREFIX, NATION_CODE
from lessons.services import audit
from lessons.services.exchange import check_record
from lessons.services.lessons import apply_values
from lessons.services.nations import known_codes, nation_codes

ORIGIN_ID_MAX = 64


@dataclass
class Applied:
    peer: str
    kind: str
    sequence: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    revoked: int = 0
    # Outcomes and release requests about our lessons, and decisions on ours
    # (``returns``); records about something the sender may not see are skipped.
    received: int = 0
    settled: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.kind == "ack":
            return f"acknowledgement from {self.peer} of bundle {self.sequence} recorded"
        text = (f"bundle {self.sequence} from {self.peer} applied: {self.created} new, "
                f"{self.updated} updated, {self.unchanged} unchanged, {self.revoked} revoked")
        if self.received or self.settled or self.skipped:
            text += (f"; {self.received} outcome(s) or request(s) received, {self.settled} "
                     f"decision(s) settled, {self.skipped} skipped")
        return text


@dataclass(frozen=True)
class _Checked:
    kind: str  # lesson | revocation | one of returns.KINDS
    origin_id: str
    version: int = 0
    record: Any = None  # exchange.CheckedRecord for lessons, returns.Returned for returns


def _refuse(message: str, peer: Peer | None, source: str) -> FederationError:
    """Audit a refusal (committed on its own: nothing else is) and return the error."""
    db.session.rollback()
    if peer is not None:
        peer = db.session.get(Peer, peer.id)
        if peer is not None:
            peer.last_error = message[:2000]
    audit.record("federation_bundle_refused", actor=None,
                 subject=peer.name if peer is not None else None,
                 comment=f"{source}: {message}"[:1000])
    db.session.commit()
    return FederationError(message)


def _check_records(bundle: bundles.Bundle, sender: str, own_name: str) -> list[_Checked]:
    """Every record checked against the one rule set before anything is stored."""
    nations, codes = nation_codes(), known_codes()
    checked: list[_Checked] = []
    for number, raw in enumerate(bundle.records(), start=1):
        if raw.get("type") in returns.KINDS:
            checked.append(_Checked(raw["type"], "",
                                    record=returns.check(raw, number, sender, own_name)))
            continue
        origin = raw.get("origin")
        if not isinstance(origin, dict) or origin.get("instance") != sender:
            raise FederationError(f"Record {number}: its origin is not the sender {sender} "
                                  "(a peer speaks only for its own lessons).")
        origin_id = origin.get("id")
        if not isinstance(origin_id, str) or not 0 < len(origin_id) <= ORIGIN_ID_MAX:
            raise FederationError(f"Record {number}: its origin id is missing or too long.")
        kind = raw.get("type")
        if kind == "revocation":
            checked.append(_Checked("revocation", origin_id))
            continue
        if kind != "lesson" or not isinstance(raw.get("lesson"), dict):
            raise FederationError(f"Record {number}: unknown type {kind!r}.")
        version = origin.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise FederationError(f"Record {number}: its origin version is not a number.")
        lesson = dict(raw["lesson"])
        # Nations this instance does not know cannot see anything here anyway.
        for key in ("releasable_to", "nations"):
            if isinstance(lesson.get(key), list):
                lesson[key] = [c for c in lesson[key] if isinstance(c, str) and c in nations]
        record, errors = check_record(lesson, number, default_nation="", nations=nations,
                                      codes=codes)
        if errors:
            raise FederationError("; ".join(f"record {e.line}: {e.field}: {e.reason}"
                                            for e in errors[:5]))
        if record.status not in policy.SHARED_STATUSES:
            raise FederationError(f"Record {number}: a lesson in status {record.status} is "
                                  "not one a peer may send.")
        checked.append(_Checked("lesson", origin_id, version, record))
    return checked


def _author(peer: Peer, nation: str) -> User:
    """The inactive local account standing as author of ``peer``'s lessons."""
    username = f"{PEER_ACCOUNT_PREFIX}{peer.name}".lower()[:64]
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, display_name=f"{peer.name} (federation peer)"[:120],
                    nation_code=nation, password_hash="!federation: no log-in",
                    active=False)
        db.session.add(user)
        db.session.flush()
    return user


def _existing(sender: str, origin_ids: list[str]) -> dict[str, Lesson]:
    if not origin_ids:
        return {}
    return {lesson.origin_id: lesson for lesson in db.session.scalars(
        select(Lesson).where(Lesson.origin_instance == sender,
                             Lesson.origin_id.in_(origin_ids)))}


def _store(item: _Checked, lesson: Lesson | None, author: User, sender: str,
           label: str) -> tuple[str, Lesson | None]:
    """Create or update one lesson (or withdraw it); returns the outcome's name and the
    lesson."""
    now = utcnow()
    if item.kind == "revocation":
        if lesson is None or lesson.status == "withdrawn":
            return "unchanged", lesson
        previous = lesson.status
        lesson.status = "withdrawn"
        lesson.received_at = now
        lesson.version += 1
        db.session.flush()
        audit.record("federation_revoked", actor=None, lesson=lesson, from_status=previous,
                     to_status="withdrawn", comment=f"withdrawn by originator ({label})")
        search.queue_lesson(lesson)
        return "revoked", lesson
    if lesson is not None and (lesson.origin_version or 0) >= item.version \
            and lesson.status != "withdrawn":
        return "unchanged", lesson
    record = item.record
    values = dict(record.values)
    previous = lesson.status if lesson is not None else None
    if lesson is None:
        public_id = new_public_id()
        lesson = Lesson(public_id=public_id,
                        external_id=f"{FEDERATED_ID_PREFIX}{sender}:{item.origin_id}",
                        author=author, originator_nation=record.originator,
                        status=record.status, version=1, title=values["title"],
                        origin_instance=sender, origin_id=item.origin_id)
        db.session.add(lesson)
        apply_values(lesson, values)
        outcome = "created"
    else:
        lesson.originator_nation = record.originator
        apply_values(lesson, values)
        lesson.status = record.status
        lesson.version += 1
        outcome = "updated"
    lesson.origin_version, lesson.received_at = item.version, now
    if record.actions is not None:
        lesson.actions = [RemedialAction(position=n, **a)
                          for n, a in enumerate(record.actions, start=1)]
    db.session.flush()
    audit.record("federation_received", actor=None, lesson=lesson, from_status=previous,
                 to_status=lesson.status,
                 comment=f"{label}; origin {sender} {item.origin_id} version {item.version}")
    search.queue_lesson(lesson)
    return outcome, lesson


def _apply_ack(bundle: bundles.Bundle, peer: Peer, source: str) -> Applied:
    sequence = bundle.manifest.get("acknowledges")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise _refuse("The acknowledgement names no bundle.", peer, source)
    try:
        return acknowledge(peer, sequence)
    except FederationError as exc:
        raise _refuse(str(exc), peer, source) from None


def acknowledge(peer: Peer, sequence: int) -> Applied:
    """Record that ``peer`` applied this instance's bundle ``sequence`` (and so every
    one before it): what those bundles carried is not sent again, and their kept bytes
    are dropped. Committed; an acknowledgement already recorded changes nothing. The
    file acknowledgement and the online feed's ``after=`` both come here.
    FederationError (nothing changed, not audited) for a bundle never written."""
    if sequence > peer.last_out_sequence:
        raise FederationError(f"The acknowledgement is of bundle {sequence}, but the last "
                              f"bundle written for {peer.name} is {peer.last_out_sequence}.")
    applied = Applied(peer.name, "ack", sequence)
    if sequence <= peer.acked_sequence:
        applied.notes.append(f"bundle {sequence} was already acknowledged")
        return applied
    for row in db.session.scalars(select(PeerLesson).where(
            PeerLesson.peer_id == peer.id, PeerLesson.sequence <= sequence)):
        row.acked = True
    outbound.forget_acknowledged(peer, sequence)
    returns.acknowledge(peer, sequence)
    peer.acked_sequence = sequence
    peer.last_error = ""
    audit.record("federation_ack_received", actor=None, subject=peer.name,
                 comment=f"{peer.name} acknowledged bundle {sequence}")
    db.session.commit()
    return applied


def import_bundle(path: Path, ack_path: Path | None = None) -> Applied:
    """Verify and apply the bundle at ``path``; with ``ack_path``, write the signed
    acknowledgement there once it is applied. FederationError (audited) when refused."""
    source = Path(path).name[:200]
    name, _ = identity.instance()
    try:
        bundle = bundles.read(Path(path))
    except FederationError as exc:
        raise _refuse(str(exc), None, source) from None
    manifest = bundle.manifest
    sender = manifest.get("sender") if isinstance(manifest.get("sender"), dict) else {}
    sender_name = str(sender.get("name") or "")[:64]
    peer = peers.find(sender_name, lock=True) if sender_name else None
    if peer is None:
        raise _refuse(f"The bundle is from {sender_name or 'an unnamed sender'}, which is not "
                      "a registered peer (flask federation peer add). Nothing was applied.",
                      None, source)
    if manifest.get("recipient") != name:
        raise _refuse(f"The bundle is addressed to {manifest.get('recipient')!r}, not to this "
                      f"instance ({name}). Nothing was applied.", peer, source)
    if sender.get("key_fingerprint") != identity.fingerprint(peer.public_key):
        raise _refuse(f"The bundle was signed with another key than the one registered for "
                      f"{peer.name}. Nothing was applied.", peer, source)
    try:
        bundles.verify(bundle, peer.public_key)
    except FederationError as exc:
        raise _refuse(str(exc), peer, source) from None
    if manifest.get("kind") == "ack":
        return _apply_ack(bundle, peer, source)
    if manifest.get("kind") != "lessons":
        raise _refuse(f"Unknown bundle kind {manifest.get('kind')!r}.", peer, source)
    sequence = manifest.get("sequence")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise _refuse("The bundle has no sequence number.", peer, source)
    if sequence <= peer.last_in_sequence:
        raise _refuse(f"Bundle {sequence} from {peer.name} was already applied (the last "
                      f"applied is {peer.last_in_sequence}): a replay, nothing changed.",
                      peer, source)
    if sequence > peer.last_in_sequence + 1:
        first, last = peer.last_in_sequence + 1, sequence - 1
        missing = str(first) if first == last else f"{first} to {last}"
        raise _refuse(f"Bundle {sequence} from {peer.name} is ahead of bundle(s) {missing}, "
                      f"not yet applied: import {'it' if first == last else 'them'} first. "
                      "Nothing was applied.", peer, source)
    nation = str(sender.get("nation") or "")
    try:
        checked = _check_records(bundle, peer.name, name)
    except FederationError as exc:
        raise _refuse(f"Bundle {sequence} from {peer.name}: {exc}. Nothing was applied.",
                      peer, source) from None
    applied = Applied(peer.name, "lessons", sequence)
    label = f"bundle {sequence} from {peer.name}"
    try:
        author_nation = nation if NATION_CODE.match(nation) and nation in nation_codes() \
            else next((c.record.originator for c in checked if c.record), peer.nations[0])
        author = _author(peer, author_nation)
        existing = _existing(peer.name, [c.origin_id for c in checked])
        with db.session.no_autoflush:
            for item in checked:
                if item.kind in returns.KINDS:
                    outcome = returns.apply(item.record, peer, author, label)
                    setattr(applied, outcome, getattr(applied, outcome) + 1)
                    continue
                outcome, lesson = _store(item, existing.get(item.origin_id), author,
                                         peer.name, label)
                if lesson is not None:
                    existing[item.origin_id] = lesson
                setattr(applied, outcome, getattr(applied, outcome) + 1)
        peer.last_in_sequence, peer.last_in_at, peer.last_error = sequence, utcnow(), ""
        audit.record("federation_bundle_applied", actor=None, subject=peer.name,
                     comment=applied.summary())
        db.session.commit()
    except Exception as exc:
        raise _refuse(f"Bundle {sequence} from {peer.name} could not be applied ({exc}); "
                      "nothing was applied.", peer, source) from exc
    search.after_commit()
    if ack_path is not None:
        outbound.write_ack(peer, sequence, Path(ack_path))
    return applied
