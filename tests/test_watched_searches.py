"""Watched searches: a user saves the search they are looking at under a name, manages
their watches on the account pages, and ``flask notify send`` tells them once a day, in
one notification per watch, of new lessons matching it that they may see (the e-mail
lists their titles). Mail goes to the local SMTP sink of ``tests/test_notify_mail.py``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from lessons.extensions import db
from lessons.models import Notification, User, WatchedSearch
from lessons.models.base import utcnow
from lessons.rules import WATCHES_MAX
from lessons.services.notifications import EVENTS
from tests import test_csrf, test_notify_mail
from tests.test_csrf import form_on
from tests.test_notify_mail import BASE_URL, body, send

# The fixtures of those modules, reused: the app with e-mail to a local SMTP sink, and a
# second app with CSRF on over the same database.
app, smtp = test_notify_mail.app, test_notify_mail.smtp
csrf_app, csrf_client = test_csrf.csrf_app, test_csrf.csrf_client


@pytest.fixture
def people(make_user, runner):
    make_user("gb.writer", "GBR", ("contributor",), display_name="Cpl Writer")
    make_user("gb.checker", "GBR", ("analyst",), display_name="Maj Checker")
    make_user("us.watcher", "USA", ("contributor",))
    make_user("us.other", "USA", ("contributor",))
    for name in ("us.watcher", "us.other"):
        result = runner.invoke(args=["users", "set-email", name, f"{name}@example.org"])
        assert result.exit_code == 0, result.output


def watch(client, name: str, query: str = "q=radios"):
    return client.post(f"/search/watch?{query}", data={"name": name})


def watches_of(app, username: str) -> list[tuple[str, str]]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(WatchedSearch.name, WatchedSearch.query_string)
            .join(User, User.id == WatchedSearch.owner_id)
            .where(User.username == username).order_by(WatchedSearch.id))]


def public_id_of(app, name: str) -> str:
    with app.app_context():
        return db.session.scalar(select(WatchedSearch.public_id)
                                 .where(WatchedSearch.name == name))


def notices(app, username: str) -> list[Notification]:
    with app.app_context():
        rows = list(db.session.scalars(
            select(Notification).join(User, User.id == Notification.recipient_id)
            .where(User.username == username, Notification.event == "watched_search")))
        for row in rows:
            db.session.expunge(row)
        return rows


# --- saving -----------------------------------------------------------------------------------
def test_a_search_is_watched_from_the_search_page(app, people, login_as):
    client = login_as("us.watcher")
    assert "Watch this search" not in client.get("/search").text  # no search yet
    page = client.get("/search?q=radios&kind=lesson&sort=newest").text
    assert "Watch this search" in page
    assert 'action="/search/watch?q=radios&amp;kind=lesson&amp;sort=newest"' in page
    response = watch(client, "  Radio   gaps ", "q=radios&kind=lesson&sort=newest")
    assert response.status_code == 302
    assert response.location == "/search?q=radios&kind=lesson&sort=newest"
    assert "You watch this search as \u201cRadio gaps\u201d" in client.get(
        response.location).text
    assert watches_of(app, "us.watcher") == [("Radio gaps", "q=radios&kind=lesson&sort=newest")]
    listing = client.get("/account/watches").text
    assert '<a href="/search?q=radios&amp;kind=lesson&amp;sort=newest">Radio gaps</a>' in listing
    assert 'href="/account/watches"' in client.get("/account").text


def test_a_duplicate_name_or_an_empty_search_is_refused_with_a_message(app, people, login_as):
    client = login_as("us.watcher")
    assert watch(client, "Radios").status_code == 302
    response = watch(client, "radios", "q=jammers")
    assert response.status_code == 422
    assert "You already watch a search named \u201cradios\u201d" in response.text
    response = watch(client, "Everything", "")
    assert response.status_code == 422
    assert "Watch this search" not in response.text or "Search for something" in response.text
    response = watch(client, "", "q=jammers")
    assert response.status_code == 422
    assert "Give the watch a name." in response.text
    response = watch(client, "x" * 101, "q=jammers")
    assert response.status_code == 422
    assert watches_of(app, "us.watcher") == [("Radios", "q=radios")]


def test_a_user_may_watch_a_limited_number_of_searches(app, people, login_as):
    client = login_as("us.watcher")
    for i in range(WATCHES_MAX):
        assert watch(client, f"Watch {i}", f"q=word{i}").status_code == 302
    response = watch(client, "One too many", "q=more")
    assert response.status_code == 422
    assert f"You watch {WATCHES_MAX} searches already" in response.text
    assert len(watches_of(app, "us.watcher")) == WATCHES_MAX
    assert watch(login_as("us.other"), "Mine").status_code == 302  # a limit per user


def test_watching_needs_the_pages_csrf_token(app, people, csrf_client):
    client = csrf_client("us.watcher")
    form = form_on(client.get("/search?q=radios").text, "/search/watch?q=radios")
    response = client.post("/search/watch?q=radios", data=form.data(token=False, name="R"))
    assert response.status_code == 400
    assert watches_of(app, "us.watcher") == []
    response = client.post("/search/watch?q=radios", data=form.data(name="R"))
    assert response.status_code == 302
    watch_id = public_id_of(app, "R")
    page = client.get("/account/watches").text
    rename = form_on(page, f"/account/watches/{watch_id}/rename")
    delete = form_on(page, f"/account/watches/{watch_id}/delete")
    for action, form in ((f"/account/watches/{watch_id}/rename", rename),
                         (f"/account/watches/{watch_id}/delete", delete)):
        assert client.post(action, data=form.data(token=False)).status_code == 400
    assert watches_of(app, "us.watcher") == [("R", "q=radios")]


# --- managing ---------------------------------------------------------------------------------
def test_watches_are_renamed_and_deleted_by_their_owner_only(app, people, login_as):
    client = login_as("us.watcher")
    watch(client, "Radios")
    watch(client, "Jammers", "q=jammers")
    radios, jammers = public_id_of(app, "Radios"), public_id_of(app, "Jammers")
    response = client.post(f"/account/watches/{radios}/rename", data={"name": "Radio gaps"})
    assert response.status_code == 302
    assert "Watch renamed \u201cRadio gaps\u201d" in client.get(response.location).text
    response = client.post(f"/account/watches/{radios}/rename", data={"name": "jammers"})
    assert response.status_code == 422
    assert "You already watch a search named \u201cjammers\u201d" in response.text
    assert client.post(f"/account/watches/{radios}/rename",
                       data={"name": ""}).status_code == 422
    other = login_as("us.other")
    assert other.post(f"/account/watches/{jammers}/rename",
                      data={"name": "Stolen"}).status_code == 404
    assert other.post(f"/account/watches/{jammers}/delete").status_code == 404
    assert "Jammers" not in other.get("/account/watches").text
    assert other.post("/account/watches/ZZZZZZZZZZ/delete").status_code == 404
    response = client.post(f"/account/watches/{jammers}/delete")
    assert response.status_code == 302
    assert "You no longer watch \u201cJammers\u201d" in client.get(response.location).text
    assert watches_of(app, "us.watcher") == [("Radio gaps", "q=radios")]


def test_saving_renaming_and_deleting_a_watch_are_in_the_audit_trail(app, people, login_as,
                                                                      make_user):
    from lessons.models import AuditRecord  # noqa: PLC0415

    client = login_as("us.watcher")
    watch(client, "Radios")
    watch(client, "Radios")  # refused (the name is taken): nothing recorded
    radios = public_id_of(app, "Radios")
    client.post(f"/account/watches/{radios}/rename", data={"name": "Radio gaps"})
    client.post(f"/account/watches/{radios}/rename", data={"name": "Radio gaps"})  # same
    client.post(f"/account/watches/{radios}/rename", data={"name": ""})  # refused
    client.post(f"/account/watches/{radios}/delete")
    with app.app_context():
        rows = db.session.execute(
            select(AuditRecord.action, User.username, AuditRecord.subject,
                   AuditRecord.comment)
            .join(User, User.id == AuditRecord.actor_id)
            .where(AuditRecord.action.like("watch%")).order_by(AuditRecord.id)).all()
    assert [tuple(row) for row in rows] == [
        ("watch_saved", "us.watcher", "us.watcher", "\u201cRadios\u201d"),
        ("watch_renamed", "us.watcher", "us.watcher",
         "\u201cRadios\u201d \u2192 \u201cRadio gaps\u201d"),
        ("watch_deleted", "us.watcher", "us.watcher", "\u201cRadio gaps\u201d")]
    make_user("us.admin", "USA", ("admin",))
    trail = login_as("us.admin").get("/admin/audit?user=us.watcher")
    assert trail.status_code == 200
    for action in ("watch saved", "watch renamed", "watch deleted"):
        assert action in trail.text
    assert 'value="watch_renamed"' in login_as("us.admin").get("/admin/audit").text


# --- the daily check --------------------------------------------------------------------------
def test_the_daily_check_notifies_new_visible_lessons_once(app, people, login_as,
                                                           make_lesson, runner, smtp):
    make_lesson("gb.writer", "validated", analyst="gb.checker", releasable_to=["USA"],
                title="Radios of old")  # there before the watch: not new
    client = login_as("us.watcher")
    watch(client, "Radios")
    make_lesson("gb.writer", "validated", analyst="gb.checker", releasable_to=["USA"],
                title="Radios failed at night")
    make_lesson("gb.writer", "validated", analyst="gb.checker", releasable_to=["USA"],
                title="Radios drifted off frequency")
    make_lesson("gb.writer", "validated", analyst="gb.checker",
                title="Radios secret to GBR")  # matches, but not releasable to USA
    make_lesson("gb.writer", "validated", analyst="gb.checker", releasable_to=["USA"],
                title="Boots wore out")  # visible, does not match
    output = send(runner)
    assert "1 watched search(es) with new lessons." in output
    [notice] = notices(app, "us.watcher")
    assert notice.email_state == "sent"
    page = client.get("/notifications").text
    assert "Your watched search \u201cRadios\u201d has 2 new lessons." in page
    assert 'href="/search?q=radios"' in page
    assert "secret" not in page
    [message] = smtp.to("us.watcher@example.org")
    text = body(message)
    assert message["Subject"] == "Muster: Radios"
    assert "has 2 new lessons" in text
    assert "Radios failed at night" in text and "Radios drifted off frequency" in text
    assert f"{BASE_URL}/search?q=radios" in text
    assert "secret" not in text and "Radios of old" not in text and "Boots" not in text
    assert notices(app, "us.other") == [] and smtp.to("us.other@example.org") == []

    # The same day: not checked again, whatever is new.
    make_lesson("gb.writer", "validated", analyst="gb.checker", releasable_to=["USA"],
                title="Radios lost the net")
    assert "watched search" not in send(runner)
    assert len(notices(app, "us.watcher")) == 1
    with app.app_context():  # a day later
        db.session.execute(update(WatchedSearch).values(
            last_checked_at=utcnow() - timedelta(hours=25)))
        db.session.commit()
    send(runner)
    assert len(notices(app, "us.watcher")) == 2
    latest = smtp.to("us.watcher@example.org")[-1]
    assert "has 1 new lesson." in body(latest) and "Radios lost the net" in body(latest)
    assert "Radios failed at night" not in body(latest)


def test_a_watch_whose_new_lessons_are_all_hidden_tells_nothing(app, people, login_as,
                                                                make_lesson, runner, smtp):
    client = login_as("us.watcher")
    watch(client, "Radios")
    make_lesson("gb.writer", "validated", analyst="gb.checker", title="Radios secret to GBR")
    send(runner)
    assert notices(app, "us.watcher") == []
    assert smtp.to("us.watcher@example.org") == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WatchedSearch).where(
            WatchedSearch.last_checked_at.is_not(None))) == 1


def test_the_owners_choice_of_never_stores_no_notification(app, people, login_as,
                                                           make_lesson, runner, smtp):
    client = login_as("us.watcher")
    page = client.get("/account/notifications").text
    assert "A search I watch has new lessons" in page
    watch(client, "Radios")
    choices = {event: spec.default for event, spec in EVENTS.items()}
    response = client.post("/account/notifications", data={
        **choices, "watched_search": "never", "email": "us.watcher@example.org"})
    assert response.status_code == 302
    make_lesson("gb.writer", "validated", analyst="gb.checker", releasable_to=["USA"],
                title="Radios failed at night")
    send(runner)
    assert notices(app, "us.watcher") == []


def test_a_lesson_is_reported_once_it_becomes_the_owners_to_see(app, people, login_as,
                                                                make_lesson, runner, smtp):
    """Written after the watch but shared with the owner's nation only later (submitted
    from draft): reported at the first check after that, and only once."""
    client = login_as("us.watcher")
    watch(client, "Radios")
    lesson = make_lesson("gb.writer", "draft", title="Radios late to the party",
                         releasable_to=["USA"])  # a draft: not yet USA's to see
    send(runner)
    assert notices(app, "us.watcher") == []

    def a_day_later() -> None:
        with app.app_context():
            db.session.execute(update(WatchedSearch).values(
                last_checked_at=utcnow() - timedelta(hours=25)))
            db.session.commit()

    response = login_as("gb.writer").post(f"/lessons/{lesson.public_id}/transition",
                                          data={"to": "submitted"})
    assert response.status_code == 302
    a_day_later()
    send(runner)
    assert len(notices(app, "us.watcher")) == 1
    assert "Radios late to the party" in body(smtp.to("us.watcher@example.org")[-1])
    a_day_later()
    send(runner)
    assert len(notices(app, "us.watcher")) == 1  # reported once


def test_a_watch_notice_whose_lessons_are_no_longer_visible_is_neither_shown_nor_counted(
        app, people, login_as, make_lesson, runner, smtp):
    from lessons.models import Lesson
    from lessons.models.lesson import LessonRelease

    client = login_as("us.watcher")
    watch(client, "Radios")
    lesson = make_lesson("gb.writer", "validated", analyst="gb.checker",
                         releasable_to=["USA"], title="Radios failed at night")
    app.config["MAIL_SERVER"] = ""  # in the app only
    send(runner)
    assert len(notices(app, "us.watcher")) == 1
    page = client.get("/notifications").text
    assert "Notifications (1)" in page and "has 1 new lesson." in page
    with app.app_context():  # the release to USA withdrawn
        lesson_id = db.session.scalar(select(Lesson.id)
                                      .where(Lesson.public_id == lesson.public_id))
        db.session.execute(LessonRelease.__table__.delete().where(
            LessonRelease.lesson_id == lesson_id, LessonRelease.nation_code == "USA"))
        db.session.commit()
    page = client.get("/notifications").text
    assert "Notifications (1)" not in page
    assert "Radios" not in page and "new lesson" not in page
