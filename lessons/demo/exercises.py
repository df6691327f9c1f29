"""Demo exercises: one being planned with lessons at several steps, and one past exercise
whose outcomes wait on an analyst. Built through the services, dated from today so the
timeline always shows milestones behind and ahead."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from lessons.extensions import db
from lessons.models import Lesson, User
from lessons.services import attachments, packets
from lessons.services import exercises as exercise_service
from lessons.services.exercises import today


def _on(offset: int) -> date:
    return today() + timedelta(days=offset)


def _lesson(title_start: str) -> str:
    public_id = db.session.scalar(select(Lesson.public_id).where(
        Lesson.title.startswith(title_start)))
    assert public_id, f"demo lesson {title_start!r} missing"
    return public_id


def _walk(user: User, exercise_id: str, lesson_id: str, to: str, evidence: str = "") -> None:
    for step in ("accepted", "incorporated"):
        if to == "proposed":
            return
        attachments.update_link(user, exercise_id, lesson_id, {}, to=step)
        if step == to:
            return
    attachments.update_link(user, exercise_id, lesson_id, {}, to=to, evidence=evidence)


def load_demo_exercises(users: dict[str, User]) -> int:
    """Create the demo exercises; returns how many."""
    au, gb, us = users["au.planner"], users["gb.planner"], users["us.planner"]
    jackal = exercise_service.create_exercise(au, {
        "name": "Exercise SOUTHERN JACKAL 2027", "type": "cpx", "lead_nation": "AUS",
        "nations": ["AUS", "GBR", "USA"], "starts_on": _on(75), "ends_on": _on(86),
        "location": "Shoalwater Bay Training Area, Queensland",
        "description": "A combined divisional command post exercise: an Australian division "
                       "headquarters with a UK brigade and a US brigade under command, on one "
                       "coalition mission network, clearing fires across national systems and "
                       "cross-refuelling each other's vehicles and aircraft.",
        "objectives": [
            "Join every partner headquarters to the coalition mission network before STARTEX",
            "Exchange liaison officers between the division and the flanking brigades",
            "Clear combined fires across national digital fires systems",
            "Cross-refuel partner vehicles and aircraft from any nation's fuel point",
        ],
        "tags": ["mission-network", "liaison", "fuel", "targeting"],
        "milestones": {"concept_development": _on(-120), "initial_planning_conference": _on(-30),
                       "main_planning_conference": _on(15), "final_planning_conference": _on(45),
                       "execution": _on(75), "after_action_review": _on(95),
                       "site_survey": _on(30)},
        "planners": ["gb.planner", "us.planner"],
    })
    ex = jackal.public_id
    objectives = [o.public_id for o in jackal.objectives]
    plan = [
        (gb, "Partner division HQ could not join", objectives[0], "accepted",
         "main_planning_conference"),
        (au, "Combined fuel compatibility matrix", objectives[3], "incorporated",
         "main_planning_conference"),
        (gb, "Coupling and NSN gaps", objectives[3], "accepted", "main_planning_conference"),
        (au, "LO handbook and reach-back routine", objectives[1], "proposed",
         "final_planning_conference"),
    ]
    for planner, title, objective, status, milestone in plan:
        lesson_id = _lesson(title)
        attachments.attach_lesson(planner, ex, lesson_id, {
            "purpose": "read_ahead", "objective": objective, "milestone": milestone,
            "note": "Brief the partner cells on this before the conference."})
        _walk(planner, ex, lesson_id, status)
    # The UK-US fuel lesson is not released to Australia: ask the UK to release it.
    packets.request_release(gb, ex, _lesson("Coupling and NSN gaps"), ["AUS"],
                            "The Australian fuel point serves UK vehicles in this exercise.")

    iron = exercise_service.create_exercise(us, {
        "name": "Exercise IRON LIAISON 2026", "type": "ftx", "lead_nation": "USA",
        "nations": ["USA", "GBR", "CAN"], "starts_on": _on(-200), "ends_on": _on(-190),
        "location": "Fort Hood, Texas",
        "description": "A US-UK-Canadian field exercise testing liaison and a shared glossary.",
        "objectives": ["Plan with one agreed glossary of terms",
                       "Keep every partner HQ on the common operational picture"],
        "tags": ["liaison", "terminology", "cop"],
        "milestones": {"initial_planning_conference": _on(-300),
                       "final_planning_conference": _on(-230), "execution": _on(-200),
                       "after_action_review": _on(-170)},
        "planners": ["gb.planner"],
    })
    glossary = _lesson("Jointly written glossary annex")
    attachments.attach_lesson(us, iron.public_id, glossary, {
        "purpose": "training_objective", "objective": iron.objectives[0].public_id,
        "milestone": "final_planning_conference"})
    _walk(us, iron.public_id, glossary, "effective",
          "All three HQs planned from the annex; no term was queried at the AAR.")
    network = _lesson("Current ops chat rooms on SIPRNet")
    attachments.attach_lesson(us, iron.public_id, network, {
        "purpose": "inject", "objective": iron.objectives[1].public_id,
        "milestone": "final_planning_conference"})
    _walk(us, iron.public_id, network, "not_effective",
          "The mission-network chat was ready, but US cells still posted on SIPRNet first.")
    return 2
