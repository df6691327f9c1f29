"""Racing writes through real HTTP: of two (or more) requests that change the same thing
at the same moment, exactly one applies and the others are refused with their reason;
version numbers and audit records stay one to one.

The app is served by a threaded WSGI server and each round's requests are released
together by a barrier, so they overlap inside the app as they would under gunicorn. It
runs on SQLite (where ``FOR UPDATE`` does nothing) and, with ``TEST_DATABASE_URL``, on
PostgreSQL (where the loser waits for the winner's row lock).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from types import SimpleNamespace

import pytest
from flask import Flask
from sqlalchemy import func, select

from lessons.extensions import db
from lessons.models import (
    AuditRecord,
    ExerciseLesson,
    Lesson,
    LessonLink,
    ReleaseRequest,
    User,
)
from lessons.services import attachments, packets, tokens
from lessons.services import exercises as exercise_service
from lessons.services import lessons as lesson_service
from tests.conftest import lesson_fields
from tests.http_client import Http, race, serving

ROUNDS = 20


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    with serving(app) as address:
        yield address


@pytest.fixture
def people(make_user) -> None:
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.an1", "GBR", ("contributor", "analyst"))
    make_user("gb.an2", "GBR", ("contributor", "analyst"))
    make_user("gb.planner", "GBR", ("contributor", "planner"))
    make_user("gb.planner2", "GBR", ("contributor", "planner"))
    make_user("us.planner", "USA", ("contributor", "planner"))


def user(name: str) -> User:
    return db.session.scalar(select(User).where(User.username == name))


_token_numbers = iter(range(1, 10**6))


def token(app: Flask, name: str) -> str:
    with app.app_context():
        return tokens.create_token(user(name), f"race {next(_token_numbers)}")[1]


def new_lesson(app: Flask, status: str = "submitted", **fields) -> str:
    with app.app_context():
        author = user("gb.author")
        lesson = lesson_service.create_lesson(author, lesson_fields(**fields),
                                              submit=status != "draft")
        if status == "validated":
            lesson_service.transition_lesson(user("gb.an1"), lesson.public_id, "validated")
        return lesson.public_id


def stored(app: Flask, public_id: str) -> SimpleNamespace:
    """The lesson's status, version, text and audit records, read fresh."""
    with app.app_context():
        lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == public_id))
        records = list(db.session.scalars(select(AuditRecord).where(
            AuditRecord.lesson_id == lesson.id).order_by(AuditRecord.id)))
        return SimpleNamespace(
            status=lesson.status, version=lesson.version, title=lesson.title,
            conclusion=lesson.conclusion, releasable_to=sorted(lesson.releasable_to),
            actions=[r.action for r in records if r.exercise_id is None],
            all_actions=[r.action for r in records],
            versions=[r.version for r in records
                      if r.exercise_id is None and r.action in VERSIONING])


# Audit actions that make a new version of the lesson (the others, such as a declined
# release or a link, note something about the current one).
VERSIONING = frozenset({
    "created", "edited", "imported", "submitted", "withdrawn", "returned", "validated",
    "rejected", "action_assigned", "learned", "archived", "action_added", "action_updated",
    "release_approved"})


def assert_one_record_per_version(after: SimpleNamespace) -> None:
    """Every version the lesson went through was made by exactly one audited change."""
    counts = Counter(after.versions)
    assert not [v for v, n in counts.items() if n > 1], after.versions
    assert sorted(counts) == list(range(1, after.version + 1)), after.versions


def test_two_patches_with_one_if_match_never_both_apply(app, people, server):
    api = Http(server, token(app, "gb.an1"))
    other = Http(server, token(app, "gb.an2"))
    for round_ in range(ROUNDS):
        public_id = new_lesson(app)
        version = stored(app, public_id).version
        path = f"/api/v1/lessons/{public_id}"
        headers = {"If-Match": f'"{version}"'}
        first, second = race(
            partial(api.send, "PATCH", path, body={"title": f"First {round_}"}, headers=headers),
            partial(other.send, "PATCH", path, body={"title": f"Second {round_}"},
                    headers=headers))
        assert sorted([first.status, second.status]) == [200, 412], (first.text, second.text)
        winner = first if first.status == 200 else second
        loser = second if winner is first else first
        assert json.loads(loser.text)["status"] == 412
        after = stored(app, public_id)
        assert winner.headers["etag"] == f'"{version + 1}"' and after.version == version + 1
        assert after.title == json.loads(winner.text)["title"]
        assert after.actions.count("edited") == 1
        assert_one_record_per_version(after)


def test_eight_patches_with_one_if_match_apply_once(app, people, server):
    clients = [Http(server, token(app, name)) for name in ("gb.an1", "gb.an2") * 4]
    for round_ in range(3):
        public_id = new_lesson(app)
        version = stored(app, public_id).version
        path = f"/api/v1/lessons/{public_id}"
        responses = race(*[
            partial(c.send, "PATCH", path, body={"conclusion": f"Edit {round_}.{n}"},
                    headers={"If-Match": f'"{version}"'}) for n, c in enumerate(clients)])
        assert sorted(r.status for r in responses) == [200] + [412] * 7
        after = stored(app, public_id)
        assert after.version == version + 1 and after.actions.count("edited") == 1
        assert_one_record_per_version(after)


def test_two_web_form_saves_of_one_loaded_version_save_once(app, people, server):
    from tests.test_capture import form_data

    first, second = Http(server).login("gb.an1"), Http(server).login("gb.an2")
    for round_ in range(ROUNDS):
        public_id = new_lesson(app)
        version = stored(app, public_id).version
        path = f"/lessons/{public_id}/edit"
        responses = race(
            partial(first.send, "POST", path, form=form_data(
                version=version, conclusion=f"First analyst {round_}.")),
            partial(second.send, "POST", path, form=form_data(
                version=version, conclusion=f"Second analyst {round_}.")))
        assert sorted(r.status for r in responses) == [302, 409], [r.text[:300]
                                                                    for r in responses]
        loser = next(r for r in responses if r.status == 409)
        assert 'class="conflict' in loser.text
        after = stored(app, public_id)
        winner = "First" if responses[0].status == 302 else "Second"
        assert after.conclusion == f"{winner} analyst {round_}."
        assert after.version == version + 1 and after.actions.count("edited") == 1
        assert_one_record_per_version(after)


@pytest.mark.parametrize("moves", [("validated", "validated"), ("validated", "rejected")])
def test_two_analysts_moving_one_lesson_at_once_move_it_once(app, people, server, moves):
    analysts = [Http(server).login("gb.an1"), Http(server).login("gb.an2")]
    for _ in range(ROUNDS):
        public_id = new_lesson(app)
        path = f"/lessons/{public_id}/transition"
        responses = race(*[partial(a.send, "POST", path, form={"to": to, "note": "Not ours."})
                           for a, to in zip(analysts, moves, strict=True)])
        statuses = [r.status for r in responses]
        assert sorted(statuses) == [302, 409], [r.text[:300] for r in responses]
        after = stored(app, public_id)
        assert after.status == moves[statuses.index(302)]
        assert after.actions.count("validated") + after.actions.count("rejected") == 1
        assert_one_record_per_version(after)


def test_approve_and_decline_of_one_release_request_decide_once(app, people, server):
    analysts = [Http(server).login("gb.an1"), Http(server).login("gb.an2")]
    with app.app_context():
        exercise = exercise_service.create_exercise(user("gb.planner"), exercise_values())
        exercise_id = exercise.public_id
    for _ in range(ROUNDS):
        public_id = new_lesson(app, "validated")
        with app.app_context():
            planner = user("gb.planner")
            attachments.attach_lesson(planner, exercise_id, public_id,
                                      {"purpose": "read_ahead"})
            request_id = packets.request_release(planner, exercise_id, public_id,
                                                 ["USA"]).public_id
        path = f"/reviews/releases/{request_id}"
        responses = race(
            partial(analysts[0].send, "POST", path, form={"decision": "approve"}),
            partial(analysts[1].send, "POST", path, form={"decision": "decline",
                                                          "note": "Bilateral only."}))
        statuses = [r.status for r in responses]
        assert sorted(statuses) == [302, 409], [r.text[:300] for r in responses]
        after = stored(app, public_id)
        with app.app_context():
            decided = db.session.scalar(select(ReleaseRequest).where(
                ReleaseRequest.public_id == request_id))
            assert decided.version == 2
            outcome = decided.status
        assert outcome == ("approved" if statuses[0] == 302 else "declined")
        assert ("USA" in after.releasable_to) == (outcome == "approved")
        assert after.actions.count("release_approved") + after.actions.count(
            "release_declined") == 1
        assert_one_record_per_version(after)


def test_confirm_and_decline_of_one_outcome_decide_once(app, people, server):
    analysts = [Http(server).login("gb.an1"), Http(server).login("gb.an2")]
    with app.app_context():
        exercise = exercise_service.create_exercise(user("gb.planner"), exercise_values(
            starts_on=exercise_service.today() - timedelta(days=20),
            ends_on=exercise_service.today() - timedelta(days=10)))
        exercise_id = exercise.public_id
    for _ in range(ROUNDS):
        public_id = new_lesson(app, "validated", releasable_to=["USA"])
        with app.app_context():
            planner = user("us.planner")
            attachments.attach_lesson(planner, exercise_id, public_id, {"purpose": "inject"})
            for step in ("accepted", "incorporated"):
                attachments.update_link(planner, exercise_id, public_id, {}, to=step)
            attachments.update_link(planner, exercise_id, public_id, {}, to="effective",
                                    evidence="Worked on the day.")
        path = f"/reviews/outcomes/{exercise_id}/{public_id}"
        responses = race(
            partial(analysts[0].send, "POST", path, form={"decision": "confirm"}),
            partial(analysts[1].send, "POST", path, form={
                "decision": "decline", "note": "One exercise is not enough."}))
        statuses = [r.status for r in responses]
        assert sorted(statuses) == [302, 409], [r.text[:300] for r in responses]
        after = stored(app, public_id)
        with app.app_context():
            link = db.session.scalar(select(ExerciseLesson).join(Lesson).where(
                Lesson.public_id == public_id))
            confirmation = link.confirmation
        assert confirmation == ("confirmed" if statuses[0] == 302 else "declined")
        assert after.status == ("learned" if confirmation == "confirmed" else "validated")
        assert after.actions.count("learned") == (confirmation == "confirmed")
        assert after.all_actions.count("outcome_confirmed") + after.all_actions.count(
            "outcome_declined") == (1 if confirmation == "confirmed" else 2)  # lesson, exercise
        assert_one_record_per_version(after)


def test_two_exercise_patches_and_two_link_steps_with_one_if_match_apply_once(
        app, people, server):
    planners = [Http(server, token(app, "gb.planner")), Http(server, token(app, "gb.planner"))]
    with app.app_context():
        exercise_id = exercise_service.create_exercise(user("gb.planner"),
                                                       exercise_values()).public_id
    for round_ in range(ROUNDS // 2):
        path = f"/api/v1/exercises/{exercise_id}"
        version = json.loads(planners[0].send("GET", path).text)["version"]
        responses = race(*[
            partial(p.send, "PATCH", path, body={"location": f"Site {round_}.{n}"},
                    headers={"If-Match": f'"{version}"'}) for n, p in enumerate(planners)])
        assert sorted(r.status for r in responses) == [200, 412]
        public_id = new_lesson(app, "validated")
        with app.app_context():
            attachments.attach_lesson(user("gb.planner"), exercise_id, public_id,
                                      {"purpose": "read_ahead"})
        link_path = f"/api/v1/exercises/{exercise_id}/lessons/{public_id}"
        etag = planners[0].send("GET", link_path).headers["etag"]
        responses = race(*[
            partial(p.send, "PATCH", link_path, body={"note": f"Note {n}"},
                    headers={"If-Match": etag}) for n, p in enumerate(planners)])
        assert sorted(r.status for r in responses) == [200, 412], [r.text for r in responses]
    with app.app_context():
        edits = db.session.scalars(select(AuditRecord.action).where(
            AuditRecord.exercise_id.is_not(None))).all()
        assert edits.count("exercise_edited") == ROUNDS // 2
        assert edits.count("attachment_edited") == ROUNDS // 2


def exercise_values(**overrides) -> dict:
    today = exercise_service.today()
    values = {
        "name": "Exercise RACING HARE", "type": "cpx", "lead_nation": "GBR",
        "nations": ["GBR", "USA"], "starts_on": today + timedelta(days=60),
        "ends_on": today + timedelta(days=70), "location": "Salisbury Plain",
        "objectives": ["Decide once"],
        "planners": ["gb.planner", "gb.planner2", "us.planner"],
    }
    values.update(overrides)
    return values


def test_two_planners_asking_one_release_at_once_store_one_request(app, people, server):
    planners = [Http(server).login("gb.planner"), Http(server).login("gb.planner2")]
    with app.app_context():
        exercise_id = exercise_service.create_exercise(user("gb.planner"),
                                                       exercise_values()).public_id
    for _ in range(ROUNDS // 2):
        public_id = new_lesson(app, "validated")
        with app.app_context():
            attachments.attach_lesson(user("gb.planner"), exercise_id, public_id,
                                      {"purpose": "read_ahead"})
        path = f"/exercises/{exercise_id}/release-requests"
        responses = race(*[
            partial(p.send, "POST", path, form={"lesson_id": public_id, "nations": "USA"})
            for p in planners])
        assert sorted(r.status for r in responses) == [302, 422], [r.status for r in responses]
        assert "already waiting" in next(r for r in responses if r.status == 422).text
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(ReleaseRequest).join(
                Lesson).where(Lesson.public_id == public_id)) == 1


def test_two_removals_of_one_link_remove_it_once(app, people, server):
    analysts = [Http(server).login("gb.an1"), Http(server).login("gb.an2")]
    for _ in range(ROUNDS // 2):
        first, second = new_lesson(app), new_lesson(app)
        with app.app_context():
            lesson_service.link_lessons(user("gb.an1"), first, second)
        path = f"/lessons/{first}/links/{second}/delete"
        responses = race(*[partial(a.send, "POST", path) for a in analysts])
        assert sorted(r.status for r in responses) == [302, 404]
        assert stored(app, first).actions.count("unlinked") == 1


LINK_CAP = 2  # a small LINKS_MAX, so each round needs few lessons
LINKERS = 4


def stored_links(app: Flask, public_id: str) -> int:
    """The links stored to or from the lesson, read fresh."""
    with app.app_context():
        lesson_id = db.session.scalar(select(Lesson.id).where(Lesson.public_id == public_id))
        return db.session.scalar(select(func.count()).select_from(LessonLink).where(
            (LessonLink.lesson_id == lesson_id) | (LessonLink.linked_lesson_id == lesson_id)))


@pytest.fixture
def analysts(make_user, people, server, monkeypatch) -> list[Http]:
    """LINKERS analysts of one nation, logged in, with the link cap lowered to LINK_CAP."""
    monkeypatch.setattr(lesson_service, "LINKS_MAX", LINK_CAP)
    for n in range(3, LINKERS + 1):
        make_user(f"gb.an{n}", "GBR", ("contributor", "analyst"))
    return [Http(server).login(f"gb.an{n}") for n in range(1, LINKERS + 1)]


def lesson_one_link_short(app: Flask) -> str:
    """A new lesson with LINK_CAP - 1 links made by the analysts' nation."""
    full = new_lesson(app)
    with app.app_context():
        for _ in range(LINK_CAP - 1):
            lesson_service.link_lessons(user("gb.an1"), full, new_lesson(app))
    return full


def assert_one_linked_and_the_rest_capped(app: Flask, full: str, responses: list) -> None:
    assert stored_links(app, full) == LINK_CAP
    assert sorted(r.status for r in responses) == [302] + [422] * (LINKERS - 1)
    assert all(f"{LINK_CAP} links" in r.text for r in responses if r.status == 422)


@pytest.mark.parametrize("side", ["from", "to"])
def test_links_sent_at_once_never_pass_the_link_cap(app, analysts, side):
    """A lesson one link short of the cap, and several links to it (or from it) sent at
    once: one is made, the others are refused with the cap's reason, whichever side of
    the link the full lesson is on ("from": its editor sees LINKS_MAX links; "to": its
    nation has made LINKS_MAX links to it)."""
    for _ in range(ROUNDS // 4):
        full = lesson_one_link_short(app)
        others = [new_lesson(app) for _ in analysts]
        if side == "from":
            calls = [partial(a.send, "POST", f"/lessons/{full}/links", form={"other": o})
                     for a, o in zip(analysts, others, strict=True)]
        else:
            calls = [partial(a.send, "POST", f"/lessons/{o}/links", form={"other": full})
                     for a, o in zip(analysts, others, strict=True)]
        responses = race(*calls)
        assert_one_linked_and_the_rest_capped(app, full, responses)


def test_two_lessons_linked_to_each_other_at_once_are_linked_once(app, people, server):
    """Each request holds both lessons, taken in the same order, so two links between
    one pair sent from either end neither deadlock nor store two links."""
    analysts = [Http(server).login("gb.an1"), Http(server).login("gb.an2")]
    for _ in range(ROUNDS // 2):
        first, second = new_lesson(app), new_lesson(app)
        responses = race(
            partial(analysts[0].send, "POST", f"/lessons/{first}/links",
                    form={"other": second}),
            partial(analysts[1].send, "POST", f"/lessons/{second}/links",
                    form={"other": first}))
        assert [r.status for r in responses] == [302, 302]
        assert stored_links(app, first) == 1


def test_new_lessons_linked_at_once_to_one_lesson_never_pass_the_nation_link_cap(
        app, analysts):
    """New lessons saved at once, each linked to a lesson to which their nation has made
    one link fewer than the cap: one is saved with its link, the others are refused with
    the cap's reason and store nothing."""
    from tests.test_capture import form_data

    for _ in range(ROUNDS // 4):
        full = lesson_one_link_short(app)
        with app.app_context():
            lessons_before = db.session.scalar(select(func.count()).select_from(Lesson))
        responses = race(*[
            partial(a.send, "POST", "/lessons/new",
                    form=form_data(action="save", link_to=[full]))
            for a in analysts])
        assert_one_linked_and_the_rest_capped(app, full, responses)
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(Lesson)) == \
                lessons_before + 1
