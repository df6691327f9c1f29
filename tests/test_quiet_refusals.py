"""Quiet refusals: whatever a user may not see answers exactly like what does not exist
(same status, same message, same work), and nothing another nation hides can block
what a user may do.

The equal-cost 404 is checked structurally (the same SQL statements, in the same
order, for a hidden and a nonexistent lesson); the medians of 200 requests each are
printed (``pytest -s``) for a reader, not asserted: timings on a shared machine prove
nothing either way.
"""

from __future__ import annotations

import statistics
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import event, select

from lessons.extensions import db
from lessons.models import LessonLink, User
from lessons.rules import LINKS_MAX
from lessons.services import attachments, exercises
from lessons.services import lessons as lesson_service
from tests.test_exercises import exercise_form

MISSING = "ZZZZZZZZZZZZ"


@pytest.fixture
def people(make_user):
    make_user("gb.planner", "GBR", ("contributor", "planner"))
    make_user("us.planner", "USA", ("contributor", "planner"))
    make_user("fr.planner", "FRA", ("contributor", "planner"))
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("us.an", "USA", ("contributor", "analyst"))
    make_user("fr.an", "FRA", ("contributor", "analyst"))
    make_user("us.user", "USA", ("contributor",))


def user(name: str) -> User:
    return db.session.scalar(select(User).where(User.username == name))


def text(response) -> str:
    return response.get_data(as_text=True)


# --- the outcome review route -----------------------------------------------------------------
@pytest.fixture
def pending_outcome(app, people, make_lesson):
    """A GBR lesson, also releasable to USA and FRA, whose effective outcome a USA
    planner recorded in a GBR-USA exercise: it waits for a GBR analyst."""
    lesson = make_lesson("gb.author", "validated", analyst="gb.an",
                         releasable_to=["USA", "FRA"])
    soon = date.today() + timedelta(days=30)
    with app.app_context():
        exercise = exercises.create_exercise(user("gb.planner"), {
            "name": "Exercise QUIET HARE", "starts_on": date.today() - timedelta(days=1),
            "ends_on": soon,  # under way: outcomes allowed
            "nations": ["GBR", "USA"], "planners": ["us.planner"]})
        planner = user("us.planner")
        attachments.attach_lesson(planner, exercise.public_id, lesson.public_id,
                                  {"purpose": "inject"})
        for to in ("accepted", "incorporated", "effective"):
            attachments.update_link(planner, exercise.public_id, lesson.public_id, {}, to=to,
                                    evidence="Worked in the CPX.")
        return f"/reviews/outcomes/{exercise.public_id}/{lesson.public_id}"


def test_an_outcome_in_an_exercise_the_nation_is_not_part_of_answers_like_none(
        app, pending_outcome, login_as):
    outsider = login_as("fr.an")  # sees the lesson, not the exercise
    hidden = outsider.post(pending_outcome, data={"decision": "confirm"})
    exercise_id, lesson_id = pending_outcome.split("/")[-2:]
    missing = outsider.post(f"/reviews/outcomes/{MISSING}/{lesson_id}",
                            data={"decision": "confirm"})
    assert (hidden.status_code, missing.status_code) == (404, 404)
    assert text(hidden) == text(missing)
    # A participant who sees the outcome but may not decide it is told why.
    assert login_as("us.an").post(pending_outcome,
                                  data={"decision": "confirm"}).status_code == 403
    assert login_as("gb.an").post(pending_outcome, data={"decision": "confirm"}
                                  ).status_code == 302


# --- equal-cost 404 for lessons ------------------------------------------------------------
def statements_of(app, client, path: str) -> list[str]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get(path).status_code == 404
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def median_ms(client, path: str, runs: int = 200) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        client.get(path)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


@pytest.mark.parametrize("prefix", ["/lessons/", "/api/v1/lessons/"])
def test_a_hidden_lesson_and_a_missing_one_cost_the_same(app, people, make_lesson,
                                                        login_as, prefix):
    hidden = make_lesson("us.user", "draft").public_id  # only its author sees a draft
    not_released = make_lesson("us.user", "submitted", releasable_to=[]).public_id
    if prefix.startswith("/api/"):
        from lessons.services import tokens

        with app.app_context():
            secret = tokens.create_token(user("gb.author"), "probe")[1]
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    else:
        client = login_as("gb.author")
    for path in (prefix + hidden, prefix + not_released, prefix + MISSING):
        client.get(path)  # warm caches
    missing = statements_of(app, client, prefix + MISSING)
    assert statements_of(app, client, prefix + hidden) == missing
    assert statements_of(app, client, prefix + not_released) == missing
    assert text(client.get(prefix + hidden)) == text(client.get(prefix + MISSING))

    hidden_ms, missing_ms = median_ms(client, prefix + hidden), median_ms(client, prefix + MISSING)
    print(f"\n{prefix}: median 404 hidden {hidden_ms:.3f} ms, missing {missing_ms:.3f} ms")


# --- planner fields --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["nobody.here", "gb.author", "fr.planner"])
def test_a_planner_field_names_only_eligible_users_with_one_message(people, login_as, name):
    """Unknown, not a planner, or of a nation not taking part: one message, so the field
    tells nothing about who has an account, who plans, or their nation."""
    response = login_as("gb.planner").post("/exercises/new", data=exercise_form(
        nations=["GBR", "USA"], planners=f"gb.planner, {name}"))
    assert response.status_code == 422
    page = text(response)
    assert (f"Cannot be planners: {name}. A planner must be an active user with the planner "
            "role, of a nation taking part in the exercise.") in page
    for leak in ("no such user", "not a planner", "FRA does not take part"):
        assert leak not in page


# --- the link cap ----------------------------------------------------------------------------
def test_another_nations_private_links_do_not_block_a_lessons_editor(app, people, make_lesson,
                                                                     login_as):
    target = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["USA"])
    other = make_lesson("gb.author", "validated", analyst="gb.an", title="HF radios",
                        releasable_to=["USA"])
    drafts = [make_lesson("us.user", "draft", title=f"Private draft {n}").public_id
              for n in range(LINKS_MAX + 1)]
    with app.app_context():  # a USA author links 50 private drafts to the GBR lesson
        for public_id in drafts[:LINKS_MAX]:
            lesson_service.link_lessons(user("us.user"), public_id, target.public_id)
        assert db.session.query(LessonLink).count() == LINKS_MAX
    # Its editor still links it: the 50 are drafts they cannot see.
    response = login_as("gb.an").post(f"/lessons/{target.public_id}/links",
                                      data={"other": other.public_id})
    assert response.status_code == 302
    # USA has made its LINKS_MAX links to that lesson: a 51st is refused, nothing stored.
    response = login_as("us.user").post(f"/lessons/{drafts[-1]}/links",
                                        data={"other": target.public_id})
    assert response.status_code == 422
    assert f"Your nation has made {LINKS_MAX} links" in text(response)
    with app.app_context():
        assert db.session.query(LessonLink).count() == LINKS_MAX + 1


# --- an edit without its version -------------------------------------------------------------
def test_a_lesson_edit_posted_without_its_version_is_refused(app, people, make_lesson,
                                                             login_as):
    from tests.test_capture import form_data

    lesson = make_lesson("gb.author", "draft")
    client = login_as("gb.author")
    response = client.post(f"/lessons/{lesson.public_id}/edit",
                           data=form_data(title="Changed without a version"))
    assert response.status_code == 400
    assert "did not say which version" in text(response)
    with app.app_context():
        assert lesson_service.get_lesson(user("gb.author"), lesson.public_id).title != \
            "Changed without a version"
    response = client.post(f"/lessons/{lesson.public_id}/edit",
                           data=form_data(title="Changed with its version", version="1"))
    assert response.status_code == 302


def test_an_exercise_edit_posted_without_its_version_is_refused(app, people, login_as):
    client = login_as("gb.planner")
    created = client.post("/exercises/new", data=exercise_form(nations=["GBR"],
                                                                planners="gb.planner"))
    path = created.headers["Location"].split("?")[0] + "/edit"
    for version in (None, "", "one"):
        data = exercise_form(name="Renamed", nations=["GBR"], planners="gb.planner")
        if version is not None:
            data["version"] = version
        response = client.post(path, data=data)
        assert response.status_code == 400
        assert "did not say which version" in text(response)
    assert "Renamed" not in text(client.get(path.removesuffix("/edit")))
    assert client.post(path, data=exercise_form(name="Renamed", nations=["GBR"],
                                                planners="gb.planner", version="1")
                       ).status_code == 302
