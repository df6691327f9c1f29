"""Demo users and lessons, loaded through the same services users go through.

Lessons live in ``lessons.jsonl`` (contract keys plus ``author``, ``status`` and
``review_note``); each is written, submitted and reviewed by the demo users so that
its history looks like real use.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from lessons import policy, search
from lessons.demo.exercises import load_demo_exercises
from lessons.extensions import db
from lessons.models import User
from lessons.services import glossary as glossary_service
from lessons.services import lessons as lesson_service
from lessons.services import users as user_service

DEMO_PASSWORD = "demo"
DEMO_LESSONS = Path(__file__).with_name("lessons.jsonl")

# username, nation, roles, display name, unit
DEMO_USERS: list[tuple[str, str, tuple[str, ...], str, str]] = [
    ("admin", "USA", ("admin",), "Muster Administrator", "Muster support cell"),
    ("us.analyst", "USA", ("contributor", "analyst"), "Maj Dana Ruiz",
     "Center for Army Lessons Learned"),
    ("gb.planner", "GBR", ("contributor", "planner"), "Maj Tom Hartley",
     "HQ 3rd (UK) Division G7"),
    ("gb.analyst", "GBR", ("contributor", "analyst"), "Capt Priya Shah",
     "Army Lessons Centre"),
    ("au.contributor", "AUS", ("contributor",), "Capt Liam O'Connor",
     "7th Brigade"),
    ("au.analyst", "AUS", ("contributor", "analyst"), "Maj Kate Nguyen",
     "Centre for Army Lessons (AUS)"),
    ("ca.analyst", "CAN", ("contributor", "analyst"), "Maj Luc Tremblay",
     "Canadian Army Lessons Learned Centre"),
    ("us.planner", "USA", ("contributor", "planner"), "Maj Chris Walker",
     "III Armored Corps G7"),
    ("au.planner", "AUS", ("contributor", "planner"), "Maj Sam Kelly",
     "1st (Australian) Division G7"),
]

# The route each demo status takes through the table (after submit).
_ROUTES: dict[str, list[str]] = {
    "draft": [],
    "submitted": ["submitted"],
    "withdrawn": ["submitted", "withdrawn"],
    "rejected": ["submitted", "rejected"],
    "validated": ["submitted", "validated"],
    "action_assigned": ["submitted", "validated", "action_assigned"],
    "learned": ["submitted", "validated", "learned"],
    "archived": ["submitted", "validated", "archived"],
}


def _by_username() -> dict[str, User]:
    return {u.username: u for u in db.session.scalars(select(User))}


def _analyst(nation: str, users: dict[str, User]) -> User:
    return next(u for u in users.values() if u.nation_code == nation and u.has_role("analyst"))


def _lesson_data(record: dict[str, Any]) -> dict[str, Any]:
    skip = {"author", "status", "review_note", "actions", "originator_nation"}
    data = {k: v for k, v in record.items() if k not in skip}
    data["observed_on"] = date.fromisoformat(record["observed_on"]) if record.get(
        "observed_on") else None
    return data


def _action_data(action: dict[str, Any]) -> dict[str, Any]:
    return {**action, "due_on": date.fromisoformat(action["due_on"]) if action.get("due_on")
            else None}


def load_demo() -> dict[str, int]:
    """Create the demo users and lessons; returns counts. Commits as the services do."""
    # A migrated database already has the shipped glossary; one made by create_all does not.
    glossary_groups = glossary_service.load_defaults()
    existing = _by_username()
    for username, nation, roles, name, unit in DEMO_USERS:
        if username not in existing:
            user_service.create_user(username, nation=nation, roles=roles,
                                     password=DEMO_PASSWORD, display_name=name, unit=unit,
                                     weak_password_ok=True)
    users = _by_username()
    records = [json.loads(line) for line in DEMO_LESSONS.read_text("utf-8").splitlines()
               if line.strip()]
    # Each demo nation has a single analyst, who reviews lessons they wrote too: the
    # exception SELF_REVIEW_NATIONS gives such nations, audited as self-review.
    demo_nations = {nation for _, nation, *_ in DEMO_USERS}
    with search.batch(), policy.self_review_for(demo_nations):
        for record in records:
            _load_lesson(record, users)
        exercises = load_demo_exercises(users)
    return {"users": len(DEMO_USERS), "lessons": len(records), "exercises": exercises,
            "glossary_groups": glossary_groups}


def _load_lesson(record: dict[str, Any], users: dict[str, User]) -> None:
    """Create one demo lesson and walk it through its route, as users would."""
    author = users[record["author"]]
    route = _ROUTES[record["status"]]
    lesson = lesson_service.create_lesson(author, _lesson_data(record),
                                          submit=bool(route))
    analyst = _analyst(lesson.originator_nation, users)
    for to in route[1:]:  # actions come only before a route's final step
        if to in ("action_assigned", "learned", "archived"):
            for action in record.get("actions") or []:
                lesson_service.add_action(analyst, lesson.public_id, _action_data(action))
        actor = author if to == "withdrawn" else analyst
        needs_note = to in ("rejected", "learned", "archived")
        note = (record.get("review_note") or "") if needs_note else ""
        lesson_service.transition_lesson(actor, lesson.public_id, to, note)
