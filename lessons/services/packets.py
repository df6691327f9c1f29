"""Read-ahead packets for an exercise's partners, and requests to widen a lesson's REL TO.

A packet for an audience holds only the attached lessons releasable to *every* nation
in it; "withheld" counts the attached lessons the viewer can see but the audience
cannot, and names the nations that lack release. Lessons hidden from the viewer are
neither listed nor counted (docs/ARCHITECTURE.md, section 4). From the packet, a planner asks the
originator nation's analysts to add the missing nations; they approve or decline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lessons import policy
from lessons.errors import InvalidTransition, NotAllowed, NotFound, ValidationFailed
from lessons.extensions import db
from lessons.federation import returns
from lessons.models import Exercise, ExerciseLesson, Lesson, Milestone, Objective, ReleaseRequest
from lessons.models.base import new_public_id, utcnow
from lessons.rules import check_note, milestone_label, normalise_codes
from lessons.services import audit, exchange
from lessons.services import exercises as exercise_service
from lessons.services import lessons as lesson_service
from lessons.services.attachments import attached_link
from lessons.services.lessons import locked

# Links still only proposed are not in a packet: nobody has agreed to take them up.
PACKET_STATUSES = frozenset({"accepted", "incorporated", "effective", "not_effective"})


@dataclass
class PacketGroup:
    objective: Objective | None
    links: list[ExerciseLesson]


@dataclass
class Packet:
    exercise: Exercise
    milestone: Milestone
    audience: list[str]
    groups: list[PacketGroup]
    withheld: list[ExerciseLesson]
    lacking: dict[str, int]  # nation -> withheld lessons it lacks release for
    proposed: int  # visible links at this milestone not yet accepted (left out)
    classification: str = "UNCLASSIFIED"
    lessons: list[ExerciseLesson] = field(default_factory=list)

    @property
    def marking(self) -> str:
        """The packet's own access line: every lesson in it is releasable to the whole
        audience, so the audience is its REL TO."""
        return f"{self.classification} // REL TO {', '.join(sorted(self.audience))}"

    @property
    def milestone_label(self) -> str:
        return milestone_label(self.milestone.name)


def parse_audience(exercise: Exercise, raw: str | Iterable[str] | None) -> list[str]:
    """The packet's audience: participating nations, all of them by default. Anything
    else is refused (a packet for a non-participant is not this page's business)."""
    codes = normalise_codes(raw or [])
    if not codes:
        return sorted(exercise.nations)
    strangers = [c for c in codes if c not in exercise.nations]
    if strangers:
        raise ValidationFailed({"audience": (
            f"Not participating: {', '.join(strangers)}. Choose from "
            f"{', '.join(sorted(exercise.nations))}.")})
    return sorted(codes)


def packet(user, exercise_id: str, milestone: str, audience: str | Iterable[str] | None,
           classifications: list[str] | None = None) -> Packet:
    """The packet of ``milestone`` for ``audience`` as ``user`` may see it. Reads only.
    Raises ``NotFound`` (exercise or milestone) or ``ValidationFailed`` (audience)."""
    exercise = exercise_service.get_exercise(user, exercise_id)
    found = exercise.milestone(str(milestone or ""))
    if found is None:
        raise NotFound("No such milestone in this exercise.")
    nations = parse_audience(exercise, audience)
    links = [link for link in exercise_service.visible_links(user, exercise)
             if link.milestone_id == found.id]
    proposed = sum(1 for link in links if link.status not in PACKET_STATUSES)
    links = [link for link in links if link.status in PACKET_STATUSES]
    included = [link for link in links if policy.releasable_to_all(link.lesson, nations)]
    withheld = [link for link in links if link not in included]
    lacking: Counter[str] = Counter()
    for link in withheld:
        lacking.update(policy.missing_release(link.lesson, nations))
    groups: dict[int | None, PacketGroup] = {}
    for link in included:
        key = link.objective.id if link.objective else None
        groups.setdefault(key, PacketGroup(link.objective, [])).links.append(link)
    ordered = sorted(groups.values(), key=lambda g: g.objective.position if g.objective
                     else 10_000)
    order = classifications or ["UNCLASSIFIED"]
    levels = [link.lesson.classification for link in included]
    highest = max(levels, key=lambda c: order.index(c) if c in order else -1,
                  default=order[0])
    return Packet(exercise=exercise, milestone=found, audience=nations, groups=ordered,
                  withheld=withheld, lacking=dict(sorted(lacking.items())),
                  proposed=proposed, classification=highest, lessons=included)


PACKET_TEXT = ("observation", "discussion", "conclusion", "recommendation")


def packet_item(link: ExerciseLesson) -> dict:
    """One packet entry in the exchange format's keys plus how the exercise uses it."""
    lesson = link.lesson
    return {
        "id": lesson.public_id, "external_id": lesson.external_id, "title": lesson.title,
        "marking": lesson.marking, "kind": lesson.kind, "status": lesson.status,
        "originator_nation": lesson.originator_nation,
        **{key: getattr(lesson, key) for key in PACKET_TEXT},
        "tags": lesson.tags, "releasable_to": sorted(lesson.releasable_to),
        "purpose": link.purpose,
        "objective": ({"id": link.objective.public_id, "text": link.objective.text}
                      if link.objective else None),
        "milestone": link.milestone.name if link.milestone else None,
        "link_status": link.status, "note": link.note,
    }


def packet_document(result: Packet) -> dict:
    """The packet as data (the JSON download and the API): exercise, milestone, marking,
    audience, lessons, withheld."""
    exercise = result.exercise
    return {
        "exercise": {"id": exercise.public_id, "name": exercise.name,
                     "starts_on": exercise.starts_on.isoformat(),
                     "ends_on": exercise.ends_on.isoformat()},
        "milestone": result.milestone.name,
        "marking": result.marking,
        "audience": result.audience,
        "lessons": [packet_item(link) for link in result.lessons],
        "withheld": {"count": len(result.withheld), "nations": result.lacking},
    }


def record_export(user, result: Packet, fmt: str) -> None:
    """Audit a packet leaving Muster (a download or the API), on the exercise's trail:
    who took which milestone's packet for which audience, how many lessons. Commits."""
    exchange.record_export(user, f"read-ahead packet {result.milestone.name} for "
                                 f"{', '.join(result.audience)}", len(result.lessons),
                           fmt, exercise=result.exercise)


# --- release requests ------------------------------------------------------------------------
def request_release(user, exercise_id: str, lesson_id: str, nations: Iterable[str],
                    reason: str = "") -> ReleaseRequest:
    """Ask the lesson's originator analysts to add ``nations`` (participants the lesson is
    not yet releasable to) to its REL TO. Planners of the exercise only, for a lesson
    attached to it; one pending request per lesson and exercise. Commits with audit
    entries on the exercise and the lesson."""
    exercise = exercise_service.get_exercise(user, exercise_id)
    policy.require_edit_exercise(user, exercise)
    link = attached_link(user, exercise, lesson_id)
    lesson = link.lesson
    wanted = normalise_codes(nations)
    wanted = [c for c in wanted if c in exercise.nations]
    missing = [c for c in wanted if c not in lesson.releasable_to]
    if not missing:
        raise ValidationFailed({"nations": "Choose participating nations the lesson is not "
                                           "yet releasable to."})
    problem = check_note(reason, label="reason", required=False)
    if problem:
        raise ValidationFailed({"reason": problem})
    if db.session.scalar(select(ReleaseRequest.id).where(
            ReleaseRequest.lesson_id == lesson.id, ReleaseRequest.exercise_id == exercise.id,
            ReleaseRequest.status == "pending")) is not None:
        raise ValidationFailed({"nations": "A request for this lesson is already waiting for "
                                           "its originator."})
    request = ReleaseRequest(public_id=new_public_id(), lesson_id=lesson.id,
                             exercise_id=exercise.id, nations=sorted(missing),
                             reason=(reason or "").strip(), requested_by_id=user.id)
    db.session.add(request)
    if policy.is_foreign(lesson):
        # Its originator decides, on its own instance: the request travels there.
        returns.queue_release_request(user, request, lesson, exercise)
    comment = f"Asked to add {', '.join(sorted(missing))} to REL TO"
    audit.record("release_requested", actor=user, exercise=exercise, lesson=lesson,
                 comment=comment)
    try:
        db.session.commit()
    except IntegrityError:
        # Another planner's request for the same lesson was stored a moment earlier.
        db.session.rollback()
        raise ValidationFailed({"nations": "A request for this lesson is already waiting "
                                           "for its originator."}) from None
    return request


def pending_release_requests(user) -> list[ReleaseRequest]:
    """Requests waiting for ``user``: an analyst of the lessons' originator nation."""
    if not user.has_role("analyst"):
        return []
    found = db.session.scalars(
        select(ReleaseRequest).join(Lesson, ReleaseRequest.lesson_id == Lesson.id)
        .where(ReleaseRequest.status == "pending",
               Lesson.originator_nation == user.nation_code, policy.visible_lessons(user))
        .order_by(ReleaseRequest.created_at, ReleaseRequest.id).limit(500))
    return [r for r in found if policy.can_decide_for_originator(user, r.lesson)]


def requests_for(user, exercise: Exercise) -> list[ReleaseRequest]:
    """This exercise's release requests about lessons ``user`` may see, newest first."""
    found = db.session.scalars(
        select(ReleaseRequest).join(Lesson, ReleaseRequest.lesson_id == Lesson.id)
        .where(ReleaseRequest.exercise_id == exercise.id, policy.visible_lessons(user))
        .order_by(ReleaseRequest.created_at.desc(), ReleaseRequest.id.desc()))
    return [r for r in found if policy.can_view(user, r.lesson)]


def widen_release(user, lesson: Lesson, nations: Iterable[str], note: str) -> None:
    """Approving a release request: add ``nations`` to the lesson's REL TO as a new
    version (the caller commits it with ``commit_lesson``), audited on the lesson."""
    nations = sorted(set(nations))
    lesson.releasable_to = sorted(set(lesson.releasable_to) | set(nations))
    lesson.version += 1
    audit.record("release_approved", actor=user, lesson=lesson, changes=["releasable_to"],
                 comment=f"Added {', '.join(nations)} to REL TO. {note}".strip())


def decide_release(user, request_id: str, *, approve: bool, note: str = "") -> ReleaseRequest:
    """An originator analyst approves (the nations join the lesson's REL TO, a new
    version is indexed) or declines (a reason is required) a release request. Both are
    audited on the lesson and, where there is one, on the exercise."""
    # Locked and versioned: of an approve and a decline sent at once exactly one decides.
    request = db.session.scalar(locked(select(ReleaseRequest).where(
        ReleaseRequest.public_id == str(request_id)), ReleaseRequest))
    if request is None or not policy.can_view(user, request.lesson):
        raise NotFound("No such release request.")
    lesson = request.lesson
    if not policy.can_decide_for_originator(user, lesson):
        raise NotAllowed(f"Only an analyst of {lesson.originator_nation} decides its release.")
    if request.status != "pending":
        raise InvalidTransition(f"This request was already {request.status}.")
    problem = check_note(note, label="reason", required=not approve)
    if problem:
        raise ValidationFailed({"note": problem})
    if approve and lesson.status == "archived":
        raise InvalidTransition("The lesson is archived; its release cannot change.")
    note = (note or "").strip()
    request.status = "approved" if approve else "declined"
    request.version += 1
    request.decided_by_id = user.id
    request.decided_at = utcnow()
    request.decision_note = note
    nations = ", ".join(request.nations)
    if approve:
        widen_release(user, lesson, request.nations, note)
    else:
        audit.record("release_declined", actor=user, lesson=lesson,
                     comment=f"Declined adding {nations}: {note}")
    if request.exercise is not None:
        audit.record(f"release_{request.status}", actor=user, exercise=request.exercise,
                     lesson=lesson, comment=nations)
    if approve:
        lesson_service.commit_lesson(lesson)
    else:
        db.session.commit()
    return request
