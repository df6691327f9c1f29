"""Notifications in the app: each event tells the right people (never the actor), through
real requests; the header's count; marking read; settings; and nothing about a lesson the
recipient may no longer see."""

from __future__ import annotations

import re
from datetime import date
from html import unescape

import pytest
from sqlalchemy import select

from lessons.extensions import db
from lessons.models import Exercise, Lesson, Notification, ReleaseRequest, User
from tests import test_exercises
from tests.test_exercises import attach, step, walk

# The exercise tests' fixtures: their users and an exercise made through the form.
people = test_exercises.people
create = test_exercises.create


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def entries(client) -> str:
    """The text of the user's notification list."""
    response = client.get("/notifications")
    assert response.status_code == 200
    match = re.search(r'<ol class="notifications"[^>]*>(.*?)</ol>',
                      response.get_data(as_text=True), re.S)
    return text_of(match.group(1)) if match else ""


def header_count(client) -> str:
    html = client.get("/account").get_data(as_text=True)
    match = re.search(r'<a [^>]*data-testid="notification-count"[^>]*>(.*?)</a>', html)
    assert match, "no notification link in the header"
    return text_of(match.group(1))


def rows(app, username: str) -> list[tuple[str, str]]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(Notification.event, Notification.action)
            .join(User, User.id == Notification.recipient_id)
            .where(User.username == username).order_by(Notification.id))]


def move(client, public_id: str, to: str, note: str = ""):
    response = client.post(f"/lessons/{public_id}/transition", data={"to": to, "note": note})
    assert response.status_code == 302, response.get_data(as_text=True)[:1000]
    return response


@pytest.fixture
def gb(make_user):
    make_user("gb.writer", "GBR", ("contributor",), display_name="Cpl Writer")
    make_user("gb.checker", "GBR", ("analyst",), display_name="Maj Checker")
    make_user("gb.checker2", "GBR", ("analyst",))
    make_user("us.checker", "USA", ("analyst",))


# --- events -------------------------------------------------------------------------------
def test_a_submission_tells_the_nations_analysts_and_not_the_author(app, gb, login_as,
                                                                    make_lesson):
    lesson = make_lesson("gb.writer", "draft", title="Radios did not talk", releasable_to=["USA"])
    writer = login_as("gb.writer")
    move(writer, lesson.public_id, "submitted")
    for analyst in ("gb.checker", "gb.checker2"):
        assert "Cpl Writer submitted \u201cRadios did not talk\u201d for review." in entries(
            login_as(analyst))
    assert rows(app, "gb.writer") == []  # their own action
    assert rows(app, "us.checker") == []  # another nation's analyst


@pytest.mark.parametrize(("to", "note", "wording"), [
    ("validated", "", "validated"), ("draft", "Add the dates.", "returned to you"),
    ("rejected", "Duplicate.", "rejected")])
def test_a_review_move_tells_the_author(app, gb, login_as, make_lesson, to, note, wording):
    lesson = make_lesson("gb.writer", "submitted", title="Radios did not talk")
    checker = login_as("gb.checker")
    move(checker, lesson.public_id, to, note)
    assert f"Maj Checker {wording} your lesson \u201cRadios did not talk\u201d." in entries(
        login_as("gb.writer"))
    assert ("my_lesson_status", "validated" if to == "validated" else
            "returned" if to == "draft" else "rejected") in rows(app, "gb.writer")
    assert not [r for r in rows(app, "gb.checker") if r[0] == "my_lesson_status"]


def test_recorded_as_learned_tells_the_author(app, gb, login_as, make_lesson):
    lesson = make_lesson("gb.writer", "validated", analyst="gb.checker", title="Radios")
    move(login_as("gb.checker2"), lesson.public_id, "learned", "Fixed in the next CPX.")
    assert "recorded as learned your lesson \u201cRadios\u201d" in entries(login_as("gb.writer"))


def test_exercise_events_reach_author_analysts_and_planners(app, people, create, login_as,
                                                            make_lesson):
    """Attached -> author; release request -> originator analysts; decided -> planners;
    an effective outcome from another nation -> originator analysts."""
    lesson = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["USA"],
                         title="Crypto keys arrived late")
    public_id = create(planners="gb.planner, us.planner, au.planner")
    us = login_as("us.planner")
    assert attach(us, public_id, lesson.public_id).status_code == 302
    author = entries(login_as("gb.author"))
    assert "Your lesson \u201cCrypto keys arrived late\u201d was taken up by Exercise" in author

    walk(us, public_id, lesson.public_id, "accepted")
    response = us.post(f"/exercises/{public_id}/release-requests", data={
        "lesson_id": lesson.public_id, "nations": "AUS", "reason": "AUS runs the cell"})
    assert response.status_code == 302
    analyst = login_as("gb.an")
    assert "asks to widen the release of \u201cCrypto keys arrived late\u201d" in entries(analyst)
    assert not [r for r in rows(app, "us.an") if r[0] == "release_request"]
    with app.app_context():
        request_id = db.session.scalar(select(ReleaseRequest.public_id))
    assert analyst.post(f"/reviews/releases/{request_id}",
                        data={"decision": "approve"}).status_code == 302
    for planner in ("gb.planner", "au.planner"):  # au.planner sees it now it is released
        assert "The release request for \u201cCrypto keys arrived late\u201d in Exercise" \
            in entries(login_as(planner))
    assert not [r for r in rows(app, "gb.an") if r[0] == "release_decided"]

    assert step(us, public_id, lesson.public_id, "incorporated").status_code == 302
    with app.app_context():  # the exercise has begun: outcomes may be recorded
        exercise = db.session.scalar(select(Exercise).where(Exercise.public_id == public_id))
        exercise.starts_on = date.today()
        db.session.commit()
    response = step(us, public_id, lesson.public_id, "effective", "Worked.")
    assert response.status_code == 302, text_of(response.get_data(as_text=True))[:800]
    assert "An effective outcome of \u201cCrypto keys arrived late\u201d" in entries(analyst)
    assert not [r for r in rows(app, "us.planner") if r[0] == "outcome_to_confirm"]
    url = f"/reviews/outcomes/{public_id}/{lesson.public_id}"
    assert analyst.post(url, data={"decision": "confirm"}).status_code == 302
    assert "recorded as learned your lesson \u201cCrypto keys arrived late\u201d" in entries(
        login_as("gb.author"))


def test_a_link_tells_both_authors_but_not_the_linker(app, gb, make_user, login_as,
                                                      make_lesson):
    make_user("us.writer", "USA", ("contributor",))
    mine = make_lesson("gb.writer", "validated", analyst="gb.checker", title="Mine",
                       releasable_to=["USA"])
    theirs = make_lesson("us.writer", "submitted", title="Theirs", releasable_to=["GBR"])
    checker = login_as("gb.checker")
    response = checker.post(f"/lessons/{mine.public_id}/links",
                            data={"other": theirs.public_id})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert "linked your lesson \u201cMine\u201d with \u201cTheirs\u201d" in entries(
        login_as("gb.writer"))
    assert "linked your lesson \u201cTheirs\u201d with \u201cMine\u201d" in entries(
        login_as("us.writer"))
    assert not [r for r in rows(app, "gb.checker") if r[0] == "my_lesson_linked"]


# --- the header, marking read, settings ---------------------------------------------------
def test_the_header_counts_unread_and_marking_read_clears_it(app, gb, login_as, make_lesson):
    for title in ("One", "Two", "Three"):
        make_lesson("gb.writer", "submitted", title=title)
    checker = login_as("gb.checker")
    assert header_count(checker) == "Notifications (3)"
    html = checker.get("/account").get_data(as_text=True)
    assert 'aria-label="Notifications, 3 unread"' in html
    with app.app_context():
        first = db.session.scalar(select(Notification.public_id).join(
            User, User.id == Notification.recipient_id).where(User.username == "gb.checker")
            .order_by(Notification.id))
    assert checker.post("/notifications/read", data={"notification": first}).status_code == 302
    assert header_count(checker) == "Notifications (2)"
    # Someone else's notification, or none at all: not found, nothing changed.
    other = login_as("gb.checker2")
    assert other.post("/notifications/read", data={"notification": first}).status_code == 404
    assert other.post("/notifications/read", data={"notification": "x" * 5000}).status_code \
        == 400
    assert other.post("/notifications/read", data={}).status_code == 400
    assert header_count(other) == "Notifications (3)"
    assert checker.post("/notifications/read-all").status_code == 302
    assert header_count(checker) == "Notifications"
    assert "New:" not in entries(checker) and "One" in entries(checker)


def test_the_list_is_newest_first_and_paged(app, gb, login_as, make_lesson):
    from lessons.services.notifications import PER_PAGE

    for n in range(PER_PAGE + 2):
        make_lesson("gb.writer", "submitted", title=f"Lesson number {n:02d}")
    checker = login_as("gb.checker")
    first = entries(checker)
    assert first.index(f"Lesson number {PER_PAGE + 1:02d}") < first.index("Lesson number 05")
    assert "Lesson number 00" not in first
    second = text_of(checker.get("/notifications?page=2").get_data(as_text=True))
    assert "Lesson number 00" in second and "Page 2 of 2" in second
    assert checker.get("/notifications?page=99999999999999999999").status_code == 422


def test_settings_choose_per_event_and_never_stores_nothing(app, gb, login_as, make_lesson):
    checker = login_as("gb.checker")
    page = checker.get("/account/notifications")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "A lesson of my nation is submitted for review" in html
    from lessons.services.notifications import EVENTS

    form = {event: "immediately" for event in EVENTS}
    form.update(nation_lesson_submitted="never", email="checker@example.org")
    assert checker.post("/account/notifications", data=form).status_code == 302
    html = checker.get("/account/notifications").get_data(as_text=True)
    assert 'value="checker@example.org"' in html
    assert re.search(r'name="nation_lesson_submitted"[^>]*value="never"[^>]*checked|'
                     r'checked[^>]*name="nation_lesson_submitted"[^>]*value="never"', html)
    make_lesson("gb.writer", "submitted", title="Quiet")
    assert rows(app, "gb.checker") == []
    assert rows(app, "gb.checker2") == [("nation_lesson_submitted", "submitted")]
    # Bad input: a clear message and a 422, nothing stored.
    bad = dict(form, my_lesson_status="sometimes", email="not an address")
    response = checker.post("/account/notifications", data=bad)
    assert response.status_code == 422
    assert "Not a valid choice" in response.get_data(as_text=True)
    too_long = dict(form, email="a@" + "b" * 300 + ".org")
    assert checker.post("/account/notifications", data=too_long).status_code == 422
    with app.app_context():
        assert db.session.scalar(select(User.email).where(
            User.username == "gb.checker")) == "checker@example.org"


# --- the policy at reading time ---------------------------------------------------------------
def test_a_lesson_hidden_since_is_neither_listed_nor_counted(app, gb, make_user, login_as,
                                                             make_lesson):
    """REL TO narrowed after the notification: the US analyst's entry disappears."""
    make_user("us.planner", "USA", ("planner", "contributor"))
    lesson = make_lesson("gb.writer", "validated", analyst="gb.checker",
                         title="Secret sauce", releasable_to=["USA"])
    mine = make_lesson("us.planner", "submitted", title="US lesson", releasable_to=["GBR"])
    us = login_as("us.planner")
    checker = login_as("gb.checker")
    assert checker.post(f"/lessons/{lesson.public_id}/links",
                        data={"other": mine.public_id}).status_code == 302
    assert "Secret sauce" in entries(us)
    assert header_count(us) == "Notifications (1)"
    with app.app_context():
        row = db.session.scalar(select(Lesson).where(Lesson.public_id == lesson.public_id))
        row.releasable_to = ["GBR"]
        db.session.commit()
    assert "Secret sauce" not in us.get("/notifications").get_data(as_text=True)
    assert header_count(us) == "Notifications"


def test_failed_emails_show_to_administrators_only(app, gb, make_user, login_as):
    make_user("gb.admin", "GBR", ("admin",))
    assert "Failed e-mails" in login_as("gb.admin").get("/notifications").get_data(
        as_text=True)
    assert "Failed e-mails" not in login_as("gb.checker").get("/notifications").get_data(
        as_text=True)


def test_pages_need_a_login(client):
    assert client.get("/notifications").status_code == 302
    assert client.post("/notifications/read-all").status_code == 302
    assert client.get("/account/notifications").status_code == 302


def test_the_header_count_is_one_query_on_the_recipient_index(app, gb, make_lesson):
    from sqlalchemy import event, inspect

    from lessons.services import notifications

    make_lesson("gb.writer", "submitted", title="Counted")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "gb.checker"))
        statements: list[str] = []

        def seen(_conn, _cursor, statement, *_args) -> None:
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            assert notifications.unread_count(user) == 1
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
        assert len(statements) == 1
        indexes = {tuple(ix["column_names"]) for ix in inspect(db.engine).get_indexes(
            "notifications")}
        assert ("recipient_id", "read_at") in indexes


def test_the_account_page_links_to_the_settings(gb, login_as):
    html = login_as("gb.writer").get("/account").get_data(as_text=True)
    assert 'href="/account/notifications"' in html


def test_an_exercise_is_named_only_to_its_participants(app, people, create, make_user,
                                                       login_as, make_lesson):
    make_user("fr.author", "FRA", ("contributor",))
    make_user("fr.an", "FRA", ("analyst",))
    lesson = make_lesson("fr.author", "validated", analyst="fr.an", releasable_to=["USA"],
                         title="Le lien radio")
    public_id = create(planners="gb.planner, us.planner", name="Exercise HIDDEN NAME")
    assert attach(login_as("us.planner"), public_id, lesson.public_id).status_code == 302
    text = entries(login_as("fr.author"))
    assert "Your lesson \u201cLe lien radio\u201d was taken up by an exercise." in text
    assert "HIDDEN NAME" not in login_as("fr.author").get("/notifications").get_data(
        as_text=True)


def test_two_saves_of_the_settings_at_once_both_land_and_store_one_choice_each(app, gb):
    """Two tabs saving the settings page at the same moment: neither is a 500, and each
    event keeps one stored choice (the later save's)."""
    from lessons.models import NotificationPreference
    from lessons.services.notifications import EVENTS
    from tests.http_client import Http, race, serving

    choices = [{event: delivery for event in EVENTS} for delivery in ("never", "digest")]
    with serving(app) as address:
        tabs = [Http(address).login("gb.writer") for _ in choices]
        replies = race(*[lambda tab=tab, chosen=chosen: tab.send(
            "POST", "/account/notifications", form={**chosen, "email": ""})
            for tab, chosen in zip(tabs, choices, strict=True)])
    assert [reply.status for reply in replies] == [302, 302], [r.text[:300] for r in replies]
    with app.app_context():
        rows = db.session.scalars(select(NotificationPreference).join(User).where(
            User.username == "gb.writer")).all()
        assert sorted(row.event for row in rows) == sorted(EVENTS)
        assert len({row.delivery for row in rows}) == 1
