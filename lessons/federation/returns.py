"""What travels back to a lesson's originating instance, and the answer that returns.

When a planner here records an exercise outcome for a lesson received from a peer, or
asks for its wider release, a ``ReturnMessage`` is queued for that peer in the same
transaction. It rides in every bundle for the peer until the peer acknowledges one that
carried it (as lessons do), so a lost file loses nothing. At the originating instance
the record becomes a ``PartnerRequest`` that its analysts decide in *To review* with the
partner exercise named; their decision is queued back the same way and, applied here,
settles the outcome or the release request.

Records of this kind always name the lesson by its id at the originating instance, which
the peer received; nothing else about a lesson travels. A record about a lesson the
sender was never sent, or may not see any more, is skipped (counted in the import's
summary) and decides nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from lessons import policy
from lessons.extensions import db
from lessons.federation.identity import FederationError
from lessons.models import (
    Exercise,
    ExerciseLesson,
    Lesson,
    Peer,
    PeerLesson,
    ReleaseRequest,
    User,
)
from lessons.models.base import utcnow
from lessons.models.partner import PartnerRequest, ReturnMessage
from lessons.rules import LEARNABLE, NATION_CODE, NOTE_MAX, OUTCOMES
from lessons.services import audit
from lessons.services.nations import nation_codes

# Sent by the instance holding the received copy, about the originator's lesson.
ASKING = frozenset({"outcome", "release_request"})
# Sent back by the originator.
ANSWERS = frozenset({"outcome_decision", "release_decision"})
KINDS = ASKING | ANSWERS
DECISIONS = {"outcome_decision": frozenset({"confirmed", "declined"}),
             "release_decision": frozenset({"approved", "declined"})}
ID_MAX = 80
NAME_MAX = 200
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# --- queueing, here -------------------------------------------------------------------------
def _peer_named(name: str | None) -> Peer | None:
    if not name:
        return None
    return db.session.scalar(select(Peer).where(Peer.name == name))


def _queue(peer: Peer, kind: str, key: str, payload: dict[str, Any]) -> None:
    """Add (or replace, when not yet acknowledged) the message ``kind``/``key`` for
    ``peer``; part of the caller's transaction. Its lesson is named by id only: which
    instance holds it is said when the message is carried (``carry``)."""
    row = db.session.scalar(select(ReturnMessage).where(
        ReturnMessage.peer_id == peer.id, ReturnMessage.kind == kind,
        ReturnMessage.key == key))
    if row is None:
        row = ReturnMessage(peer_id=peer.id, kind=kind, key=key)
        db.session.add(row)
    row.payload, row.sequence, row.created_at = payload, None, utcnow()


def _exercise(exercise: Exercise | None) -> dict[str, str]:
    if exercise is None:
        return {"name": "", "starts": "", "ends": ""}
    return {"name": exercise.name[:NAME_MAX], "starts": exercise.starts_on.isoformat(),
            "ends": exercise.ends_on.isoformat()}


def outcome_key(link: ExerciseLesson) -> str:
    """An outcome's id for its peer: the exercise's and the received lesson's ids here."""
    return f"{link.exercise.public_id}.{link.lesson.public_id}"


def queue_outcome(user: User, link: ExerciseLesson) -> None:
    """Send ``link``'s outcome on a received lesson to its originator (unless it is no
    longer a peer: then nothing can reach it)."""
    lesson = link.lesson
    peer = _peer_named(lesson.origin_instance)
    if peer is None:
        return
    key = outcome_key(link)
    _queue(peer, "outcome", key, {
        "type": "outcome", "id": key, "lesson": {"id": lesson.origin_id},
        "result": link.status, "evidence": link.evidence,
        "exercise": _exercise(link.exercise), "planner_nation": user.nation_code,
        "recorded": utcnow().isoformat(timespec="seconds") + "Z"})


def queue_release_request(user: User, request: ReleaseRequest, lesson: Lesson,
                          exercise: Exercise | None) -> None:
    """Send a wider-release request on a received lesson to its originator."""
    peer = _peer_named(lesson.origin_instance)
    if peer is None:
        return
    _queue(peer, "release_request", request.public_id, {
        "type": "release_request", "id": request.public_id,
        "lesson": {"id": lesson.origin_id},
        "nations": list(request.nations), "reason": request.reason,
        "exercise": _exercise(exercise), "planner_nation": user.nation_code,
        "recorded": utcnow().isoformat(timespec="seconds") + "Z"})


def queue_decision(request: PartnerRequest, decider: User) -> None:
    """The originator's decision on ``request``, for the peer that asked."""
    kind = "outcome_decision" if request.kind == "outcome" else "release_decision"
    _queue(request.peer, kind, request.remote_id, {
        "type": kind, "id": request.remote_id, "lesson": {"id": request.lesson.public_id},
        "decision": request.status, "note": request.decision_note,
        "nation": decider.nation_code,
        "decided": (request.decided_at or utcnow()).isoformat(timespec="seconds") + "Z"})


def decline_waiting(user: User, lesson: Lesson, reason: str) -> None:
    """An archived lesson no longer changes: what partners asked about it and still
    waits is declined with the archive's reason, and the decision goes back to them
    (as local release requests on it are declined). Part of the caller's transaction."""
    waiting = list(db.session.scalars(select(PartnerRequest).where(
        PartnerRequest.lesson_id == lesson.id, PartnerRequest.status == "pending")))
    for request in waiting:
        request.status = "declined"
        request.version += 1
        request.decided_by_id, request.decided_at = user.id, utcnow()
        request.decision_note = f"The lesson was archived: {reason}".strip()
        audit.record(f"partner_{request.kind}_declined", actor=user, lesson=lesson,
                     comment=f"{request.peer.name} exercise {request.exercise_name}: "
                             f"{request.decision_note}"[:1000])
        queue_decision(request, user)


# --- in and out of bundles -------------------------------------------------------------------
def waiting(peer: Peer) -> list[ReturnMessage]:
    """Every message for ``peer`` not yet acknowledged, oldest first."""
    return list(db.session.scalars(select(ReturnMessage).where(
        ReturnMessage.peer_id == peer.id).order_by(ReturnMessage.id)))


def carry(peer: Peer, rows: list[ReturnMessage], sequence: int,
          own_name: str) -> list[dict[str, Any]]:
    """The records of ``rows``, now carried by bundle ``sequence`` from ``own_name`` to
    ``peer``: a question is about one of the peer's lessons, an answer about ours."""
    records = []
    for row in rows:
        row.sequence = sequence
        holder = own_name if row.kind in ANSWERS else peer.name
        records.append({**row.payload, "lesson": {**row.payload["lesson"],
                                                  "instance": holder}})
    return records


def acknowledge(peer: Peer, sequence: int) -> None:
    """The peer applied bundle ``sequence``: what it carried is delivered."""
    db.session.execute(delete(ReturnMessage).where(
        ReturnMessage.peer_id == peer.id, ReturnMessage.sequence.is_not(None),
        ReturnMessage.sequence <= sequence))


@dataclass(frozen=True)
class Returned:
    """One checked record of ``KINDS``."""

    kind: str
    id: str
    lesson_id: str
    values: dict[str, Any]


def _text(raw: dict[str, Any], key: str, number: int, limit: int = NOTE_MAX) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise FederationError(f"Record {number}: {key} must be text of at most {limit:,} "
                              "characters.")
    return value.strip()


def check(raw: dict[str, Any], number: int, sender: str, own_name: str) -> Returned:
    """One record of ``KINDS`` checked whole (before anything is applied)."""
    kind = raw.get("type")
    key = raw.get("id")
    if not isinstance(key, str) or not 0 < len(key) <= ID_MAX:
        raise FederationError(f"Record {number}: its id is missing or too long.")
    lesson = raw.get("lesson")
    # A question is about one of our lessons; an answer about one of the sender's.
    owner = own_name if kind in ASKING else sender
    if not isinstance(lesson, dict) or lesson.get("instance") != owner \
            or not isinstance(lesson.get("id"), str) or not 0 < len(lesson["id"]) <= 64:
        raise FederationError(f"Record {number}: a {kind} must name a lesson of {owner}.")
    values: dict[str, Any] = {}
    if kind in ASKING:
        exercise = raw.get("exercise")
        if not isinstance(exercise, dict):
            raise FederationError(f"Record {number}: the exercise is missing.")
        values["exercise_name"] = _text(exercise, "name", number, NAME_MAX)
        for part in ("starts", "ends"):
            value = _text(exercise, part, number, 10)
            if value and not DATE.match(value):
                raise FederationError(f"Record {number}: the exercise's {part} is not a date.")
            values[f"exercise_{part}"] = value
        nation = raw.get("planner_nation")
        if not isinstance(nation, str) or not NATION_CODE.match(nation):
            raise FederationError(f"Record {number}: the planner's nation is not a code.")
        values["planner_nation"] = nation
    if kind == "outcome":
        if raw.get("result") not in OUTCOMES:
            raise FederationError(f"Record {number}: unknown outcome {raw.get('result')!r}.")
        values["result"] = raw["result"]
        values["text"] = _text(raw, "evidence", number)
    elif kind == "release_request":
        nations = raw.get("nations")
        if not isinstance(nations, list) or not nations or not all(
                isinstance(c, str) and NATION_CODE.match(c) for c in nations) \
                or len(nations) > 50:
            raise FederationError(f"Record {number}: the nations asked for are not codes.")
        values["nations"] = sorted(set(nations))
        values["text"] = _text(raw, "reason", number)
    else:
        if raw.get("decision") not in DECISIONS[kind]:
            raise FederationError(f"Record {number}: unknown decision {raw.get('decision')!r}.")
        values["decision"] = raw["decision"]
        values["note"] = _text(raw, "note", number)
        nation = raw.get("nation")
        values["nation"] = nation if isinstance(nation, str) and NATION_CODE.match(nation) \
            else ""
    return Returned(kind, key, lesson["id"], values)


# --- applying a received record ---------------------------------------------------------------
def _receive(item: Returned, peer: Peer, label: str) -> str:
    """An outcome or release request about one of our lessons, from ``peer``."""
    lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == item.lesson_id,
                                                    Lesson.origin_instance.is_(None)))
    if lesson is None or not policy.peer_may_receive(peer.nations, lesson):
        return "skipped"
    # And one it was sent: a peer speaks only of lessons it holds from us.
    sent = db.session.get(PeerLesson, (peer.id, lesson.id))
    if sent is None or sent.revoked:
        return "skipped"
    kind = "outcome" if item.kind == "outcome" else "release"
    if db.session.scalar(select(PartnerRequest.id).where(
            PartnerRequest.peer_id == peer.id, PartnerRequest.kind == kind,
            PartnerRequest.remote_id == item.id)) is not None:
        return "unchanged"
    values = dict(item.values)
    # Nations this instance does not know could be in no REL TO here.
    nations = sorted(set(values.pop("nations", [])) & nation_codes())
    if kind == "release" and not nations:
        return "skipped"
    # As here: only an effective outcome on a lesson that can still become learned
    # waits for a decision; any other is recorded for its analysts to read.
    status = "pending" if kind == "release" or (
        values["result"] == "effective" and lesson.status in LEARNABLE) else "noted"
    request = PartnerRequest(peer_id=peer.id, kind=kind, remote_id=item.id,
                             lesson_id=lesson.id, nations=nations, status=status, **values)
    db.session.add(request)
    where = f"{peer.name} exercise {values['exercise_name'] or '(unnamed)'}"
    if kind == "outcome":
        result = values["result"].replace("_", " ")
        comment = f"{where}: outcome {result} ({values['planner_nation']} planner)"
    else:
        comment = (f"{where}: {values['planner_nation']} planner asks to add "
                   f"{', '.join(nations)} to REL TO")
    audit.record(f"partner_{kind}_received", actor=None, lesson=lesson,
                 comment=f"{comment}; {label}"[:1000])
    return "received"


def _settle(item: Returned, peer: Peer, author: User, label: str) -> str:
    """The originator's decision on an outcome or release request sent from here."""
    decision, note = item.values["decision"], item.values["note"]
    who = f"{peer.name} analyst" + (f" ({item.values['nation']})" if item.values["nation"]
                                    else "")
    if item.kind == "outcome_decision":
        exercise_id, _, lesson_id = item.id.partition(".")
        link = db.session.scalar(
            select(ExerciseLesson).join(Exercise, ExerciseLesson.exercise_id == Exercise.id)
            .join(Lesson, ExerciseLesson.lesson_id == Lesson.id)
            .where(Exercise.public_id == exercise_id, Lesson.public_id == lesson_id,
                   Lesson.origin_instance == peer.name, Lesson.origin_id == item.lesson_id))
        if link is None:
            return "skipped"
        if link.confirmation != "pending":
            return "unchanged"
        link.confirmation = decision
        link.version += 1
        audit.record(f"outcome_{decision}", actor=None, exercise=link.exercise,
                     lesson=link.lesson,
                     comment=f"{who}{': ' + note if note else ''}; {label}"[:1000])
        return "settled"
    request = db.session.scalar(
        select(ReleaseRequest).join(Lesson, ReleaseRequest.lesson_id == Lesson.id)
        .where(ReleaseRequest.public_id == item.id, Lesson.origin_instance == peer.name,
               Lesson.origin_id == item.lesson_id))
    if request is None:
        return "skipped"
    if request.status != "pending":
        return "unchanged"
    request.status = decision
    request.version += 1
    request.decided_by_id, request.decided_at = author.id, utcnow()
    request.decision_note = f"{who}{': ' + note if note else ''}"
    comment = (f"{who} {decision} adding {', '.join(request.nations)}"
               f"{': ' + note if note else ''}; {label}")[:1000]
    audit.record(f"release_{decision}", actor=None, lesson=request.lesson, comment=comment)
    if request.exercise is not None:
        audit.record(f"release_{decision}", actor=None, exercise=request.exercise,
                     lesson=request.lesson, comment=comment)
    return "settled"


def apply(item: Returned, peer: Peer, author: User, label: str) -> str:
    """Apply one checked record; returns ``received``, ``settled``, ``unchanged`` or
    ``skipped`` (about a lesson the sender may not see, or something unknown here)."""
    if item.kind in ASKING:
        return _receive(item, peer, label)
    return _settle(item, peer, author, label)
