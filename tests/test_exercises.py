"""Exercises: planning, visibility and editing by nation and planner, recommendations,
attaching and tracking lessons, outcomes that move lessons to learned, observations,
read-ahead packets and release requests. Driven through HTTP as users would."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta
from html import unescape
from typing import Any

import pytest
from sqlalchemy import func, select

from lessons.extensions import db
from lessons.models import (
    AuditRecord,
    Exercise,
    ExerciseLesson,
    Lesson,
    LessonLink,
    ReleaseRequest,
)
from tests.test_capture import form_data, public_id_from

TODAY = date.today()


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


def exercise_form(**overrides: Any) -> dict[str, Any]:
    """What the new-exercise form posts (nested names as the page renders them)."""
    data: dict[str, Any] = {
        "name": "Exercise SOUTHERN JACKAL 2027",
        "type": "cpx",
        "lead_nation": "GBR",
        "nations": ["GBR", "USA", "AUS"],
        "starts_on": day(60),
        "ends_on": day(70),
        "location": "Salisbury Plain",
        "description": "A divisional command post exercise with partner liaison officers.",
        "objectives-0-id": "", "objectives-0-text": "Exchange liaison officers on day one",
        "objectives-1-id": "", "objectives-1-text": "Run a combined fires network",
        "objectives-2-id": "", "objectives-2-text": "",
        "tags": "liaison, mission-network",
        "milestones-concept_development": day(-20),
        "milestones-initial_planning_conference": day(10),
        "milestones-main_planning_conference": day(30),
        "milestones-final_planning_conference": day(50),
        "milestones-execution": day(60),
        "milestones-after_action_review": day(75),
        "custom_milestones-0-name": "Site survey", "custom_milestones-0-due_on": day(20),
        "custom_milestones-1-name": "", "custom_milestones-1-due_on": "",
        "planners": "",
    }
    data.update(overrides)
    return data


def exercise_id_from(location: str) -> str:
    match = re.fullmatch(r"(?:http://localhost)?/exercises/([a-z0-9]{10})", location)
    assert match, location
    return match.group(1)


@pytest.fixture
def people(make_user):
    make_user("gb.planner", "GBR", ("contributor", "planner"))
    make_user("gb.planner2", "GBR", ("planner",))
    make_user("us.planner", "USA", ("contributor", "planner"))
    make_user("au.planner", "AUS", ("contributor", "planner"))
    make_user("fr.planner", "FRA", ("planner",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("us.an", "USA", ("contributor", "analyst"))
    make_user("gb.author", "GBR", ("contributor",))
    make_user("us.author", "USA", ("contributor",))


@pytest.fixture
def create(login_as):
    """Create an exercise through the form as ``planner``; returns its public id."""

    def _create(planner: str = "gb.planner", **overrides: Any) -> str:
        response = login_as(planner).post("/exercises/new", data=exercise_form(**overrides))
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]
        return exercise_id_from(response.headers["Location"])

    return _create


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def lesson_status(app, public_id: str) -> str:
    with app.app_context():
        return db.session.scalar(select(Lesson.status).where(Lesson.public_id == public_id))


def link_row(app, exercise_id: str, lesson_id: str) -> ExerciseLesson | None:
    with app.app_context():
        link = db.session.scalar(
            select(ExerciseLesson).join(Exercise).join(Lesson, ExerciseLesson.lesson_id
                                                       == Lesson.id)
            .where(Exercise.public_id == exercise_id, Lesson.public_id == lesson_id))
        if link is not None:
            db.session.expunge(link)
        return link


def audit_rows(app, *, lesson: str | None = None, exercise: str | None = None):
    with app.app_context():
        query = select(AuditRecord.action, AuditRecord.actor_id, AuditRecord.comment,
                       AuditRecord.to_status).order_by(AuditRecord.id)
        if lesson:
            query = query.join(Lesson, AuditRecord.lesson_id == Lesson.id).where(
                Lesson.public_id == lesson)
        if exercise:
            query = query.join(Exercise, AuditRecord.exercise_id == Exercise.id).where(
                Exercise.public_id == exercise)
        return [tuple(row) for row in db.session.execute(query)]


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def section(html: str, name: str) -> str:
    match = re.search(rf'<section id="{name}"[^>]*>(.*?)</section>', html, re.S)
    assert match, f"no {name} section"
    return match.group(1)


def attach(client, exercise_id: str, lesson_id: str, **fields: Any):
    data = {"purpose": "training_objective", "objective": "", "milestone":
            "initial_planning_conference", "note": ""}
    data.update(fields)
    return client.post(f"/exercises/{exercise_id}/attach?lesson={lesson_id}", data=data)


def step(client, exercise_id: str, lesson_id: str, to: str, note: str = ""):
    return client.post(f"/exercises/{exercise_id}/lessons/{lesson_id}/step",
                       data={"to": to, "note": note})


def walk(client, exercise_id: str, lesson_id: str, until: str = "incorporated") -> None:
    for to in ("accepted", "incorporated"):
        assert step(client, exercise_id, lesson_id, to).status_code == 302
        if to == until:
            return


# --- planning ----------------------------------------------------------------------------
def test_a_planner_creates_an_exercise_with_objectives_and_milestones(app, people, login_as):
    client = login_as("gb.planner")
    response = client.post("/exercises/new", data=exercise_form())
    assert response.status_code == 302
    public_id = exercise_id_from(response.headers["Location"])
    html = client.get(f"/exercises/{public_id}").get_data(as_text=True)
    page = text_of(html)
    assert "Exercise SOUTHERN JACKAL 2027" in page
    assert "Participants: AUS, GBR, USA" in page
    assert re.search(r"<ol><li[^>]*>Exchange liaison officers on day one</li><li[^>]*>Run a "
                     r"combined fires network</li></ol>", html)
    timeline = text_of(section(html, "timeline"))
    assert "Concept development" in timeline and "20 days ago" in timeline
    assert "Initial planning conference" in timeline and "in 10 days" in timeline
    assert "Site survey" in timeline
    assert "Today" in html
    with app.app_context():
        exercise = db.session.scalar(select(Exercise).where(Exercise.public_id == public_id))
        assert [m.name for m in exercise.milestones][:6] == [
            "concept_development", "initial_planning_conference", "main_planning_conference",
            "final_planning_conference", "execution", "after_action_review"]
        assert exercise.milestone("site_survey").due_on == TODAY + timedelta(days=20)
        assert [p.username for p in exercise.planners] == ["gb.planner"]
        assert exercise.tags == ["liaison", "mission-network"]
    assert [row[0] for row in audit_rows(app, exercise=public_id)] == ["exercise_created"]


@pytest.mark.parametrize("user", ["gb.author", "gb.an"])
def test_only_planners_create_exercises(app, people, login_as, user):
    client = login_as(user)
    assert client.get("/exercises/new").status_code == 403
    assert client.post("/exercises/new", data=exercise_form()).status_code == 403
    assert count(app, Exercise) == 0


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"name": ""}, "name", "Required."),
    ({"ends_on": day(50)}, "ends_on", "Must be on or after the start date."),
    ({"type": "parade"}, "type", "Not a valid choice."),
    ({"nations": ["GBR", "XXX"]}, "nations", "Unknown nation or group: XXX."),
    ({"planners": "gb.author"}, "planners", "Cannot be planners: gb.author."),
    ({"planners": "fr.planner"}, "planners", "Cannot be planners: fr.planner."),
    ({"starts_on": "tomorrow"}, "starts_on", "Not a valid date value."),
    ({"name": "x" * 201}, "name", "200"),
])
def test_bad_exercise_input_answers_422_and_stores_nothing(app, people, login_as, overrides,
                                                           field, message):
    response = login_as("gb.planner").post("/exercises/new", data=exercise_form(**overrides))
    assert response.status_code == 422
    assert message in text_of(response.get_data(as_text=True))
    assert count(app, Exercise) == 0


def test_groups_expand_and_the_lead_nation_always_takes_part(app, people, create):
    public_id = create(nations=["FVEY"], lead_nation="GBR")
    with app.app_context():
        exercise = db.session.scalar(select(Exercise).where(Exercise.public_id == public_id))
        assert sorted(exercise.nations) == ["AUS", "CAN", "GBR", "NZL", "USA"]


# --- who sees and edits --------------------------------------------------------------------
def test_participants_see_the_exercise_and_others_get_404_everywhere(app, people, create,
                                                                     login_as):
    public_id = create()
    for user in ("us.planner", "au.planner", "us.an"):
        client = login_as(user)
        assert client.get(f"/exercises/{public_id}").status_code == 200
        assert public_id in client.get("/exercises").get_data(as_text=True)
    stranger = login_as("fr.planner")
    for path in ("", "/edit", "/recommendations", "/packet", "/attach-by-tag?tag=liaison"):
        assert stranger.get(f"/exercises/{public_id}{path}").status_code == 404, path
    assert public_id not in stranger.get("/exercises?when=all").get_data(as_text=True)
    assert stranger.post(f"/exercises/{public_id}/edit",
                         data=exercise_form(name="Hijacked")).status_code == 404


def test_only_the_exercises_planners_edit_it(app, people, create, login_as):
    public_id = create()
    other = login_as("gb.planner2")
    assert other.get(f"/exercises/{public_id}/edit").status_code == 403
    assert other.post(f"/exercises/{public_id}/edit",
                      data=exercise_form(name="Changed")).status_code == 403
    # The creator adds them; then they can edit.
    owner = login_as("gb.planner")
    response = owner.post(f"/exercises/{public_id}/edit",
                          data=exercise_form(planners="gb.planner, gb.planner2", version="1"))
    assert response.status_code == 302
    response = other.post(f"/exercises/{public_id}/edit",
                          data=exercise_form(name="Exercise SOUTHERN JACKAL 2028",
                                             planners="gb.planner, gb.planner2", version="2"))
    assert response.status_code == 302
    with app.app_context():
        exercise = db.session.scalar(select(Exercise).where(Exercise.public_id == public_id))
        assert exercise.name == "Exercise SOUTHERN JACKAL 2028"
        assert exercise.version == 3
    assert [row[0] for row in audit_rows(app, exercise=public_id)] == [
        "exercise_created", "exercise_edited", "exercise_edited"]


def test_a_planner_cannot_drop_their_own_nation(app, people, create, login_as):
    public_id = create()
    response = login_as("gb.planner").post(
        f"/exercises/{public_id}/edit", data=exercise_form(nations=["USA"], lead_nation="USA",
                                                           planners="gb.planner", version="1"))
    assert response.status_code == 422
    assert "must stay a participant" in text_of(response.get_data(as_text=True))


def test_editing_an_objective_keeps_its_id_and_its_lessons(app, people, create, login_as,
                                                             make_lesson):
    public_id = create()
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    client = login_as("gb.planner")
    with app.app_context():
        exercise = db.session.scalar(select(Exercise).where(Exercise.public_id == public_id))
        first = exercise.objectives[0].public_id
        second = exercise.objectives[1].public_id
    assert attach(client, public_id, lesson.public_id, objective=first).status_code == 302
    form = exercise_form(**{"objectives-0-id": first,
                            "objectives-0-text": "Exchange liaison officers before day one",
                            "objectives-1-id": second, "planners": "gb.planner",
                            "version": "1"})
    assert client.post(f"/exercises/{public_id}/edit", data=form).status_code == 302
    link = link_row(app, public_id, lesson.public_id)
    with app.app_context():
        exercise = db.session.scalar(select(Exercise).where(Exercise.public_id == public_id))
        assert exercise.objectives[0].public_id == first
        assert exercise.objectives[0].text == "Exchange liaison officers before day one"
        assert link.objective_id == exercise.objectives[0].id
    # Removing it while a lesson is attached to it is refused; nothing changes.
    form = exercise_form(**{"objectives-0-id": first, "objectives-0-text": "",
                            "objectives-1-id": second, "planners": "gb.planner",
                            "version": "2"})
    response = client.post(f"/exercises/{public_id}/edit", data=form)
    assert response.status_code == 422
    assert "has lessons attached" in text_of(response.get_data(as_text=True))
    with app.app_context():
        exercise = db.session.scalar(select(Exercise).where(Exercise.public_id == public_id))
        assert len(exercise.objectives) == 2


def test_upcoming_and_past_lists(app, people, create, login_as):
    upcoming = create(name="Exercise AHEAD")
    past = create(name="Exercise BEHIND", starts_on=day(-40), ends_on=day(-30))
    client = login_as("us.planner")
    ahead = client.get("/exercises").get_data(as_text=True)
    behind = client.get("/exercises?when=past").get_data(as_text=True)
    assert upcoming in ahead and past not in ahead
    assert past in behind and upcoming not in behind
    assert "ended 30 days ago" in behind


# --- recommendations -------------------------------------------------------------------------
COUPLING_TEXT = {
    "title": "Bowser nozzle couplings did not fit partner helicopters",
    "observation": "The bowser nozzle couplings of the tankers did not fit the refuelling "
                   "adaptors of the partner helicopters.",
    "discussion": "Each nation buys its own nozzle couplings and adaptors.",
    "conclusion": "Coupling adaptors must be checked before combined refuelling.",
    "recommendation": "Carry spare coupling adaptors for every partner airframe.",
}
OTHER_TEXT = {
    "title": "Map datums differed between headquarters",
    "observation": "Grid references from one headquarters were off by two hundred metres.",
    "discussion": "The datums were never agreed.",
    "conclusion": "Agree the datum in orders.",
    "recommendation": "State the datum in every operation order.",
}


def recommended_ids(html: str) -> list[str]:
    return re.findall(r'class="recommendation" data-lesson="([a-z0-9]{10})"', html)


def test_recommendations_rank_the_lesson_matching_an_objective_and_sharing_tags_first(
        app, people, create, login_as, make_lesson):
    best = make_lesson("gb.author", "validated", analyst="gb.an", tags=["refuelling"],
                       nations=["AUS"], releasable_to=["USA", "AUS"], **COUPLING_TEXT)
    text_only = make_lesson("gb.author", "validated", analyst="gb.an", tags=["other"],
                            nations=[], releasable_to=["USA", "AUS"],
                            **{**COUPLING_TEXT, "title": "Nozzle couplings again"})
    learned = make_lesson("gb.author", "learned", analyst="gb.an", tags=["refuelling"],
                          nations=["AUS"], releasable_to=["USA", "AUS"], **COUPLING_TEXT)
    not_released = make_lesson("gb.author", "validated", analyst="gb.an", tags=["refuelling"],
                               nations=[], releasable_to=[], **OTHER_TEXT)
    never = [make_lesson("gb.author", status, analyst="gb.an", tags=["refuelling"],
                         releasable_to=["USA", "AUS"], **COUPLING_TEXT).public_id
             for status in ("draft", "withdrawn", "rejected", "archived")]
    public_id = create(tags="refuelling", description="Combined aviation refuelling.",
                       **{"objectives-0-text": "Refuel partner helicopters with bowser "
                                               "nozzle couplings",
                          "objectives-1-text": "Run a combined fires network"})
    html = login_as("gb.planner").get(f"/exercises/{public_id}/recommendations").get_data(
        as_text=True)
    ranked = recommended_ids(html)
    assert ranked[0] == best.public_id
    assert set(ranked) >= {text_only.public_id, learned.public_id, not_released.public_id}
    assert ranked.index(best.public_id) < ranked.index(learned.public_id)
    assert not set(never) & set(ranked)
    item = re.search(rf'data-lesson="{best.public_id}">(.*?)</li>', html, re.S).group(1)
    why = text_of(item)
    assert "Shares tags: refuelling; matches objective 1; involves AUS" in why
    assert "Releasable to every participating nation." in why
    flagged = text_of(re.search(rf'data-lesson="{not_released.public_id}">(.*?)</li>', html,
                                re.S).group(1))
    assert "Not releasable to AUS, USA" in flagged


def test_recommendations_filter_by_kind_domain_and_tag(app, people, create, login_as,
                                                       make_lesson):
    a = make_lesson("gb.author", "validated", analyst="gb.an", tags=["refuelling"],
                    domains=["materiel"], **COUPLING_TEXT)
    b = make_lesson("gb.author", "validated", analyst="gb.an", tags=["refuelling", "air"],
                    domains=["training"], **{**COUPLING_TEXT, "title": "Second"})
    public_id = create(tags="refuelling", nations=["GBR"])
    client = login_as("gb.planner")
    base = f"/exercises/{public_id}/recommendations"
    assert recommended_ids(client.get(f"{base}?domain=materiel").get_data(as_text=True)) == [
        a.public_id]
    assert recommended_ids(client.get(f"{base}?tag=air").get_data(as_text=True)) == [
        b.public_id]
    assert recommended_ids(client.get(f"{base}?kind=workaround").get_data(as_text=True)) == []


def test_recommendations_never_show_a_lesson_the_planner_may_not_see(app, people, create,
                                                                      login_as, make_lesson):
    hidden = make_lesson("gb.author", "validated", analyst="gb.an", tags=["refuelling"],
                         releasable_to=[], **COUPLING_TEXT)
    public_id = create(tags="refuelling")
    html = login_as("au.planner").get(f"/exercises/{public_id}/recommendations").get_data(
        as_text=True)
    assert hidden.public_id not in html and "Bowser" not in html


# --- attaching and the link lifecycle --------------------------------------------------------
def test_a_contributor_cannot_attach_and_nothing_is_stored(app, people, create, login_as,
                                                           make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    public_id = create()
    response = attach(login_as("gb.author"), public_id, lesson.public_id)
    assert response.status_code == 403
    # A planner of the nation who is not one of the exercise's planners neither.
    assert attach(login_as("gb.planner2"), public_id, lesson.public_id).status_code == 403
    assert count(app, ExerciseLesson) == 0


def test_a_draft_or_a_hidden_lesson_cannot_be_attached(app, people, create, login_as,
                                                       make_lesson):
    draft = make_lesson("gb.planner", "draft")
    hidden = make_lesson("us.author", "validated", analyst="us.an")
    public_id = create()
    client = login_as("gb.planner")
    response = attach(client, public_id, draft.public_id)
    assert response.status_code == 422
    assert "Only submitted, validated" in text_of(response.get_data(as_text=True))
    assert attach(client, public_id, hidden.public_id).status_code == 404
    assert count(app, ExerciseLesson) == 0


def test_the_link_moves_one_step_at_a_time_each_step_recorded(app, people, create, login_as,
                                                              make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    public_id = create()
    client = login_as("gb.planner")
    assert attach(client, public_id, lesson.public_id, note="Brief at IPC").status_code == 302
    assert link_row(app, public_id, lesson.public_id).status == "proposed"
    # Skipping a step, or an outcome before incorporation: 409, nothing changes.
    response = step(client, public_id, lesson.public_id, "incorporated")
    assert response.status_code == 409
    assert "the next step is accepted" in text_of(response.get_data(as_text=True))
    response = step(client, public_id, lesson.public_id, "effective", "It worked.")
    assert response.status_code == 409
    assert "only once it has been incorporated" in text_of(response.get_data(as_text=True))
    walk(client, public_id, lesson.public_id, "accepted")
    assert step(client, public_id, lesson.public_id, "effective", "x").status_code == 409
    walk_from = step(client, public_id, lesson.public_id, "incorporated")
    assert walk_from.status_code == 302
    assert step(client, public_id, lesson.public_id, "accepted").status_code == 409
    link = link_row(app, public_id, lesson.public_id)
    assert link.status == "incorporated"
    with app.app_context():
        steps = db.session.get(ExerciseLesson, link.id).steps
        assert [(s.from_status, s.to_status, s.actor.username) for s in steps] == [
            (None, "proposed", "gb.planner"), ("proposed", "accepted", "gb.planner"),
            ("accepted", "incorporated", "gb.planner")]
        assert all(s.created_at for s in steps)
    # Attaching the same lesson twice is refused.
    response = attach(client, public_id, lesson.public_id)
    assert response.status_code == 422
    assert "already attached" in text_of(response.get_data(as_text=True))


def test_an_outcome_needs_evidence(app, people, create, login_as, make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    public_id = create(starts_on=day(-1))
    client = login_as("gb.planner")
    attach(client, public_id, lesson.public_id)
    walk(client, public_id, lesson.public_id)
    response = step(client, public_id, lesson.public_id, "effective", "  ")
    assert response.status_code == 422
    assert "Evidence is required." in text_of(response.get_data(as_text=True))
    assert link_row(app, public_id, lesson.public_id).status == "incorporated"
    assert lesson_status(app, lesson.public_id) == "validated"


def test_effective_from_a_planner_of_the_originator_makes_the_lesson_learned_at_once(
        app, people, create, login_as, make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["USA", "AUS"])
    public_id = create(starts_on=day(-1))
    client = login_as("gb.planner")
    attach(client, public_id, lesson.public_id)
    walk(client, public_id, lesson.public_id)
    response = step(client, public_id, lesson.public_id, "effective",
                    "LNO accounts were ready on day one.")
    assert response.status_code == 302
    assert lesson_status(app, lesson.public_id) == "learned"
    link = link_row(app, public_id, lesson.public_id)
    assert (link.status, link.confirmation) == ("effective", "confirmed")
    rows = audit_rows(app, lesson=lesson.public_id)
    assert rows[-1][0] == "learned" and rows[-1][3] == "learned"
    assert "LNO accounts were ready on day one." in rows[-1][2]
    assert ("outcome_recorded", "effective") in [(r[0], r[3]) for r in audit_rows(
        app, exercise=public_id)]
    # The lesson page lists the exercise and its outcome.
    page = text_of(section(login_as("us.planner").get(f"/lessons/{lesson.public_id}")
                           .get_data(as_text=True), "exercises"))
    assert "Exercise SOUTHERN JACKAL 2027" in page and "Effective" in page


def test_effective_from_another_nation_waits_for_the_originator_analyst(
        app, people, create, login_as, make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["USA"])
    public_id = create(planners="gb.planner, us.planner", starts_on=day(-1))
    us = login_as("us.planner")
    attach(us, public_id, lesson.public_id)
    walk(us, public_id, lesson.public_id)
    assert step(us, public_id, lesson.public_id, "effective", "Worked in the CPX.").status_code \
        == 302
    assert lesson_status(app, lesson.public_id) == "validated"
    assert link_row(app, public_id, lesson.public_id).confirmation == "pending"
    # Shown in the GBR analyst's review list, not the USA analyst's.
    analyst = login_as("gb.an")
    review = analyst.get("/lessons?tab=review").get_data(as_text=True)
    outcomes = text_of(section(review, "outcomes"))
    assert lesson.public_id in review and "Worked in the CPX." in outcomes
    assert 'id="outcomes"' not in login_as("us.an").get("/lessons?tab=review").get_data(
        as_text=True)
    # Another nation's analyst cannot confirm it.
    url = f"/reviews/outcomes/{public_id}/{lesson.public_id}"
    assert login_as("us.an").post(url, data={"decision": "confirm"}).status_code == 403
    assert analyst.post(url, data={"decision": "confirm", "note": "Agreed."}).status_code == 302
    assert lesson_status(app, lesson.public_id) == "learned"
    assert link_row(app, public_id, lesson.public_id).confirmation == "confirmed"
    actions = [row[0] for row in audit_rows(app, lesson=lesson.public_id)]
    assert actions[-2:] == ["learned", "outcome_confirmed"] or actions[-2:] == [
        "outcome_confirmed", "learned"]
    assert analyst.post(url, data={"decision": "confirm"}).status_code == 409  # decided


def test_the_originator_analyst_declines_with_a_reason_and_the_lesson_stays_open(
        app, people, create, login_as, make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["USA"])
    public_id = create(planners="gb.planner, us.planner", starts_on=day(-1))
    us = login_as("us.planner")
    attach(us, public_id, lesson.public_id)
    walk(us, public_id, lesson.public_id)
    step(us, public_id, lesson.public_id, "effective", "Seemed fine.")
    analyst = login_as("gb.an")
    url = f"/reviews/outcomes/{public_id}/{lesson.public_id}"
    response = analyst.post(url, data={"decision": "decline", "note": ""})
    assert response.status_code == 422
    assert "Reason is required." in text_of(response.get_data(as_text=True))
    assert analyst.post(url, data={"decision": "decline",
                                   "note": "One CPX is not enough."}).status_code == 302
    assert lesson_status(app, lesson.public_id) == "validated"
    assert link_row(app, public_id, lesson.public_id).confirmation == "declined"
    assert ("outcome_declined", "One CPX is not enough.") in [
        (r[0], r[2]) for r in audit_rows(app, lesson=lesson.public_id)]


def test_not_effective_keeps_the_lesson_open_and_starts_a_follow_up_within_its_rel_to(
        app, people, create, login_as, make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["USA"],
                         tags=["liaison"])
    public_id = create(starts_on=day(-1))
    client = login_as("gb.planner")
    attach(client, public_id, lesson.public_id)
    walk(client, public_id, lesson.public_id)
    assert step(client, public_id, lesson.public_id, "not_effective",
                "Accounts still took a week.").status_code == 302
    assert lesson_status(app, lesson.public_id) == "validated"
    page = client.get(f"/exercises/{public_id}").get_data(as_text=True)
    assert f"/lessons/new?from={lesson.public_id}&amp;exercise={public_id}" in page
    form = client.get(f"/lessons/new?from={lesson.public_id}&exercise={public_id}").get_data(
        as_text=True)
    assert f'value="Follow-up: {lesson_title(app, lesson.public_id)}"' in unescape(form)
    assert 'name="releasable_to" value="USA" checked' in form
    # Wider than the source's REL TO: refused, nothing stored.
    before = count(app, Lesson)
    data = form_data(title="Accounts still slow", releasable_to=["USA", "AUS"],
                     derived_from=lesson.public_id, exercise_id=public_id, action="save")
    response = client.post("/lessons/new", data=data)
    assert response.status_code == 422
    assert "At most the REL TO of the lesson this follows up" in text_of(
        response.get_data(as_text=True))
    assert count(app, Lesson) == before
    data.update(releasable_to=["USA"])
    response = client.post("/lessons/new", data=data)
    assert response.status_code == 302
    new_id = public_id_from(response.headers["Location"])
    with app.app_context():
        new = db.session.scalar(select(Lesson).where(Lesson.public_id == new_id))
        source = db.session.scalar(select(Lesson).where(Lesson.public_id == lesson.public_id))
        assert new.derived_from_id == source.id
        assert sorted(new.releasable_to) == ["GBR", "USA"]
        assert db.session.scalar(select(func.count()).select_from(LessonLink).where(
            LessonLink.lesson_id == new.id, LessonLink.linked_lesson_id == source.id)) == 1
        assert new.source_exercise.public_id == public_id
    observations = section(client.get(f"/exercises/{public_id}").get_data(as_text=True),
                           "observations")
    assert new_id in observations


def lesson_title(app, public_id: str) -> str:
    with app.app_context():
        return db.session.scalar(select(Lesson.title).where(Lesson.public_id == public_id))


def test_observations_written_from_the_exercise_page_link_back_to_it(app, people, create,
                                                                      login_as):
    public_id = create()
    client = login_as("au.planner")
    html = client.get(f"/exercises/{public_id}").get_data(as_text=True)
    assert f"/lessons/new?exercise={public_id}" in html
    form = client.get(f"/lessons/new?exercise={public_id}").get_data(as_text=True)
    assert 'value="Exercise SOUTHERN JACKAL 2027"' in form
    response = client.post("/lessons/new", data=form_data(
        title="Night resupply convoy got lost", exercise_id=public_id,
        source_event="", action="submit"))
    assert response.status_code == 302
    new_id = public_id_from(response.headers["Location"])
    lesson_page = client.get(f"/lessons/{new_id}").get_data(as_text=True)
    assert f'href="/exercises/{public_id}"' in lesson_page
    assert new_id in section(client.get(f"/exercises/{public_id}").get_data(as_text=True),
                             "observations")
    # A non-participant cannot name the exercise as a source.
    response = login_as("fr.planner").get(f"/lessons/new?exercise={public_id}")
    assert response.status_code in (403, 404)


def test_a_proposed_lesson_can_be_removed_but_an_incorporated_one_cannot(
        app, people, create, login_as, make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    public_id = create()
    client = login_as("gb.planner")
    attach(client, public_id, lesson.public_id)
    assert client.post(f"/exercises/{public_id}/lessons/{lesson.public_id}/remove") \
        .status_code == 302
    assert count(app, ExerciseLesson) == 0
    attach(client, public_id, lesson.public_id)
    walk(client, public_id, lesson.public_id)
    assert client.post(f"/exercises/{public_id}/lessons/{lesson.public_id}/remove") \
        .status_code == 409
    assert count(app, ExerciseLesson) == 1


def test_attach_by_tag_previews_then_attaches_only_the_ticked_lessons(
        app, people, create, login_as, make_lesson):
    one = make_lesson("gb.author", "validated", analyst="gb.an", tags=["liaison"])
    two = make_lesson("gb.author", "validated", analyst="gb.an", tags=["liaison"],
                      title="Second liaison lesson")
    submitted = make_lesson("gb.author", "submitted", tags=["liaison"])
    hidden = make_lesson("us.author", "validated", analyst="us.an", tags=["liaison"])
    public_id = create()
    client = login_as("gb.planner")
    html = client.get(f"/exercises/{public_id}/attach-by-tag?tag=Liaison").get_data(
        as_text=True)
    offered = re.findall(r'name="lesson_ids" value="([a-z0-9]{10})" checked', html)
    assert sorted(offered) == sorted([one.public_id, two.public_id])
    assert submitted.public_id not in html and hidden.public_id not in html
    assert count(app, ExerciseLesson) == 0  # the preview stores nothing
    response = client.post(f"/exercises/{public_id}/attach-by-tag", data={
        "tag": "liaison", "lesson_ids": [one.public_id, hidden.public_id],
        "purpose": "read_ahead", "objective": "", "milestone": "initial_planning_conference",
        "note": ""})
    assert response.status_code == 302
    assert link_row(app, public_id, one.public_id).status == "proposed"
    assert link_row(app, public_id, two.public_id) is None
    assert count(app, ExerciseLesson) == 1
    # The attached one is no longer offered.
    html = client.get(f"/exercises/{public_id}/attach-by-tag?tag=liaison").get_data(
        as_text=True)
    assert one.public_id not in html and two.public_id in html


# --- packets and release requests --------------------------------------------------------------
@pytest.fixture
def packet_setup(app, people, create, login_as, make_lesson):
    """An exercise of USA, GBR and AUS with two accepted lessons at the initial planning
    conference: one releasable to USA+GBR only, one to all three."""
    narrow = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["USA"],
                         title="Narrow: crypto keys arrived late")
    wide = make_lesson("gb.author", "validated", analyst="gb.an",
                       releasable_to=["USA", "AUS"], title="Wide: LNO accounts")
    public_id = create(planners="gb.planner, au.planner")
    gb = login_as("gb.planner")
    with app.app_context():
        exercise = db.session.scalar(select(Exercise).where(Exercise.public_id == public_id))
        objective = exercise.objectives[0].public_id
    for lesson in (narrow, wide):
        assert attach(gb, public_id, lesson.public_id, objective=objective).status_code == 302
        walk(gb, public_id, lesson.public_id, "accepted")
    return public_id, narrow.public_id, wide.public_id


def packet_ids(html: str) -> list[str]:
    return re.findall(r'class="packet-lesson" data-lesson="([a-z0-9]{10})"', html)


def test_packet_holds_only_lessons_releasable_to_the_whole_audience(app, login_as,
                                                                    packet_setup):
    public_id, narrow, wide = packet_setup
    gb = login_as("gb.planner")
    base = f"/exercises/{public_id}/packet?milestone=initial_planning_conference"
    html = gb.get(base + "&audience=USA&audience=GBR").get_data(as_text=True)
    assert sorted(packet_ids(html)) == sorted([narrow, wide])
    assert 'id="withheld"' not in html
    assert "UNCLASSIFIED // REL TO GBR, USA" in html
    html = gb.get(base).get_data(as_text=True)  # default audience: all participants
    assert packet_ids(html) == [wide]
    withheld = text_of(section(html, "withheld"))
    assert "1 attached lesson you can see is withheld: not releasable to AUS (1)" in " ".join(
        withheld.split())
    assert "Objective 1: Exchange liaison officers on day one" in text_of(html)
    assert html.count("UNCLASSIFIED // REL TO AUS, GBR, USA") >= 2  # top and bottom


def test_the_aus_planner_never_learns_of_the_lesson_not_released_to_aus(app, login_as,
                                                                        packet_setup):
    public_id, narrow, wide = packet_setup
    au = login_as("au.planner")
    base = f"/exercises/{public_id}/packet?milestone=initial_planning_conference"
    for audience in ("", "&audience=USA&audience=GBR", "&audience=USA,GBR,AUS"):
        html = au.get(base + audience).get_data(as_text=True)
        assert packet_ids(html) == [wide]
        assert narrow not in html and "Narrow" not in html and 'id="withheld"' not in html
        document = json.loads(au.get(base + audience + "&format=json").get_data(as_text=True))
        assert [item["id"] for item in document["lessons"]] == [wide]
        assert document["withheld"] == {"count": 0, "nations": {}}
    page = au.get(f"/exercises/{public_id}").get_data(as_text=True)
    assert narrow not in page and "Narrow" not in page
    counts = dict(re.findall(r'<li data-status="(\w+)"><strong>(\d+)</strong>', page))
    assert counts["accepted"] == "1"


def test_packet_downloads_match_the_page(app, login_as, packet_setup):
    public_id, narrow, wide = packet_setup
    gb = login_as("gb.planner")
    base = f"/exercises/{public_id}/packet?milestone=initial_planning_conference"
    response = gb.get(base + "&audience=GBR,USA,AUS&format=json")
    assert response.mimetype == "application/json"
    document = json.loads(response.get_data(as_text=True))
    assert document["audience"] == ["AUS", "GBR", "USA"]
    assert [item["id"] for item in document["lessons"]] == [wide]
    assert document["withheld"] == {"count": 1, "nations": {"AUS": 1}}
    item = document["lessons"][0]
    assert item["objective"]["text"] == "Exchange liaison officers on day one"
    assert item["observation"] and item["recommendation"]
    response = gb.get(base + "&audience=GBR,USA&format=csv")
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["# UNCLASSIFIED // REL TO GBR, USA"]
    header = rows[1]
    ids = sorted(row[header.index("id")] for row in rows[2:-1])
    assert ids == sorted([narrow, wide])


def test_an_audience_outside_the_participants_is_refused(app, login_as, packet_setup):
    public_id, _, _ = packet_setup
    response = login_as("gb.planner").get(f"/exercises/{public_id}/packet?audience=FRA")
    assert response.status_code == 422
    assert "Not participating: FRA" in text_of(response.get_data(as_text=True))
    response = login_as("gb.planner").get(f"/exercises/{public_id}/packet?milestone=nope")
    assert response.status_code == 404


def test_a_release_request_approved_puts_the_lesson_in_the_packet(app, login_as,
                                                                  packet_setup):
    public_id, narrow, wide = packet_setup
    gb = login_as("gb.planner")
    response = gb.post(f"/exercises/{public_id}/release-requests", data={
        "lesson_id": narrow, "nations": "AUS", "reason": "AUS runs the crypto cell",
        "milestone": "initial_planning_conference", "audience": "AUS,GBR,USA"})
    assert response.status_code == 302
    # A second request for the same lesson waits behind the first.
    again = gb.post(f"/exercises/{public_id}/release-requests",
                    data={"lesson_id": narrow, "nations": "AUS"})
    assert again.status_code == 422
    analyst = login_as("gb.an")
    review = analyst.get("/lessons?tab=review").get_data(as_text=True)
    assert "AUS runs the crypto cell" in text_of(section(review, "release-requests"))
    with app.app_context():
        request_id = db.session.scalar(select(ReleaseRequest.public_id))
    # Only the originator's analysts decide (a USA analyst sees the lesson: 403).
    assert login_as("us.an").post(f"/reviews/releases/{request_id}",
                                  data={"decision": "approve"}).status_code == 403
    assert analyst.post(f"/reviews/releases/{request_id}",
                        data={"decision": "approve"}).status_code == 302
    with app.app_context():
        lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == narrow))
        assert sorted(lesson.releasable_to) == ["AUS", "GBR", "USA"]
    html = login_as("au.planner").get(f"/exercises/{public_id}/packet?milestone="
                                      "initial_planning_conference").get_data(as_text=True)
    assert sorted(packet_ids(html)) == sorted([narrow, wide])
    lesson_actions = [row[0] for row in audit_rows(app, lesson=narrow)]
    assert "release_requested" in lesson_actions and "release_approved" in lesson_actions
    exercise_actions = [row[0] for row in audit_rows(app, exercise=public_id)]
    assert "release_requested" in exercise_actions and "release_approved" in exercise_actions


def test_a_release_request_declined_needs_a_reason_and_changes_nothing(app, login_as,
                                                                       packet_setup):
    public_id, narrow, _ = packet_setup
    login_as("gb.planner").post(f"/exercises/{public_id}/release-requests",
                                data={"lesson_id": narrow, "nations": "AUS"})
    with app.app_context():
        request_id = db.session.scalar(select(ReleaseRequest.public_id))
    analyst = login_as("gb.an")
    assert analyst.post(f"/reviews/releases/{request_id}",
                        data={"decision": "decline"}).status_code == 422
    assert analyst.post(f"/reviews/releases/{request_id}", data={
        "decision": "decline", "note": "Crypto details stay bilateral."}).status_code == 302
    with app.app_context():
        lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == narrow))
        assert sorted(lesson.releasable_to) == ["GBR", "USA"]
        assert db.session.scalar(select(ReleaseRequest.status)) == "declined"
    assert ("release_declined", "Declined adding AUS: Crypto details stay bilateral.") in [
        (r[0], r[2]) for r in audit_rows(app, lesson=narrow)]
    # Decided requests cannot be decided again.
    assert analyst.post(f"/reviews/releases/{request_id}",
                        data={"decision": "approve"}).status_code == 409


def test_archiving_a_lesson_declines_the_release_requests_waiting_on_it(app, login_as,
                                                                      packet_setup):
    """An archived lesson's REL TO no longer changes: its waiting requests leave the
    analysts' list, declined with the archive's reason, which the planners see."""
    public_id, narrow, _ = packet_setup
    login_as("gb.planner").post(f"/exercises/{public_id}/release-requests",
                                data={"lesson_id": narrow, "nations": "AUS"})
    analyst = login_as("gb.an")
    assert narrow in analyst.get("/lessons?tab=review").get_data(as_text=True)
    response = analyst.post(f"/lessons/{narrow}/transition",
                            data={"to": "archived", "note": "Superseded by the 2027 SOP."})
    assert response.status_code == 302
    with app.app_context():
        request = db.session.scalar(select(ReleaseRequest))
        assert (request.status, request.decision_note) == (
            "declined", "The lesson was archived: Superseded by the 2027 SOP.")
        assert request.decided_by.username == "gb.an"
    review = analyst.get("/lessons?tab=review").get_data(as_text=True)
    assert 'id="release-requests"' not in review or narrow not in section(
        review, "release-requests")
    assert ("release_declined", "AUS") in [(r[0], r[2]) for r in audit_rows(
        app, exercise=public_id)]
    page = login_as("gb.planner").get(f"/exercises/{public_id}").get_data(as_text=True)
    assert "The lesson was archived: Superseded by the 2027 SOP." in page


def test_only_planners_of_the_exercise_request_release(app, login_as, packet_setup):
    public_id, narrow, _ = packet_setup
    response = login_as("us.planner").post(f"/exercises/{public_id}/release-requests",
                                           data={"lesson_id": narrow, "nations": "AUS"})
    assert response.status_code == 403
    assert count(app, ReleaseRequest) == 0


# --- closing the loop ----------------------------------------------------------------------------
def test_the_loop_counts_validated_lessons_not_taken_up_by_any_upcoming_exercise(
        app, people, create, login_as, make_lesson):
    taken = make_lesson("gb.author", "validated", analyst="gb.an", title="Taken")
    waiting = make_lesson("gb.author", "validated", analyst="gb.an", title="Waiting")
    make_lesson("us.author", "validated", analyst="us.an", title="Another nation's")
    public_id = create()
    client = login_as("gb.planner")
    attach(client, public_id, taken.public_id)
    html = client.get(f"/exercises/{public_id}").get_data(as_text=True)
    loop = text_of(section(html, "loop"))
    assert "1 validated GBR lesson not yet taken up" in " ".join(loop.split())
    assert waiting.public_id in section(html, "loop")
    counts = dict(re.findall(r'<li data-status="(\w+)"><strong>(\d+)</strong>', html))
    assert counts == {"proposed": "1", "accepted": "0", "incorporated": "0", "effective": "0",
                      "not_effective": "0"}


def test_a_hidden_exercise_does_not_change_the_not_taken_up_figure(
        app, people, create, login_as, make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["FRA"])
    mine = create(nations=["GBR", "USA"])
    # A FRA-led exercise GBR does not take part in takes the lesson up.
    hidden = create("fr.planner", nations=["FRA"], lead_nation="FRA")
    assert attach(login_as("fr.planner"), hidden, lesson.public_id).status_code == 302
    html = login_as("gb.planner").get(f"/exercises/{mine}").get_data(as_text=True)
    assert "1 validated GBR lesson not yet taken up" in " ".join(
        text_of(section(html, "loop")).split())
    lesson_page = login_as("gb.an").get(f"/lessons/{lesson.public_id}").get_data(as_text=True)
    assert hidden not in lesson_page


def test_a_planner_attaches_from_search_results_and_from_the_lesson_page(
        app, people, create, login_as, make_lesson):
    found = make_lesson("gb.author", "validated", analyst="gb.an", **COUPLING_TEXT)
    public_id = create()
    client = login_as("gb.planner")
    html = client.get(f"/search?q=bowser&exercise={public_id}").get_data(as_text=True)
    assert f"/exercises/{public_id}/attach?lesson={found.public_id}" in html
    assert f'name="exercise" value="{public_id}"' in html  # kept for the next search
    # Without planning rights the search is plain.
    plain = login_as("gb.planner2").get(f"/search?q=bowser&exercise={public_id}").get_data(
        as_text=True)
    assert "/attach?lesson=" not in plain
    # The lesson page offers the exercises the user plans.
    page = client.get(f"/lessons/{found.public_id}").get_data(as_text=True)
    assert f'<option value="{public_id}">' in page
    response = client.get(f"/exercises/attach?exercise={public_id}&lesson={found.public_id}")
    assert response.headers["Location"].endswith(
        f"/exercises/{public_id}/attach?lesson={found.public_id}")
    assert attach(client, public_id, found.public_id).status_code == 302
    assert link_row(app, public_id, found.public_id).status == "proposed"


def test_exercise_visibility_in_python_and_sql_agree(app, people, create):
    """``can_view_exercise`` and the SQL filter ``visible_exercises`` are one rule."""
    from lessons import policy
    from lessons.models import User

    ids = [create(nations=["GBR", "USA"]), create(nations=["GBR"]),
           create("fr.planner", nations=["FRA", "AUS"], lead_nation="FRA")]
    with app.app_context():
        exercises = list(db.session.scalars(select(Exercise).where(Exercise.public_id.in_(ids))))
        assert len(exercises) == 3
        for user in db.session.scalars(select(User)):
            in_sql = set(db.session.scalars(select(Exercise.public_id).where(
                Exercise.public_id.in_(ids), policy.visible_exercises(user))))
            in_python = {e.public_id for e in exercises if policy.can_view_exercise(user, e)}
            assert in_sql == in_python, user.username
        assert not policy.can_view_exercise(None, exercises[0])


def test_a_second_save_of_an_exercise_over_a_newer_version_is_caught(app, people, create,
                                                                      login_as):
    public_id = create(planners="gb.planner, gb.planner2")
    first, second = login_as("gb.planner"), login_as("gb.planner2")
    path = f"/exercises/{public_id}/edit"
    assert 'name="version" type="hidden" value="1"' in first.get(path).get_data(as_text=True)
    common = {"planners": "gb.planner, gb.planner2", "version": "1"}
    assert first.post(path, data=exercise_form(location="Catterick", **common)
                      ).status_code == 302
    response = second.post(path, data=exercise_form(location="Otterburn", **common))
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "Someone else saved this exercise" in html and 'value="Otterburn"' in html
    assert 'name="version" type="hidden" value="2"' in html
    with app.app_context():
        assert db.session.scalar(select(Exercise.location).where(
            Exercise.public_id == public_id)) == "Catterick"
