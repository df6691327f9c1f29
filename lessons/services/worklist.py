"""What needs me: the home page's entries for one user, per role.

Every entry is counted by the very function that fills the list it links to: a lesson
entry carries the ``LessonFilter`` that both ``count_lessons`` and the lessons page read
(its link is that filter's query string); the outcomes and release requests are the
lists the review tab shows; a milestone's packet figures come from ``packets.packet``,
which renders the packet page. A count cannot drift from its list, and nothing hidden
from the user is counted, because those functions apply the access policy. Reads only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flask import current_app

from lessons import policy
from lessons.models import ExerciseLesson, ReleaseRequest, User
from lessons.models.partner import PartnerRequest
from lessons.rules import milestone_label
from lessons.services import attachments, packets, partner_requests
from lessons.services import exercises as exercise_service
from lessons.services.lessons import LessonFilter, count_lessons

MILESTONE_HORIZON_DAYS = 60
RECENT_DAYS = 30


@dataclass(frozen=True)
class Entry:
    """One line of the home page: ``count`` items, listed at ``endpoint``/``args``."""

    key: str  # stable: the page's data-testid and tests use it
    count: int
    one: str  # label after a count of 1 ...
    many: str  # ... and after any other count
    endpoint: str
    args: dict[str, str] = field(default_factory=dict)
    anchor: str | None = None
    waiting: bool = True  # asks the user to act (False: for information)

    @property
    def label(self) -> str:
        return self.one if self.count == 1 else self.many


@dataclass(frozen=True)
class MilestoneStatus:
    """An upcoming milestone of an exercise the user plans, with its packet's state for
    the default audience (every participating nation), as the packet page shows it."""

    exercise_id: str
    exercise_name: str
    milestone: str
    due_on: date
    in_packet: int
    proposed: int
    withheld: int

    @property
    def label(self) -> str:
        return milestone_label(self.milestone)

    @property
    def attached(self) -> int:
        return self.in_packet + self.proposed + self.withheld


@dataclass(frozen=True)
class Section:
    key: str
    heading: str
    entries: list[Entry]

    @property
    def total(self) -> int:
        """The section's items; for "To review", what the lessons page's tab counts."""
        return sum(e.count for e in self.entries if e.waiting)


@dataclass(frozen=True)
class Worklist:
    sections: list[Section]
    milestones: list[MilestoneStatus] | None  # None: not a planner
    horizon_days: int = MILESTONE_HORIZON_DAYS

    @property
    def waiting(self) -> int:
        """Items asking the user to act, over every section."""
        return sum(e.count for s in self.sections for e in s.entries if e.waiting)


@dataclass(frozen=True)
class ToReview:
    """Everything waiting in an analyst's To review tab: the submitted lessons it lists
    and the outcomes and release requests shown above them. The tab's count and the home
    page's "To review" figure are both ``total``, so they cannot disagree."""

    lessons: int
    confirmations: list[ExerciseLesson]
    releases: list[ReleaseRequest]
    partner: list[PartnerRequest] = field(default_factory=list)

    @property
    def total(self) -> int:
        return (self.lessons + len(self.confirmations) + len(self.releases)
                + len(self.partner))


def to_review(user: User) -> ToReview:
    """What waits in ``user``'s To review tab (nothing for a non-analyst)."""
    return ToReview(lessons=count_lessons(user, LessonFilter(tab="review")),
                    confirmations=attachments.pending_confirmations(user),
                    releases=packets.pending_release_requests(user),
                    partner=partner_requests.pending_for(user))


def _lessons(user: User, key: str, flt: LessonFilter, one: str, many: str, *,
             waiting: bool = True) -> Entry:
    return Entry(key=key, count=count_lessons(user, flt), one=one, many=many,
                 endpoint="lessons.index", args=flt.to_args(), waiting=waiting)


def _review(user: User) -> Section:
    """The "To review" section: ``to_review``'s parts, so its total is the tab's count."""
    review, waiting = {"tab": "review"}, to_review(user)
    # Only an instance that exchanges lessons with others can be asked by a partner.
    partner = [Entry("partner", len(waiting.partner),
                     "outcome or request from a partner instance to decide",
                     "outcomes and requests from partner instances to decide",
                     "lessons.index", review, anchor="partner-requests")
               ] if current_app.config.get("INSTANCE_NAME") or waiting.partner else []
    return Section("review", "To review", [
        Entry("review", waiting.lessons, f"submitted lesson of {user.nation_code} to review",
              f"submitted lessons of {user.nation_code} to review", "lessons.index",
              LessonFilter(tab="review").to_args()),
        Entry("outcomes", len(waiting.confirmations),
              "exercise outcome to confirm", "exercise outcomes to confirm",
              "lessons.index", review, anchor="outcomes"),
        Entry("releases", len(waiting.releases),
              "release request to decide", "release requests to decide",
              "lessons.index", review, anchor="release-requests"),
        *partner,
    ])


def _writing(user: User, today: date) -> Section:
    return Section("writing", "Your lessons", [
        _lessons(user, "returned", LessonFilter(tab="mine", returned=True),
                 "lesson returned to you with a comment",
                 "lessons returned to you with a comment"),
        _lessons(user, "drafts", LessonFilter(tab="mine", status="draft"),
                 "draft not yet submitted", "drafts not yet submitted"),
        _lessons(user, "validated", LessonFilter(
            tab="mine", validated_since=today - timedelta(days=RECENT_DAYS)),
            f"lesson validated in the last {RECENT_DAYS} days",
            f"lessons validated in the last {RECENT_DAYS} days", waiting=False),
        _lessons(user, "mine", LessonFilter(tab="mine"), "lesson written by you",
                 "lessons written by you", waiting=False),
    ])


def _nation(user: User) -> Section:
    return Section("nation", f"Remedial actions of {user.nation_code}", [
        _lessons(user, "overdue", LessonFilter(tab="all", overdue=True),
                 "lesson with an overdue remedial action",
                 "lessons with an overdue remedial action"),
    ])


def upcoming_milestones(user: User, today: date,
                        days: int = MILESTONE_HORIZON_DAYS) -> list[MilestoneStatus]:
    """Milestones due within ``days`` of exercises ``user`` plans, soonest first."""
    found: list[MilestoneStatus] = []
    for exercise in exercise_service.editable_exercises(user):
        for milestone in exercise.milestones:
            if milestone.due_on is None or not today <= milestone.due_on <= today + timedelta(
                    days=days):
                continue
            result = packets.packet(user, exercise.public_id, milestone.name, None)
            found.append(MilestoneStatus(
                exercise_id=exercise.public_id, exercise_name=exercise.name,
                milestone=milestone.name, due_on=milestone.due_on,
                in_packet=len(result.lessons), proposed=result.proposed,
                withheld=len(result.withheld)))
    return sorted(found, key=lambda m: (m.due_on, m.exercise_name, m.milestone))


def worklist(user: User) -> Worklist:
    """The home page of ``user``: sections for the roles they hold."""
    today = exercise_service.today()
    sections: list[Section] = []
    if user.has_role("analyst"):
        sections.append(_review(user))
    if policy.can_create_lesson(user):
        sections.append(_writing(user, today))
    sections.append(_nation(user))
    milestones = upcoming_milestones(user, today) if policy.is_planner(user) else None
    return Worklist(sections=sections, milestones=milestones)


def link_args(entry: Entry) -> dict[str, Any]:
    """``url_for`` keyword arguments of ``entry``'s list."""
    return {**entry.args, **({"_anchor": entry.anchor} if entry.anchor else {})}
