"""What a peer is sent: its nations' share of this instance's own lessons, and the
revocation of each one it was sent and may no longer see.

A bundle holds everything not yet acknowledged by the peer: a lesson whose current
version the peer has acknowledged is not sent again; one sent in a bundle the peer has
not acknowledged yet is sent again (applying it twice changes nothing there). Which
lessons a peer may see is ``policy.peer_rule``: the rule for a user of its nations with
no role. Lessons received from other instances are never relayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from lessons import policy
from lessons.extensions import db
from lessons.federation import bundles, identity, peers, returns
from lessons.models import ChangeLogHead, Lesson, Peer, PeerBundle, PeerLesson
from lessons.models.base import utcnow
from lessons.services import audit
from lessons.services.exchange import lesson_record


@dataclass(frozen=True)
class Exported:
    peer: str
    sequence: int
    lessons: int
    revocations: int
    # Outcomes, release requests and decisions travelling back (``returns``).
    returns: int = 0


def _own_lessons_for(peer: Peer) -> list[Lesson]:
    query = (select(Lesson).where(Lesson.origin_instance.is_(None),
                                  policy.to_sql(policy.peer_rule(peer.nations)))
             .order_by(Lesson.id))
    # The SQL filter and the Python rule are one rule; the second look costs nothing.
    return [lesson for lesson in db.session.scalars(query)
            if policy.peer_may_receive(peer.nations, lesson)]


def lesson_entry(instance_name: str, lesson: Lesson) -> dict[str, Any]:
    return {"type": "lesson",
            "origin": {"instance": instance_name, "id": lesson.public_id,
                       "version": lesson.version},
            "lesson": lesson_record(lesson)}


def export(peer_name: str, path: Path) -> Exported:
    """Write the next bundle for ``peer_name`` to ``path``, and keep its bytes until the
    peer acknowledges it; audited, and committed only once the file is written (a
    failed write leaves the sequence as it was)."""
    identity.instance()
    identity.private_key()  # no key, no bundle: say so before doing anything
    peer = peers.get(peer_name, lock=True)
    staged = _stage(peer, always=True, position=change_position())
    assert staged is not None  # always: even an empty bundle is written
    exported, data = staged
    try:
        bundles.save(path, data)
    except BaseException:
        db.session.rollback()
        raise
    try:
        db.session.commit()
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    return exported


def next_bundle(peer: Peer) -> tuple[Exported, bytes] | None:
    """The next bundle for ``peer`` (locked by the caller), made and kept exactly as
    ``export`` makes it, and committed; ``None`` (nothing stored) when it would carry
    no record. The online feed's answer when the peer has everything written so far."""
    identity.private_key()
    # Read before the lessons: a change committed after this is seen by the next call.
    position = change_position()
    if (peer.change_position == position and peer.acked_sequence == peer.last_out_sequence
            and not returns.waiting(peer)):
        # Nothing changed since the peer was last found up to date: no need to read
        # every lesson it may see again (a peer may poll the feed every minute).
        db.session.rollback()
        return None
    staged = _stage(peer, always=False, position=position)
    if staged is None:
        peer.change_position = position
        db.session.commit()
        return None
    db.session.commit()
    return staged


def change_position() -> str:
    """Where the change log stands (its epoch and last number): every change to a lesson
    moves it, in the change's own transaction."""
    head = db.session.scalar(select(ChangeLogHead))
    return f"{head.epoch}:{head.last_id}" if head is not None else ""


def kept_bundle(peer: Peer, sequence: int) -> bytes | None:
    """Bundle ``sequence`` for ``peer`` as it was written, while not yet acknowledged."""
    row = db.session.get(PeerBundle, (peer.id, sequence))
    return row.body if row is not None else None


def forget_acknowledged(peer: Peer, sequence: int) -> None:
    """Drop the kept bundles the peer acknowledged (``sequence`` and before)."""
    db.session.execute(delete(PeerBundle).where(PeerBundle.peer_id == peer.id,
                                                PeerBundle.sequence <= sequence))


def _stage(peer: Peer, *, always: bool, position: str) -> tuple[Exported, bytes] | None:
    """Decide and sign the next bundle for ``peer`` and stage its rows (sent records,
    sequence, kept bytes, audit) in the session, uncommitted. Without ``always``, a
    bundle with no record is not made (``None``, and nothing staged)."""
    name, nation = identity.instance()
    sequence = peer.last_out_sequence + 1
    sent = {row.lesson_id: row for row in db.session.scalars(
        select(PeerLesson).where(PeerLesson.peer_id == peer.id))}
    visible = _own_lessons_for(peer)
    visible_ids = {lesson.id for lesson in visible}
    changed = [lesson for lesson in visible if not _acknowledged(sent.get(lesson.id), lesson)]
    revoked = sorted((row for lesson_id, row in sent.items()
                      if lesson_id not in visible_ids and not (row.revoked and row.acked)),
                     key=lambda r: r.lesson_id)
    waiting = returns.waiting(peer)
    if not always and not changed and not revoked and not waiting:
        return None
    records: list[dict[str, Any]] = []
    for lesson in changed:
        records.append(lesson_entry(name, lesson))
        row = sent.get(lesson.id)
        if row is None:
            row = PeerLesson(peer_id=peer.id, lesson_id=lesson.id)
            db.session.add(row)
        row.version, row.sequence, row.revoked, row.acked = lesson.version, sequence, False, False
    if revoked:
        public_ids = dict(db.session.execute(select(Lesson.id, Lesson.public_id).where(
            Lesson.id.in_([row.lesson_id for row in revoked]))).all())
        for row in revoked:
            records.append({"type": "revocation",
                            "origin": {"instance": name, "id": public_ids[row.lesson_id]}})
            row.sequence, row.revoked, row.acked = sequence, True, False
    records.extend(returns.carry(peer, waiting, sequence, name))
    now = utcnow()
    manifest = {
        "kind": "lessons",
        "sender": {"name": name, "nation": nation,
                   "key_fingerprint": identity.fingerprint(identity.public_key())},
        "recipient": peer.name,
        "sequence": sequence,
        # Everything not acknowledged by bundle ``after_acknowledged_sequence``, as it
        # stood at change-log position ``change_log_upto`` (read before the lessons; each
        # record names its version).
        "covers": {"after_acknowledged_sequence": peer.acked_sequence,
                   "change_log_upto": int(position.rpartition(":")[2] or 0),
                   "up_to": now.isoformat(timespec="seconds") + "Z"},
        "created": now.isoformat(timespec="seconds") + "Z",
        "counts": {"lessons": len(changed), "revocations": len(revoked),
                   "returns": len(waiting)},
    }
    data = bundles.build(manifest, bundles.records_bytes(records))
    peer.last_out_sequence, peer.last_out_at, peer.change_position = sequence, now, position
    db.session.add(PeerBundle(peer_id=peer.id, sequence=sequence, created_at=now, body=data))
    audit.record("federation_bundle_out", actor=None, subject=peer.name,
                 comment=f"bundle {sequence} for {peer.name}: {len(changed)} lesson(s), "
                         f"{len(revoked)} revocation(s), {len(waiting)} return(s)")
    db.session.flush()
    return Exported(peer.name, sequence, len(changed), len(revoked), len(waiting)), data


def _acknowledged(row: PeerLesson | None, lesson: Lesson) -> bool:
    """The peer holds this version of the lesson (nothing to send)."""
    return (row is not None and row.acked and not row.revoked
            and row.version == lesson.version)


def write_ack(peer: Peer, sequence: int, path: Path) -> None:
    """A signed acknowledgement of ``peer``'s bundle ``sequence`` (no records)."""
    name, nation = identity.instance()
    now = utcnow()
    bundles.write(path, {
        "kind": "ack",
        "sender": {"name": name, "nation": nation,
                   "key_fingerprint": identity.fingerprint(identity.public_key())},
        "recipient": peer.name,
        "acknowledges": sequence,
        "created": now.isoformat(timespec="seconds") + "Z",
    }, b"")
