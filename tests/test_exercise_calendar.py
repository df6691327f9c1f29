"""Exercise pages that follow the calendar: outcomes only from the exercise's start,
the confirm/decline action beside the outcome that waits for it, milestones in date
order, as many objectives as needed on the first form, planners picked by name from
the eligible ones, and the attach form saying when a lesson enters the packet.
Driven through HTTP as users would (and the API for the outcome rule)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from lessons.extensions import db
from lessons.models import Exercise, Lesson
from lessons.rules import OBJECTIVES_MAX
from tests.test_api import Api, assert_problem, token_for  # noqa: F401 - fixture
from tests.test_csrf import assert_refused, csrf_app, csrf_client, form_on  # noqa: F401 - fixtures
from tests.test_exercises import (
    attach,
    exercise_form,
    exercise_id_from,
    link_row,
    section,
    step,
    text_of,
    walk,
)

TODAY = date.today()


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


@pytest.fixture
def people(make_user):
    make_user("gb.planner", "GBR", ("contributor", "planner"), display_name="Gemma Bright")
    make_user("gb.planner2", "GBR", ("planner",), display_name="Gareth Penrose")
    make_user("gb.gone", "GBR", ("planner",), display_name="Gideon Gone", active=False)
    make_user("us.planner", "USA", ("contributor", "planner"), display_name="Uma Sterling")
    make_user("fr.planner", "FRA", ("planner",), display_name="Francine Lemaire")
    make_user("au.planner", "AUS", ("planner",), display_name="Alf Dundee")
    make_user("gb.an", "GBR", ("contributor", "analyst"), display_name="Grace Analyst")
    make_user("gb.author", "GBR", ("contributor",), display_name="Gordon Author")
    make_user("us.an", "USA", ("contributor", "analyst"), display_name="Ulysses Analyst")


@pytest.fixture
def create(login_as):
    def _create(planner: str = "gb.planner", **overrides: Any) -> str:
        response = login_as(planner).post("/exercises/new", data=exercise_form(**overrides))
        assert response.status_code == 302, response.get_data(as_text=True)[:3000]
        return exercise_id_from(response.headers["Location"])

    return _create


def incorporated(client, create, lesson_id: str, **overrides: Any) -> str:
    """An exercise (``overrides``) with ``lesson_id`` attached and incorporated."""
    public_id = create(**overrides)
    assert attach(client, public_id, lesson_id).status_code == 302
    walk(client, public_id, lesson_id)
    return public_id


def page_of(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


# --- outcomes only from the exercise's start ---------------------------------------------------
def test_an_upcoming_exercise_offers_no_outcome_and_says_when_it_will(
        app, people, create, login_as, make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    client = login_as("gb.planner")
    public_id = incorporated(client, create, lesson.public_id)  # starts in 60 days
    html = section(page_of(client, f"/exercises/{public_id}"), "lessons")
    assert "Record: effective" not in html and "Record: not effective" not in html
    assert f"Outcomes can be recorded from {day(60)}, when the exercise starts" in text_of(html)


def test_an_outcome_before_the_start_is_refused_on_the_page_and_changes_nothing(
        app, people, create, login_as, make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    client = login_as("gb.planner")
    public_id = incorporated(client, create, lesson.public_id)
    for outcome in ("effective", "not_effective"):
        response = step(client, public_id, lesson.public_id, outcome, "It worked.")
        assert response.status_code == 409
        assert (f"The exercise starts on {day(60)}; an outcome can be recorded only from "
                "then") in text_of(response.get_data(as_text=True))
    link = link_row(app, public_id, lesson.public_id)
    assert (link.status, link.evidence, link.confirmation) == ("incorporated", "", "")
    with app.app_context():
        assert db.session.scalar(select(Lesson.status).where(
            Lesson.public_id == lesson.public_id)) == "validated"


def api_as(request, username: str) -> Api:
    return Api(request.getfixturevalue("app").test_client(),
               request.getfixturevalue("token_for")(username))


def patch_link(api: Api, path: str, body: dict):
    """A PATCH as a careful script sends it: with the link's current ETag."""
    etag = api.get(path).headers["ETag"]
    return api.patch(path, body, headers={"If-Match": etag})


def test_an_outcome_before_the_start_is_refused_through_the_api(
        app, people, create, login_as, make_lesson, request):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    public_id = incorporated(login_as("gb.planner"), create, lesson.public_id)
    api = api_as(request, "gb.planner")
    path = f"/exercises/{public_id}/lessons/{lesson.public_id}"
    response = patch_link(api, path, {"status": "effective", "evidence": "It worked."})
    assert_problem(response, 409, f"The exercise starts on {day(60)}")
    assert link_row(app, public_id, lesson.public_id).status == "incorporated"


def test_from_the_start_day_the_outcome_is_offered_and_recorded(
        app, people, create, login_as, make_lesson, request):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    other = make_lesson("gb.author", "validated", analyst="gb.an")
    client = login_as("gb.planner")
    public_id = incorporated(client, create, lesson.public_id, starts_on=day(0),
                             ends_on=day(5))
    html = section(page_of(client, f"/exercises/{public_id}"), "lessons")
    assert "Record: effective" in html and "Record: not effective" in html
    assert step(client, public_id, lesson.public_id, "effective", "Worked.").status_code == 302
    assert link_row(app, public_id, lesson.public_id).status == "effective"
    # The API accepts it too, once the exercise has started.
    attach(client, public_id, other.public_id)
    walk(client, public_id, other.public_id)
    api = api_as(request, "gb.planner")
    response = patch_link(api, f"/exercises/{public_id}/lessons/{other.public_id}",
                          {"status": "not_effective", "evidence": "Did not help."})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["status"] == "not_effective"


# --- the decider's action where the page says who decides ----------------------------------
@pytest.fixture
def waiting(app, people, create, login_as, make_lesson) -> tuple[str, str]:
    """A GBR lesson whose effective outcome a USA planner recorded in a past GBR-USA
    exercise: it waits for a GBR analyst."""
    lesson = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["USA"])
    public_id = create(nations=["GBR", "USA"], planners="gb.planner, us.planner",
                       starts_on=day(-10), ends_on=day(-5))
    us = login_as("us.planner")
    attach(us, public_id, lesson.public_id)
    walk(us, public_id, lesson.public_id)
    assert step(us, public_id, lesson.public_id, "effective", "Worked.").status_code == 302
    assert link_row(app, public_id, lesson.public_id).confirmation == "pending"
    return public_id, lesson.public_id


def test_the_originator_analyst_confirms_right_on_the_exercise_page(app, waiting, login_as):
    public_id, lesson_id = waiting
    analyst = login_as("gb.an")
    item = section(page_of(analyst, f"/exercises/{public_id}"), "lessons")
    assert "awaiting confirmation by a GBR analyst" in text_of(item)
    action = f"/reviews/outcomes/{public_id}/{lesson_id}"
    assert f'action="{action}"' in item
    assert 'value="confirm"' in item and 'value="decline"' in item
    response = analyst.post(action, data={"decision": "confirm", "note": "Agreed."})
    assert response.status_code == 302
    link = link_row(app, public_id, lesson_id)
    assert link.confirmation == "confirmed"
    with app.app_context():
        assert db.session.scalar(select(Lesson.status).where(
            Lesson.public_id == lesson_id)) == "learned"
    # Decided: the action is gone from the page.
    assert f'action="{action}"' not in page_of(analyst, f"/exercises/{public_id}")


def test_the_analyst_declines_from_the_exercise_page_with_a_reason(app, waiting, login_as):
    public_id, lesson_id = waiting
    analyst = login_as("gb.an")
    action = f"/reviews/outcomes/{public_id}/{lesson_id}"
    assert f'action="{action}"' in page_of(analyst, f"/exercises/{public_id}")
    response = analyst.post(action, data={"decision": "decline", "note": ""})
    assert response.status_code == 422
    assert analyst.post(action, data={"decision": "decline",
                                      "note": "One exercise is not enough."}).status_code == 302
    assert link_row(app, public_id, lesson_id).confirmation == "declined"


@pytest.mark.parametrize("viewer", ["us.planner", "us.an", "gb.planner", "gb.author"])
def test_others_see_who_must_act_and_no_action(waiting, login_as, viewer):
    public_id, lesson_id = waiting
    item = section(page_of(login_as(viewer), f"/exercises/{public_id}"), "lessons")
    assert "/reviews/outcomes/" not in item
    assert "An analyst of GBR must confirm or decline it" in text_of(item)


def test_a_confirm_form_on_the_page_without_csrf_token_is_refused(app, waiting, request):
    public_id, lesson_id = waiting
    client = request.getfixturevalue("csrf_client")("gb.an")
    action = f"/reviews/outcomes/{public_id}/{lesson_id}"
    form = form_on(client.get(f"/exercises/{public_id}").text, action)
    assert_refused(client.post(action, data=form.data(token=False, decision="confirm")))
    assert link_row(app, public_id, lesson_id).confirmation == "pending"
    assert client.post(action, data=form.data(decision="confirm")).status_code == 302
    assert link_row(app, public_id, lesson_id).confirmation == "confirmed"


# --- milestones in date order -------------------------------------------------------------------
def test_milestones_show_in_date_order_standard_and_custom_together(
        app, people, login_as, make_lesson):
    client = login_as("gb.planner")
    response = client.post("/exercises/new", data=exercise_form(**{
        "custom_milestones-0-name": "Site survey", "custom_milestones-0-due_on": day(20),
        "custom_milestones-1-name": "Rehearsal", "custom_milestones-1-due_on": day(5)}))
    assert response.status_code == 302
    public_id = exercise_id_from(response.headers["Location"])
    expected = ["Concept development", "Rehearsal", "Initial planning conference",
                "Site survey", "Main planning conference", "Final planning conference",
                "Execution", "After action review"]

    def order(text: str) -> list[int]:
        return [text.index(label) for label in expected]

    table = text_of(re.search(r'<table class="milestones">(.*?)</table>',
                              page_of(client, f"/exercises/{public_id}"), re.S).group(1))
    assert order(table) == sorted(order(table))
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    attach_page = page_of(client, f"/exercises/{public_id}/attach?lesson={lesson.public_id}")
    select_html = re.search(r'<select[^>]*name="milestone".*?</select>', attach_page, re.S)
    options = text_of(select_html.group(0))
    assert order(options) == sorted(order(options))
    # The edit form lists custom milestones by date too.
    edit = page_of(client, f"/exercises/{public_id}/edit")
    assert edit.index('value="rehearsal"') < edit.index('value="site_survey"')


# --- as many objectives as needed on the first form ----------------------------------------------
def test_add_another_objective_without_javascript_keeps_input_and_saves_nothing(
        app, people, login_as):
    client = login_as("gb.planner")
    data = exercise_form(**{"objectives-2-text": "Third objective", "add_objective": "1"})
    response = client.post("/exercises/new", data=data)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Exercise)) == 0
    assert 'name="objectives-3-text"' in html and 'name="objectives-4-text"' not in html
    assert "Exchange liaison officers on day one" in html and "Third objective" in html
    assert 'value="Salisbury Plain"' in html
    assert "Nothing was saved" not in html and 'class="error"' not in html


def test_a_planner_creates_an_exercise_with_more_than_three_objectives(app, people, login_as):
    client = login_as("gb.planner")
    texts = [f"Objective number {n}" for n in range(1, 8)]
    data = exercise_form(**{f"objectives-{i}-text": t for i, t in enumerate(texts)},
                         **{f"objectives-{i}-id": "" for i in range(len(texts))})
    response = client.post("/exercises/new", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    with app.app_context():
        exercise = db.session.scalar(select(Exercise))
        assert [o.text for o in exercise.objectives] == texts


def test_the_form_offers_the_add_button_and_its_script_up_to_the_limit(app, people, login_as):
    client = login_as("gb.planner")
    html = page_of(client, "/exercises/new")
    assert 'name="add_objective"' in html and "exercise-form.js" in html
    script = client.get("/static/js/exercise-form.js")
    assert script.status_code == 200 and "add_objective" in script.get_data(as_text=True)
    script.close()
    full = exercise_form(**{f"objectives-{i}-text": f"O{i}" for i in range(OBJECTIVES_MAX)},
                         **{f"objectives-{i}-id": "" for i in range(OBJECTIVES_MAX)},
                         add_objective="1")
    html = client.post("/exercises/new", data=full).get_data(as_text=True)
    assert f'name="objectives-{OBJECTIVES_MAX}-text"' not in html
    assert 'name="add_objective"' not in html
    assert f"At most {OBJECTIVES_MAX} objectives" in text_of(html)
    over = exercise_form(**{f"objectives-{i}-text": f"O{i}" for i in range(OBJECTIVES_MAX + 1)},
                         **{f"objectives-{i}-id": "" for i in range(OBJECTIVES_MAX + 1)})
    response = client.post("/exercises/new", data=over)
    assert response.status_code == 422
    assert f"At most {OBJECTIVES_MAX} objectives." in text_of(response.get_data(as_text=True))


def test_add_another_objective_without_token_is_refused(app, people, request):
    client = request.getfixturevalue("csrf_client")("gb.planner")
    form = form_on(client.get("/exercises/new").text)
    response = client.post("/exercises/new", data=form.data(token=False, add_objective="1"))
    assert_refused(response)
    response = client.post("/exercises/new", data=form.data(add_objective="1"))
    assert response.status_code == 200
    assert 'name="objectives-3-text"' in response.get_data(as_text=True)


# --- planners picked by name ----------------------------------------------------------------------
def planner_choices(html: str) -> dict[str, str]:
    """Username -> label text of the planner checkboxes on a form."""
    block = re.search(r'<fieldset[^>]*id="planners"[^>]*>(.*?)</fieldset>', html, re.S)
    assert block, "no planner picker"
    return {m.group(1): text_of(m.group(2)).strip() for m in re.finditer(
        r'<label><input[^>]*name="planners"[^>]*value="([^"]+)"[^>]*>(.*?)</label>',
        block.group(1), re.S)}


def test_the_new_form_offers_eligible_planners_by_name(app, people, login_as):
    client = login_as("gb.planner")
    choices = planner_choices(page_of(client, "/exercises/new"))
    assert choices == {"gb.planner": "Gemma Bright (GBR)", "gb.planner2": "Gareth Penrose (GBR)"}
    response = client.post("/exercises/new", data=exercise_form(planners=["gb.planner2"]))
    assert response.status_code == 302
    with app.app_context():
        assert [p.username for p in db.session.scalar(select(Exercise)).planners] == [
            "gb.planner", "gb.planner2"]


def test_the_picker_follows_the_nations_typed_without_saving(app, people, login_as):
    client = login_as("gb.planner")
    response = client.post("/exercises/new", data=exercise_form(
        nations=["GBR", "USA"], refresh_planners="1"))
    assert response.status_code == 200
    choices = planner_choices(response.get_data(as_text=True))
    assert set(choices) == {"gb.planner", "gb.planner2", "us.planner"}
    assert choices["us.planner"] == "Uma Sterling (USA)"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Exercise)) == 0


def test_the_edit_form_offers_the_participants_planners_with_the_chosen_ticked(
        app, people, create, login_as):
    public_id = create(nations=["GBR", "USA"], planners="gb.planner, us.planner")
    client = login_as("gb.planner")
    html = page_of(client, f"/exercises/{public_id}/edit")
    choices = planner_choices(html)
    assert set(choices) == {"gb.planner", "gb.planner2", "us.planner"}
    assert re.search(r'<input[^>]*checked[^>]*value="us.planner"|'
                     r'<input[^>]*value="us.planner"[^>]*checked', html)
    assert not re.search(r'<input[^>]*value="gb.planner2"[^>]*checked', html)
    data = exercise_form(nations=["GBR", "USA"], planners=["gb.planner", "gb.planner2"],
                         version="1")
    assert client.post(f"/exercises/{public_id}/edit", data=data).status_code == 302
    with app.app_context():
        assert [p.username for p in db.session.scalar(select(Exercise)).planners] == [
            "gb.planner", "gb.planner2"]


@pytest.mark.parametrize("path", ["new", "edit", "refresh"])
def test_the_picker_never_lists_users_outside_the_partners_or_not_eligible(
        app, people, create, login_as, path):
    public_id = create(nations=["GBR", "USA"], planners="gb.planner")
    client = login_as("gb.planner")
    if path == "new":
        html = page_of(client, "/exercises/new")
    elif path == "edit":
        html = page_of(client, f"/exercises/{public_id}/edit")
    else:
        html = client.post("/exercises/new", data=exercise_form(
            nations=["GBR", "USA"], refresh_planners="1")).get_data(as_text=True)
    picker = re.search(r'<fieldset[^>]*id="planners"[^>]*>(.*?)</fieldset>', html, re.S)
    for name in ("fr.planner", "Francine", "au.planner", "Alf Dundee", "gb.gone", "Gideon",
                 "gb.author", "Gordon", "gb.an", "us.an"):
        assert name not in picker.group(1), name
    assert "Francine" not in html and "Alf Dundee" not in html and "Gideon" not in html


def test_an_ineligible_planner_posted_by_hand_still_gets_the_one_message(app, people, login_as):
    response = login_as("gb.planner").post("/exercises/new", data=exercise_form(
        nations=["GBR", "USA"], planners=["gb.planner2", "fr.planner"]))
    assert response.status_code == 422
    assert "Cannot be planners: fr.planner. A planner must be an active user with the " \
           "planner role" in text_of(response.get_data(as_text=True))


def test_the_planner_list_of_a_hidden_exercise_is_not_found(app, people, create, login_as):
    public_id = create("fr.planner", nations=["FRA"], lead_nation="FRA", planners="")
    assert login_as("gb.planner").get(f"/exercises/{public_id}/edit").status_code == 404


# --- the attach form says when a lesson enters the packet ----------------------------------
def test_the_attach_form_says_when_a_lesson_enters_the_packet(
        app, people, create, login_as, make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an",
                         releasable_to=["USA", "AUS"])
    public_id = create()
    client = login_as("gb.planner")
    page = text_of(page_of(client, f"/exercises/{public_id}/attach?lesson={lesson.public_id}"))
    assert ("It enters the read-ahead packet of the milestone chosen below once a planner "
            "marks it accepted") in page
    assert "releasable to every nation of the packet's audience" in page
    response = attach(client, public_id, lesson.public_id)
    assert response.status_code == 302
    flashed = text_of(page_of(client, f"/exercises/{public_id}"))
    assert "It enters the Initial planning conference read-ahead packet once a planner marks " \
           "it accepted." in flashed
    # And so it does: absent while proposed, in the packet once accepted.
    packet = f"/exercises/{public_id}/packet?milestone=initial_planning_conference"
    assert f'data-lesson="{lesson.public_id}"' not in page_of(client, packet)
    assert step(client, public_id, lesson.public_id, "accepted").status_code == 302
    assert f'data-lesson="{lesson.public_id}"' in page_of(client, packet)


def test_the_lessons_author_is_not_offered_the_decision_on_their_own_lesson(
        app, people, make_user, create, login_as, make_lesson):
    """Separation of duties: an analyst who wrote the lesson sees who must act instead."""
    make_user("gb.an2", "GBR", ("analyst",), display_name="Second Analyst")
    lesson = make_lesson("gb.an", "validated", analyst="gb.an2", releasable_to=["USA"])
    public_id = create(nations=["GBR", "USA"], planners="gb.planner, us.planner",
                       starts_on=day(-3))
    us = login_as("us.planner")
    attach(us, public_id, lesson.public_id)
    walk(us, public_id, lesson.public_id)
    assert step(us, public_id, lesson.public_id, "effective", "Worked.").status_code == 302
    action = f'action="/reviews/outcomes/{public_id}/{lesson.public_id}"'
    own = section(page_of(login_as("gb.an"), f"/exercises/{public_id}"), "lessons")
    assert action not in own and "An analyst of GBR must confirm or decline it" in text_of(own)
    assert action in page_of(login_as("gb.an2"), f"/exercises/{public_id}")


def test_the_edit_form_adds_an_objective_box_without_saving(app, people, create, login_as):
    public_id = create()
    client = login_as("gb.planner")
    data = exercise_form(version="1", **{"objectives-0-text": "Reworded, not yet saved",
                                         "add_objective": "1"})
    response = client.post(f"/exercises/{public_id}/edit", data=data)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'name="objectives-3-text"' in html and "Reworded, not yet saved" in html
    assert re.search(r'<input[^>]*name="version"[^>]*value="1"', html)  # still the base
    with app.app_context():
        exercise = db.session.scalar(select(Exercise))
        assert exercise.version == 1
        assert exercise.objectives[0].text == "Exchange liaison officers on day one"
