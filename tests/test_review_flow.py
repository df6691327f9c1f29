"""Review that flows: separation of duties (nobody validates, rejects or confirms the
outcome of a lesson they wrote, save where SELF_REVIEW_NATIONS allows it, audited as
such), the review actions at the top of the lesson page, validation with an optional
note and a wider REL TO in the same step, and "next to review" after each decision;
through the pages and the API alike.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from lessons.extensions import db
from lessons.models import AuditRecord, ExerciseLesson, Lesson
from tests.test_csrf import FormParser, csrf_app, csrf_client, form_on  # noqa: F401 - fixtures
from tests.test_exercises import attach, create, day, step, walk  # noqa: F401 - fixtures


@pytest.fixture
def people(make_user):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("gb.an2", "GBR", ("contributor", "analyst"))
    make_user("us.an", "USA", ("contributor", "analyst"))
    make_user("us.author", "USA", ("contributor",))
    make_user("gb.planner", "GBR", ("contributor", "planner"))
    make_user("us.planner", "USA", ("contributor", "planner"))


@pytest.fixture
def token_for(app):
    from lessons.models import User
    from lessons.services import tokens

    def _token(username: str) -> str:
        with app.app_context():
            user = db.session.scalar(select(User).where(User.username == username))
            return tokens.create_token(user, f"review {username}")[1]

    return _token


def api_move(app, token: str, public_id: str, body: dict):
    return app.test_client().post(f"/api/v1/lessons/{public_id}/transitions", json=body,
                                  headers={"Authorization": f"Bearer {token}"})


def move(client, public_id: str, to: str, note: str = "", **extra):
    return client.post(f"/lessons/{public_id}/transition", data={"to": to, "note": note,
                                                                 **extra})


def row(app, public_id: str) -> tuple[str, int, list[str]]:
    with app.app_context():
        lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == public_id))
        return lesson.status, lesson.version, sorted(lesson.releasable_to)


def audits(app, public_id: str) -> list[AuditRecord]:
    with app.app_context():
        entries = db.session.scalars(
            select(AuditRecord).join(Lesson, AuditRecord.lesson_id == Lesson.id)
            .where(Lesson.public_id == public_id).order_by(AuditRecord.id)).all()
        for entry in entries:
            db.session.expunge(entry)
        return list(entries)


def text_of(html: str) -> str:
    return unescape(" ".join(re.sub(r"<[^>]+>", " ", html).split()))


def flashes(client) -> str:
    """The flash messages the next page shows (read off any page)."""
    with client.session_transaction() as session:
        return " ".join(message for _, message in session.get("_flashes", []))


def location(response) -> str:
    return urlsplit(response.headers["Location"]).path + (
        "?" + urlsplit(response.headers["Location"]).query
        if urlsplit(response.headers["Location"]).query else "")


# --- separation of duties ------------------------------------------------------------------
def test_an_analyst_may_not_validate_or_reject_their_own_lesson_on_the_page(
        app, people, login_as, make_lesson):
    lesson = make_lesson("gb.an2", "submitted")
    own = login_as("gb.an2")
    page = own.get(f"/lessons/{lesson.public_id}").text
    assert 'data-to="validated"' not in page and 'data-to="rejected"' not in page
    assert "You wrote this lesson, so another analyst of GBR reviews it." in text_of(page)
    for to, note in (("validated", ""), ("rejected", "Not mine to judge.")):
        response = move(own, lesson.public_id, to, note)
        assert response.status_code == 403
        assert "You wrote this lesson" in text_of(response.text)
        assert "separation of duties" in text_of(response.text)
    assert row(app, lesson.public_id)[:2] == ("submitted", lesson.version)
    # Another analyst of the nation may.
    response = move(login_as("gb.an"), lesson.public_id, "validated")
    assert response.status_code == 302
    assert row(app, lesson.public_id)[0] == "validated"


def test_the_api_refuses_the_author_s_own_review_with_403(app, people, make_lesson,
                                                         token_for):
    lesson = make_lesson("gb.an2", "submitted")
    token = token_for("gb.an2")
    for body in ({"to": "validated"}, {"to": "rejected", "reason": "Mine."},
                 {"to": "validated", "note": "Fine.", "releasable_to": ["GBR", "USA"]}):
        response = api_move(app, token, lesson.public_id, body)
        assert response.status_code == 403, response.text
        assert response.content_type == "application/problem+json"
        assert "separation of duties" in response.json["detail"]
    assert row(app, lesson.public_id) == ("submitted", lesson.version, ["GBR"])
    assert api_move(app, token_for("gb.an"), lesson.public_id,
                    {"to": "validated"}).status_code == 200


def test_own_lessons_stay_out_of_the_analyst_s_review_list(app, people, login_as,
                                                          make_lesson):
    own = make_lesson("gb.an2", "submitted", title="My own observation")
    other = make_lesson("gb.author", "submitted", title="Someone else's observation")
    listing = login_as("gb.an2").get("/lessons?tab=review").text
    assert other.public_id in listing and own.public_id not in listing
    assert own.public_id in login_as("gb.an").get("/lessons?tab=review").text


@pytest.fixture
def pending_outcome(app, people, create, login_as, make_lesson):  # noqa: F811
    """A lesson written by GBR analyst gb.an2 (validated by gb.an), whose effective
    outcome a USA planner recorded: it waits for a GBR analyst."""
    lesson = make_lesson("gb.an2", "validated", analyst="gb.an", releasable_to=["USA"])
    exercise = create(planners="gb.planner, us.planner", starts_on=day(-1))
    us = login_as("us.planner")
    attach(us, exercise, lesson.public_id)
    walk(us, exercise, lesson.public_id)
    assert step(us, exercise, lesson.public_id, "effective", "Worked.").status_code == 302
    return exercise, lesson.public_id


def confirmation(app, lesson_id: str) -> str:
    with app.app_context():
        return db.session.scalar(select(ExerciseLesson.confirmation).join(
            Lesson, ExerciseLesson.lesson_id == Lesson.id).where(Lesson.public_id == lesson_id))


def test_the_author_may_not_confirm_the_outcome_of_their_own_lesson(app, pending_outcome,
                                                                    login_as):
    exercise, lesson_id = pending_outcome
    author = login_as("gb.an2")
    assert lesson_id not in author.get("/lessons?tab=review").text
    url = f"/reviews/outcomes/{exercise}/{lesson_id}"
    for decision in ("confirm", "decline"):
        response = author.post(url, data={"decision": decision, "note": "Looks right."})
        assert response.status_code == 403
        assert "confirm the exercise outcome" in text_of(response.text)
    assert confirmation(app, lesson_id) == "pending"
    assert row(app, lesson_id)[0] == "validated"
    other = login_as("gb.an")
    assert lesson_id in other.get("/lessons?tab=review").text
    assert other.post(url, data={"decision": "confirm"}).status_code == 302
    assert (confirmation(app, lesson_id), row(app, lesson_id)[0]) == ("confirmed", "learned")


def test_the_author_s_own_effective_outcome_waits_for_another_analyst(
        app, people, create, login_as, make_lesson):  # noqa: F811
    lesson = make_lesson("gb.planner", "validated", analyst="gb.an")
    exercise = create(planners="gb.planner", starts_on=day(-1))
    planner = login_as("gb.planner")
    attach(planner, exercise, lesson.public_id)
    walk(planner, exercise, lesson.public_id)
    assert step(planner, exercise, lesson.public_id, "effective", "Worked.").status_code == 302
    assert (confirmation(app, lesson.public_id), row(app, lesson.public_id)[0]) == (
        "pending", "validated")


def test_a_nation_in_self_review_nations_may_review_its_own_lessons_audited_as_such(
        app, people, login_as, make_lesson, token_for):
    app.config["SELF_REVIEW_NATIONS"] = ["GBR"]
    lesson = make_lesson("gb.an2", "submitted")
    own = login_as("gb.an2")
    page = own.get(f"/lessons/{lesson.public_id}").text
    assert 'data-to="validated"' in page
    assert move(own, lesson.public_id, "validated", "Only analyst here.").status_code == 302
    last = audits(app, lesson.public_id)[-1]
    assert (last.action, last.comment) == (
        "validated", "(self-review allowed for GBR) Only analyst here.")
    assert "self-review allowed for GBR" in text_of(own.get(f"/lessons/{lesson.public_id}").text)
    # The API too; another nation's own lessons stay refused.
    second = make_lesson("gb.an2", "submitted")
    response = api_move(app, token_for("gb.an2"), second.public_id,
                        {"to": "rejected", "reason": "Duplicate."})
    assert response.status_code == 200
    assert audits(app, second.public_id)[-1].comment == (
        "(self-review allowed for GBR) Duplicate.")
    usa = make_lesson("us.an", "submitted")
    assert move(login_as("us.an"), usa.public_id, "validated").status_code == 403


def test_a_self_review_nation_confirms_its_own_outcome_audited(app, pending_outcome,
                                                              login_as):
    app.config["SELF_REVIEW_NATIONS"] = ["GBR"]
    exercise, lesson_id = pending_outcome
    response = login_as("gb.an2").post(f"/reviews/outcomes/{exercise}/{lesson_id}",
                                       data={"decision": "confirm", "note": "Seen it."})
    assert response.status_code == 302
    assert ("outcome_confirmed", "(self-review allowed for GBR) Seen it.") in [
        (entry.action, entry.comment) for entry in audits(app, lesson_id)]


def test_self_review_nations_is_read_from_the_environment():
    """In a fresh interpreter, as ``config.py`` reads the environment once at import."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    def read(value: str | None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "MUSTER_SELF_REVIEW_NATIONS"}
        if value is not None:
            env["MUSTER_SELF_REVIEW_NATIONS"] = value
        return subprocess.run(
            [sys.executable, "-c", "from config import Config; "
             "print(','.join(Config.SELF_REVIEW_NATIONS))"],
            cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True,
            text=True, check=True).stdout.strip()

    assert read("nzl, ISL") == "NZL,ISL"
    assert read(None) == ""


# --- validate with a note and a wider REL TO ----------------------------------------------------
def test_validate_with_a_note_and_a_wider_rel_to_is_one_audited_version(app, people,
                                                                         login_as,
                                                                         make_lesson):
    lesson = make_lesson("gb.author", "submitted")
    before = len(audits(app, lesson.public_id))
    analyst = login_as("gb.an")
    response = move(analyst, lesson.public_id, "validated", "  Checked with G6.  ",
                    widen="1", releasable_to=["GBR", "USA"])
    assert response.status_code == 302
    assert row(app, lesson.public_id) == ("validated", lesson.version + 1, ["GBR", "USA"])
    entries = audits(app, lesson.public_id)
    assert len(entries) == before + 1
    last = entries[-1]
    assert (last.action, last.comment, last.changes, last.version) == (
        "validated", "Checked with G6.", ["releasable_to"], lesson.version + 1)
    page = text_of(analyst.get(f"/lessons/{lesson.public_id}").text)
    assert "Checked with G6." in page and "releasable_to" in page
    # A USA user now sees it.
    assert login_as("us.author").get(f"/lessons/{lesson.public_id}").status_code == 200


def test_validate_without_rel_to_choices_keeps_rel_to(app, people, login_as, make_lesson):
    lesson = make_lesson("gb.author", "submitted", releasable_to=["USA"])
    assert move(login_as("gb.an"), lesson.public_id, "validated").status_code == 302
    assert row(app, lesson.public_id) == ("validated", lesson.version + 1, ["GBR", "USA"])
    assert audits(app, lesson.public_id)[-1].comment == ""


def test_the_validate_form_is_prefilled_with_the_current_rel_to(app, people, login_as,
                                                                make_lesson):
    lesson = make_lesson("gb.author", "submitted", releasable_to=["USA", "FRA"])
    page = login_as("gb.an").get(f"/lessons/{lesson.public_id}").text
    parser = FormParser()
    parser.feed(page)
    form = next(f for f in parser.forms if f.value("to") == "validated")
    chosen = [value for key, value in form.fields if key == "releasable_to" and value]
    assert sorted(", ".join(chosen).replace(" ", "").split(",")) == ["FRA", "USA"]
    assert form.value("widen") == "1"


def test_narrowing_rel_to_while_validating_is_refused(app, people, login_as, make_lesson,
                                                      token_for):
    lesson = make_lesson("gb.author", "submitted", releasable_to=["USA", "AUS"])
    response = move(login_as("gb.an"), lesson.public_id, "validated", "Fine.", widen="1",
                    releasable_to=["USA"])
    assert response.status_code == 422
    message = text_of(response.text)
    assert "Validating can only widen REL TO; it would remove AUS." in message
    assert "edit the lesson" in message
    assert row(app, lesson.public_id) == ("submitted", lesson.version, ["AUS", "GBR", "USA"])
    # Every box unticked is a narrowing too.
    assert move(login_as("gb.an"), lesson.public_id, "validated",
                widen="1").status_code == 422
    # The API: same rule, same message.
    response = api_move(app, token_for("gb.an"), lesson.public_id,
                        {"to": "validated", "releasable_to": ["GBR"]})
    assert response.status_code == 422
    assert "only widen" in response.text
    assert row(app, lesson.public_id) == ("submitted", lesson.version, ["AUS", "GBR", "USA"])


def test_rel_to_comes_with_validation_only_and_known_codes_only(app, people, make_lesson,
                                                                token_for):
    lesson = make_lesson("gb.author", "submitted")
    token = token_for("gb.an")
    response = api_move(app, token, lesson.public_id,
                        {"to": "rejected", "reason": "No.", "releasable_to": ["USA"]})
    assert response.status_code == 422 and "validation only" in response.text
    response = api_move(app, token, lesson.public_id,
                        {"to": "validated", "releasable_to": ["GBR", "ZZZ"]})
    assert response.status_code == 422 and "Unknown nation or group: ZZZ" in response.text
    assert row(app, lesson.public_id) == ("submitted", lesson.version, ["GBR"])
    response = api_move(app, token, lesson.public_id,
                        {"to": "validated", "note": "Wider.", "releasable_to": ["FVEY"]})
    assert response.status_code == 200
    assert response.json["releasable_to"] == ["AUS", "CAN", "GBR", "NZL", "USA"]
    assert response.json["version"] == lesson.version + 1
    assert audits(app, lesson.public_id)[-1].comment == "Wider."


def test_return_and_reject_still_need_their_comment(app, people, login_as, make_lesson):
    lesson = make_lesson("gb.author", "submitted")
    analyst = login_as("gb.an")
    assert move(analyst, lesson.public_id, "draft").status_code == 422
    assert move(analyst, lesson.public_id, "rejected").status_code == 422
    assert row(app, lesson.public_id)[:2] == ("submitted", lesson.version)


# --- actions at the top ------------------------------------------------------------------------
def test_the_review_actions_come_before_the_lesson_body(app, people, login_as, make_lesson):
    lesson = make_lesson("gb.author", "submitted")
    page = login_as("gb.an").get(f"/lessons/{lesson.public_id}").text
    panel = page.index('<section id="review"')
    assert page.index("<h1>") < panel < page.index('id="observation"')
    assert panel < page.index('id="actions"') < page.index('id="history"')
    for to in ("validated", "draft", "rejected"):
        assert page.index(f'data-to="{to}"') < page.index('id="observation"')
    # The author is offered only what is theirs (withdrawing), never a review decision.
    page = login_as("gb.author").get(f"/lessons/{lesson.public_id}").text
    assert 'data-to="withdrawn"' in page
    assert 'data-to="validated"' not in page and 'data-to="rejected"' not in page


# --- next to review ------------------------------------------------------------------------------
def review_order(client) -> list[str]:
    """The public ids of the To review list, in its order."""
    page = client.get("/lessons?tab=review").text
    ids = re.findall(r'href="/lessons/([A-Za-z0-9]{10})"', page)
    return list(dict.fromkeys(ids))


def test_after_each_decision_the_analyst_lands_on_the_next_lesson_to_review(
        app, people, login_as, make_lesson):
    lessons = [make_lesson("gb.author", "submitted", title=f"Observation {n}").public_id
               for n in range(4)]
    analyst = login_as("gb.an")
    order = review_order(analyst)
    assert sorted(order) == sorted(lessons)
    # Deciding the second lands on the third, in the list's order.
    response = move(analyst, order[1], "validated", "Good.")
    assert response.status_code == 302 and location(response) == f"/lessons/{order[2]}"
    assert "Validated" in flashes(analyst) and "Next to review" in flashes(analyst)
    analyst.get("/lessons")  # shows (and clears) the flash
    response = move(analyst, order[2], "draft", "Add the unit.")
    assert location(response) == f"/lessons/{order[3]}"
    assert "Returned to its author" in flashes(analyst)
    analyst.get("/lessons")
    # The last one: nothing after it, so back round to the top of the list.
    response = move(analyst, order[3], "rejected", "Duplicate.")
    assert location(response) == f"/lessons/{order[0]}"
    assert "Rejected" in flashes(analyst)
    analyst.get("/lessons")
    # None left: back on the list, saying so.
    response = move(analyst, order[0], "validated")
    assert location(response) == "/lessons?tab=review"
    assert "Nothing else is waiting for your review." in flashes(analyst)


def test_next_to_review_never_lands_on_a_lesson_the_analyst_may_not_see_or_decide(
        app, people, login_as, make_lesson, make_user):
    make_user("us.an2", "USA", ("contributor", "analyst"))
    usa = make_lesson("us.author", "submitted")
    # Submitted GBR lessons, one released to USA (visible, but not USA's to review) and
    # one not; a USA draft (its author's alone); the analyst's own submitted lesson.
    make_lesson("gb.author", "submitted", releasable_to=["USA"])
    make_lesson("gb.author", "submitted")
    make_lesson("us.author", "draft")
    make_lesson("us.an", "submitted")
    response = move(login_as("us.an"), usa.public_id, "validated")
    assert location(response) == "/lessons?tab=review"


def test_other_moves_keep_the_analyst_on_the_lesson(app, people, login_as, make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    make_lesson("gb.author", "submitted")
    response = move(login_as("gb.an"), lesson.public_id, "archived", "Superseded.")
    assert location(response) == f"/lessons/{lesson.public_id}"


# --- CSRF -----------------------------------------------------------------------------------------
def test_the_validate_form_needs_its_csrf_token(app, people, make_lesson, csrf_client):  # noqa: F811
    lesson = make_lesson("gb.author", "submitted")
    client = csrf_client("gb.an")
    path = f"/lessons/{lesson.public_id}"
    form = form_on(client.get(path).text, f"{path}/transition", to="validated")
    data = form.data(token=False, note="Checked.")
    response = client.post(f"{path}/transition", data=data)
    assert response.status_code == 400 and "CSRF token is missing" in response.text
    assert row(app, lesson.public_id)[:2] == ("submitted", lesson.version)
    data = form.data(note="Checked.")
    data.add("releasable_to", "USA")
    response = client.post(f"{path}/transition", data=data)
    assert response.status_code == 302
    assert row(app, lesson.public_id) == ("validated", lesson.version + 1, ["GBR", "USA"])


# --- imports ------------------------------------------------------------------------------------
def test_an_import_may_not_validate_the_importer_s_own_lesson_unless_allowed_and_audited(
        app, people, login_as):
    from tests.test_import_policy import line, preview_and_confirm

    analyst = login_as("gb.an")
    gbr = {"originator_nation": "GBR", "nations": ["GBR"], "releasable_to": ["GBR"]}
    preview, confirmed, _ = preview_and_confirm(analyst, line(
        external_id="gb.an:OWN-1", status="validated", **gbr))
    assert preview[1][0] == "rejected" and confirmed == 422
    app.config["SELF_REVIEW_NATIONS"] = ["GBR"]
    preview, confirmed, _ = preview_and_confirm(analyst, line(
        external_id="gb.an:OWN-2", status="validated", **gbr))
    assert preview == {1: ("created", "")} and confirmed == 302
    with app.app_context():
        comment = db.session.scalar(select(AuditRecord.comment).join(
            Lesson, AuditRecord.lesson_id == Lesson.id).where(
            Lesson.external_id == "gb.an:OWN-2", AuditRecord.action == "imported"))
    assert comment.endswith("status draft → submitted → validated "
                            "(self-review allowed for GBR)")


def test_a_refused_reject_leaves_the_validate_form_with_the_current_rel_to(
        app, people, login_as, make_lesson):
    lesson = make_lesson("gb.author", "submitted", releasable_to=["USA"])
    response = move(login_as("gb.an"), lesson.public_id, "rejected", "")
    assert response.status_code == 422
    parser = FormParser()
    parser.feed(response.text)
    form = next(f for f in parser.forms if f.value("to") == "validated")
    assert [v for k, v in form.fields if k == "releasable_to" and v] == ["USA"]
    # A refused validation keeps what the analyst typed and ticked.
    response = move(login_as("gb.an"), lesson.public_id, "validated", "Keep me.",
                    widen="1", releasable_to=["AUS"])
    assert response.status_code == 422
    parser = FormParser()
    parser.feed(response.text)
    form = next(f for f in parser.forms if f.value("to") == "validated")
    assert form.value("note") == "Keep me."
    assert [v for k, v in form.fields if k == "releasable_to" and v] == ["AUS"]
