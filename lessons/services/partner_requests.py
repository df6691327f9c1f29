"""Outcomes and release requests from partner instances about this instance's lessons.

A planner on a peer instance recorded that one of our lessons worked (or did not) in a
partner exercise, or asked that it be released to more nations
(``lessons.federation.returns``). Our lesson's originator analysts decide these in *To
review* as they decide a local outcome or request, with the same rights and the same
effects: a confirmed outcome makes the lesson learned, an approved request widens its
REL TO, each a new version that the next bundles carry to every peer it is released to.
The decision itself travels back to the asking peer.
"""

from __future__ import annotations

from sqlalchemy import select

from lessons import policy
from lessons.errors import InvalidTransition, NotAllowed, NotFound, ValidationFailed
from lessons.extensions import db
from lessons.federation import returns
from lessons.models import Lesson, User
from lessons.models.base import utcnow
from lessons.models.partner import PartnerRequest
from lessons.rules import check_note
from lessons.services import attachments, audit, packets
from lessons.services import lessons as lesson_service
from lessons.services.lessons import locked

CHOICES = {"outcome": ("confirm", "decline"), "release": ("approve", "decline")}


def may_decide(user: User, request: PartnerRequest) -> bool:
    """The local rule for the same decision: an originator analyst (and, for an outcome,
    not the lesson's author)."""
    if request.kind == "outcome":
        return policy.can_confirm_outcome(user, request.lesson)
    return policy.can_decide_for_originator(user, request.lesson)


def pending_for(user: User) -> list[PartnerRequest]:
    """What waits for ``user``, oldest first (nothing for a non-analyst)."""
    if not user.has_role("analyst"):
        return []
    found = db.session.scalars(
        select(PartnerRequest).join(Lesson, PartnerRequest.lesson_id == Lesson.id)
        .where(PartnerRequest.status == "pending",
               Lesson.originator_nation == user.nation_code, policy.visible_lessons(user))
        .order_by(PartnerRequest.received_at, PartnerRequest.id).limit(500))
    return [request for request in found if may_decide(user, request)]


def decide(user: User, public_id: str, decision: str, note: str = "") -> PartnerRequest:
    """Confirm or decline an outcome, approve or decline a release request (a reason is
    required to decline). Raises ``NotFound`` (nothing waiting that ``user`` may see),
    ``NotAllowed`` (not theirs to decide), ``InvalidTransition`` (already decided, or the
    lesson can no longer change that way), ``ValidationFailed`` (bad decision or note)."""
    # Locked and versioned: of two analysts deciding at once exactly one decides.
    request = db.session.scalar(locked(select(PartnerRequest).where(
        PartnerRequest.public_id == str(public_id)), PartnerRequest))
    if request is None or not policy.can_view(user, request.lesson):
        raise NotFound("Nothing from a partner instance is waiting here.")
    lesson = request.lesson
    if not policy.can_decide_for_originator(user, lesson):
        raise NotAllowed(f"Only an analyst of {lesson.originator_nation} decides this.")
    if request.kind == "outcome":
        policy.require_confirm_outcome(user, lesson)
    if decision not in CHOICES[request.kind]:
        raise ValidationFailed({"decision": f"Choose {' or '.join(CHOICES[request.kind])}."})
    if request.status != "pending":
        raise InvalidTransition(f"This was already {request.status}; nothing was changed.")
    problem = check_note(note, label="reason", required=decision == "decline")
    if problem:
        raise ValidationFailed({"note": problem})
    note = (note or "").strip()
    flag = policy.self_review_flag(user, lesson)
    if flag:
        note = f"({flag}) {note}".strip()
    where = f"{request.peer.name} exercise {request.exercise_name or '(unnamed)'}"
    changed = False
    if decision == "confirm":
        if lesson.status not in attachments.LEARNABLE:
            raise InvalidTransition(f"The lesson is {lesson.status.replace('_', ' ')}; it "
                                    "can no longer be recorded as learned.")
        attachments.make_learned(user, lesson, f"{request.text} ({where}; confirmed by "
                                               f"{user.nation_code} analyst"
                                               f"{': ' + note if note else ''})")
        changed = True
    elif decision == "approve":
        if lesson.status == "archived":
            raise InvalidTransition("The lesson is archived; its release cannot change.")
        packets.widen_release(user, lesson, request.nations, f"({where}) {note}".strip())
        changed = True
    request.status = {"confirm": "confirmed", "approve": "approved"}.get(decision, "declined")
    request.version += 1
    request.decided_by_id, request.decided_at, request.decision_note = user.id, utcnow(), note
    audit.record(f"partner_{request.kind}_{request.status}", actor=user, lesson=lesson,
                 comment=f"{where}{': ' + note if note else ''}"[:1000])
    returns.queue_decision(request, user)
    if changed:
        lesson_service.commit_lesson(lesson)
    else:
        db.session.commit()
    return request
