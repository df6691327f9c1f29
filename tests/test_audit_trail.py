"""Security events on the record, and the admins' read-only audit trail.

API tokens (created, first use each UTC day, revoked), every import run and every export
leave one audit record with who, when and the client address; ``/admin/audit`` lists the
trail for admins, filtered by user, action, actor's nation and UTC days, with a CSV
download that is itself audited, and never shows a lesson or exercise the admin may not
see. Driven through the Flask test client (and the CLI where the channel is the CLI).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from html import unescape
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from lessons.extensions import db
from lessons.models import ApiToken, AuditRecord, Exercise, Lesson, User
from lessons.models.base import utcnow
from tests.conftest import login
from tests.http_client import Http, race, serving
from tests.test_exchange import record, write_lines
from tests.test_exercises import attach, create, walk  # noqa: F401  (create: a fixture)
from tests.test_import_policy import line, upload

HOME = "198.51.100.7"
SCRIPT = "203.0.113.9"


def at(address: str) -> dict[str, Any]:
    """Request keyword arguments that make the request come from ``address``."""
    return {"environ_base": {"REMOTE_ADDR": address}}


def records(app, action: str | None = None) -> list[dict[str, Any]]:
    """The stored audit records (optionally of one action), oldest first, as plain dicts."""
    with app.app_context():
        query = select(AuditRecord).order_by(AuditRecord.id)
        if action:
            query = query.where(AuditRecord.action == action)
        return [{"action": r.action, "actor": r.actor.username if r.actor else None,
                 "subject": r.subject, "address": r.address, "comment": r.comment,
                 "lesson_id": r.lesson_id, "exercise_id": r.exercise_id}
                for r in db.session.scalars(query)]


@pytest.fixture
def web(app):
    """``web(username)``: a client logged in from ``HOME`` (a session is bound to its
    client address, so each browser keeps one)."""

    def _web(username: str):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = HOME
        login(client, username)
        return client

    return _web


def clear_trail(app) -> None:
    """Forget the log-ins the fixtures made, so a test sees only its own records."""
    with app.app_context():
        db.session.execute(delete(AuditRecord))
        db.session.commit()


@pytest.fixture
def people(make_user):
    make_user("us.admin", "USA", ("admin",))
    make_user("au.admin", "AUS", ("admin",))
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("au.analyst", "AUS", ("contributor", "analyst"))
    make_user("gb.planner", "GBR", ("contributor", "planner"))
    make_user("us.planner", "USA", ("contributor", "planner"))


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def trail_cells(html: str) -> list[list[str]]:
    """The audit table's rows, each as its cells' text."""
    body = re.search(r'<table class="audit"[^>]*>.*?<tbody>(.*?)</tbody>', html, re.S)
    if body is None:
        return []
    return [[text_of(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]


def trail_rows(html: str) -> list[str]:
    return [" ".join(cell for cell in row if cell) for row in trail_cells(html)]


def csv_rows(response) -> list[dict[str, str]]:
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def add_record(app, action: str, actor: str | None, *, when: datetime | None = None,
               subject: str | None = None, comment: str = "",
               address: str | None = HOME) -> None:
    """A record as a service would have written it, at a chosen time (filters need
    known times); the writing paths themselves are tested through HTTP above."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == actor)) if actor else None
        db.session.add(AuditRecord(action=action, actor=user, subject=subject, comment=comment,
                                   address=address, created_at=when or utcnow()))
        db.session.commit()


# --- API tokens ------------------------------------------------------------------------------
def new_token(client, name: str = "nightly sync") -> tuple[int, str]:
    response = client.post("/account/tokens", data={"name": name})
    assert response.status_code == 201
    secret = re.search(r'data-testid="new-token">([^<]+)<', response.get_data(as_text=True))[1]
    with client.application.app_context():
        token_id = db.session.scalar(select(ApiToken.id).where(ApiToken.name == name))
    return token_id, secret


def call_api(app, secret: str, address: str = SCRIPT):
    response = app.test_client().get("/api/v1/lessons", headers={
        "Authorization": f"Bearer {secret}"}, **at(address))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def test_token_creation_first_use_each_day_and_revocation_are_on_the_record(
        app, people, web):
    client = web("gb.author")
    token_id, secret = new_token(client)
    assert records(app, "token_created") == [{
        "action": "token_created", "actor": "gb.author", "subject": "gb.author",
        "address": HOME, "comment": "nightly sync", "lesson_id": None, "exercise_id": None}]

    for _ in range(3):  # the day's first use is recorded once, from where it was used
        call_api(app, secret)
    used = records(app, "token_used")
    assert [(r["actor"], r["subject"], r["address"], r["comment"]) for r in used] == [
        ("gb.author", "gb.author", SCRIPT, "nightly sync")]

    with app.app_context():  # a use within the minute does not write last_used_at again
        first = db.session.get(ApiToken, token_id).last_used_at
    call_api(app, secret)
    with app.app_context():
        assert db.session.get(ApiToken, token_id).last_used_at == first
        # the token was last used yesterday: today's first use is recorded again
        db.session.execute(update(ApiToken).where(ApiToken.id == token_id).values(
            last_used_at=first - timedelta(days=1)))
        db.session.commit()
    call_api(app, secret, "192.0.2.44")
    call_api(app, secret, "192.0.2.44")
    assert [r["address"] for r in records(app, "token_used")] == [SCRIPT, "192.0.2.44"]
    with app.app_context():
        assert db.session.get(ApiToken, token_id).last_used_at > first

    assert client.post(f"/account/tokens/{token_id}/revoke").status_code == 302
    assert [(r["actor"], r["subject"], r["address"], r["comment"])
            for r in records(app, "token_revoked")] == [
        ("gb.author", "gb.author", HOME, "nightly sync")]
    response = app.test_client().get("/api/v1/lessons", headers={
        "Authorization": f"Bearer {secret}"})
    assert response.status_code == 401
    assert len(records(app, "token_used")) == 2


def test_a_tokens_first_use_of_the_day_is_recorded_once_when_calls_race(app, people):
    from lessons.services import tokens

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "gb.author"))
        secret = tokens.create_token(user, "parallel")[1]
    with serving(app) as address:
        replies = race(*[lambda: Http(address, token=secret).get("/api/v1/lessons")] * 6)
    assert [reply.status for reply in replies] == [200] * 6
    assert [(r["actor"], r["comment"]) for r in records(app, "token_used")] == [
        ("gb.author", "parallel")]


# --- imports --------------------------------------------------------------------------------
def test_a_web_import_is_one_record_when_confirmed_and_a_refused_one_too(
        app, people, web):
    client = web("au.analyst")
    response = upload(client, line(external_id="au.analyst:1", title="First AUS lesson")
                      + line(external_id="au.analyst:2", title="Second"))
    assert response.status_code == 200
    assert records(app, "import") == []  # the preview stores nothing and is not a run
    token = re.search(r'action="/lessons/import/([\w-]+)"', response.get_data(as_text=True))[1]
    assert client.post(f"/lessons/import/{token}").status_code == 302
    [run] = records(app, "import")
    assert run["actor"] == "au.analyst" and run["address"] == HOME
    assert run["comment"] == ("upload lessons.jsonl (jsonl): stored; 2 created, 0 updated, "
                              "0 unchanged, 0 line(s) rejected")
    assert len(records(app, "imported")) == 2  # beside the per-lesson records

    response = upload(client, line(external_id="au.analyst:3", title="Good") + "{not json\n")
    token = re.search(r'/lessons/import/([\w-]+)', response.get_data(as_text=True))
    with app.app_context():
        from lessons.models import StagedImport

        staged = db.session.scalars(select(StagedImport.token).order_by(
            StagedImport.id.desc())).first()
    assert token is None or token[1] == staged
    assert client.post(f"/lessons/import/{staged}").status_code == 422
    refused = records(app, "import")[-1]
    assert refused["comment"].startswith("upload lessons.jsonl (jsonl): refused, nothing "
                                         "stored; 0 created")
    assert refused["comment"].endswith("1 line(s) rejected")


def test_a_command_line_import_is_recorded_with_its_migration_flag(app, people, runner,
                                                                   tmp_path):
    path = write_lines(tmp_path / "in.jsonl", record(external_id="MIG-1"),
                       record(external_id="MIG-2"))
    result = runner.invoke(args=["lessons", "import", str(path), "--as", "us.admin",
                                 "--as-migration"])
    assert result.exit_code == 0, result.output
    [run] = records(app, "import")
    assert run["actor"] == "us.admin" and run["address"] is None
    assert run["comment"] == ("command line: stored; 2 created, 0 updated, 0 unchanged, "
                              "0 line(s) rejected; as migration")


# --- exports --------------------------------------------------------------------------------
def test_search_and_command_line_exports_are_recorded(app, people, web, make_lesson,
                                                      runner, tmp_path):
    for n in range(3):
        make_lesson("gb.author", "validated", analyst="gb.an", title=f"Liaison lesson {n}",
                    releasable_to=["USA"])
    client = web("us.planner")
    response = client.get("/search/export?q=liaison&format=csv")
    assert response.status_code == 200
    assert len(csv_rows(response)) == 3
    response = client.get("/search/export?q=liaison")
    assert len(response.get_data(as_text=True).splitlines()) == 3
    exports = records(app, "export")
    assert [(r["actor"], r["address"], r["comment"]) for r in exports] == [
        ("us.planner", HOME, "search results: 3 lessons, csv"),
        ("us.planner", HOME, "search results: 3 lessons, jsonl")]

    out = tmp_path / "out.csv"
    assert runner.invoke(args=["lessons", "export", str(out), "--as", "us.planner"]
                         ).exit_code == 0
    latest = records(app, "export")[-1]
    assert latest["actor"] == "us.planner" and latest["address"] is None
    assert latest["comment"] == "lessons, command line (as us.planner): 3 lessons, csv"


def test_packet_downloads_and_the_api_packet_are_recorded_on_the_exercise(
        app, people, web, make_lesson, create):  # noqa: F811
    lesson = make_lesson("gb.author", "validated", analyst="gb.an",
                         releasable_to=["USA", "AUS"], title="Wide: LNO accounts")
    public_id = create(planners="gb.planner")
    planner = web("gb.planner")
    assert attach(planner, public_id, lesson.public_id).status_code == 302
    walk(planner, public_id, lesson.public_id, "accepted")
    base = f"/exercises/{public_id}/packet?milestone=initial_planning_conference"
    assert planner.get(base).status_code == 200  # the page is no export
    assert records(app, "export") == []
    for fmt in ("json", "csv"):
        assert planner.get(f"{base}&audience=GBR,USA&format={fmt}").status_code == 200
    from lessons.services import tokens

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "gb.planner"))
        secret = tokens.create_token(user, "packets")[1]
        exercise_pk = db.session.scalar(select(Exercise.id).where(
            Exercise.public_id == public_id))
    response = app.test_client().get(
        f"/api/v1/exercises/{public_id}/packet?milestone=initial_planning_conference"
        "&audience=GBR", headers={"Authorization": f"Bearer {secret}"}, **at(SCRIPT))
    assert response.status_code == 200
    exports = records(app, "export")
    assert [(r["actor"], r["address"], r["exercise_id"], r["comment"]) for r in exports] == [
        ("gb.planner", HOME, exercise_pk,
         "read-ahead packet initial_planning_conference for GBR, USA: 1 lesson, json"),
        ("gb.planner", HOME, exercise_pk,
         "read-ahead packet initial_planning_conference for GBR, USA: 1 lesson, csv"),
        ("gb.planner", SCRIPT, exercise_pk,
         "read-ahead packet initial_planning_conference for GBR: 1 lesson, json (API)")]


# --- the audit page -------------------------------------------------------------------------
def test_anonymous_users_are_sent_to_log_in_and_others_are_refused(app, people, client,
                                                                   login_as):
    for path in ("/admin/audit", "/admin/audit.csv"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
        for username in ("gb.author", "gb.an", "gb.planner"):
            response = login_as(username).get(path)
            assert response.status_code == 403
            assert "Only administrators" in response.get_data(as_text=True)
    assert records(app, "export") == []  # a refused download is no export


def test_the_audit_link_is_in_the_admins_navigation_only(app, people, login_as):
    assert 'href="/admin/audit"' in login_as("us.admin").get("/lessons").get_data(as_text=True)
    assert "/admin/audit" not in login_as("gb.an").get("/lessons").get_data(as_text=True)


def test_the_trail_has_no_route_that_writes(app, people, login_as):
    admin = login_as("us.admin")
    clear_trail(app)
    add_record(app, "login", "gb.author")
    for path in ("/admin/audit", "/admin/audit.csv", "/admin/audit/1"):
        for method in ("post", "put", "patch", "delete"):
            response = getattr(admin, method)(path)
            assert response.status_code in (404, 405), (method, path)
    rules = [rule for rule in app.url_map.iter_rules() if "audit" in rule.rule]
    assert {rule.rule for rule in rules} == {"/admin/audit", "/admin/audit.csv"}
    assert all(rule.methods <= {"GET", "HEAD", "OPTIONS"} for rule in rules)
    assert len(records(app, "login")) == 1


def test_an_admin_reads_the_trail_newest_first_with_who_when_and_where(app, admin):
    now = utcnow()
    add_record(app, "login_failed", None, subject="gb.author", when=now - timedelta(hours=2))
    add_record(app, "login", "gb.author", subject="gb.author", when=now - timedelta(hours=1),
               address=SCRIPT)
    response = admin.get("/admin/audit")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    rows = trail_rows(html)
    assert rows[0].startswith((now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M"))
    assert "gb.author GBR login gb.author " + SCRIPT in rows[0]
    assert "system login failed gb.author " + HOME in rows[1]
    assert "2 entries" in text_of(html)


def test_the_trail_is_paginated(app, admin):
    start = utcnow() - timedelta(days=1)
    for n in range(55):
        add_record(app, "login", "gb.author", when=start + timedelta(minutes=n),
                   comment=f"entry {n}")
    first = admin.get("/admin/audit?user=gb.author").get_data(as_text=True)
    assert len(trail_rows(first)) == 50 and "entry 54" in trail_rows(first)[0]
    assert "Page 1 of 2" in first
    assert 'href="/admin/audit?page=2&amp;user=gb.author"' in first
    second = admin.get("/admin/audit?user=gb.author&page=2").get_data(as_text=True)
    assert [row.split("entry ")[1] for row in trail_rows(second)] == [
        "4", "3", "2", "1", "0"]
    assert admin.get("/admin/audit?page=99999999999").status_code == 422


@pytest.fixture
def admin(app, people, login_as):
    """The US admin's client, logged in before the trail is cleared."""
    client = login_as("us.admin")
    clear_trail(app)
    return client


@pytest.fixture
def varied(app, admin) -> datetime:
    """Records by several actors, nations, actions and days; returns 'now'."""
    now = utcnow()
    add_record(app, "login", "gb.author", subject="gb.author", when=now - timedelta(days=3),
               comment="three days ago")
    add_record(app, "role_changed", "us.admin", subject="gb.an",
               when=now - timedelta(days=2), comment="admin changed gb.an")
    add_record(app, "token_created", "au.analyst", subject="au.analyst",
               when=now - timedelta(days=1), comment="aus token")
    add_record(app, "login", "gb.an", subject="gb.an", when=now, comment="today")
    return now


def comments(client, query: str) -> list[str]:
    """The Details cell of each row the page lists for ``query``."""
    response = client.get("/admin/audit" + query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [row[-1] for row in trail_cells(response.get_data(as_text=True))]


def test_each_filter_narrows_the_trail(app, varied, admin):
    everything = ["today", "aus token", "admin changed gb.an", "three days ago"]
    assert comments(admin, "") == everything
    # user: what they did or what was done to their account
    assert comments(admin, "?user=gb.an") == ["today", "admin changed gb.an"]
    assert comments(admin, "?user=GB.AUTHOR") == ["three days ago"]
    assert comments(admin, "?user=nobody") == []
    assert comments(admin, "?action=login") == ["today", "three days ago"]
    assert comments(admin, "?nation=AUS") == ["aus token"]
    assert comments(admin, "?nation=GBR") == ["today", "three days ago"]
    day = (varied - timedelta(days=2)).date()
    assert comments(admin, f"?from={day.isoformat()}") == everything[:3]
    assert comments(admin, f"?to={day.isoformat()}") == everything[2:]
    assert comments(admin, f"?from={day.isoformat()}&to={day.isoformat()}") == [
        "admin changed gb.an"]
    assert comments(admin, f"?user=gb.an&action=login&nation=GBR&from={day}") == ["today"]
    assert comments(admin, "?user=&action=&nation=&from=&to=") == everything
    html = admin.get("/admin/audit").get_data(as_text=True)
    options = re.findall(r'<option value="(\w*)"', html.split('name="action"')[1]
                         .split("</select>")[0])
    assert options == ["", "login", "role_changed", "token_created"]


@pytest.mark.parametrize("query, message", [
    ("?from=2026-13-01", "From: Not a date: give a date as YYYY-MM-DD"),
    ("?to=yesterday", "To: Not a date: give a date as YYYY-MM-DD"),
    ("?from=" + "9" * 300, "From: Not a date"),
    ("?from=2026-03-02&to=2026-03-01", "To: Must be on or after the From date."),
    ("?from=1066-10-14", "From: Give a date from 2000-01-01 on."),
    ("?action=drop_table", "Action: No such action on the record"),
    ("?nation=XYZ", "Actor's nation: Not a nation code"),
    ("?user=" + "a" * 65, "User: Field cannot be longer than 64 characters."),
])
def test_bad_filters_get_a_clear_4xx_on_the_page_and_the_csv(app, varied, admin, query,
                                                            message):
    page = admin.get("/admin/audit" + query)
    assert page.status_code == 422
    # beside its field on the page; named by its label in the download's answer
    assert message.split(": ", 1)[1] in text_of(page.get_data(as_text=True))
    assert 'aria-invalid="true"' in page.get_data(as_text=True)
    download = admin.get("/admin/audit.csv" + query)
    assert download.status_code == 422
    assert message in text_of(download.get_data(as_text=True))
    assert records(app, "export") == []


def test_the_csv_download_keeps_the_filters_neutralises_formulas_and_is_audited(
        app, varied, web):
    admin = web("us.admin")
    add_record(app, "login", "gb.an", subject="=cmd|' /C calc'!A0",
               comment='=HYPERLINK("http://evil.example","x")', address="@SUM(1)")
    page = admin.get("/admin/audit?user=gb.an&action=login").get_data(as_text=True)
    assert 'href="/admin/audit.csv?user=gb.an&amp;action=login"' in page
    response = admin.get("/admin/audit.csv?user=gb.an&action=login")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = csv_rows(response)
    assert [row["comment"] for row in rows] == [
        "'=HYPERLINK(\"http://evil.example\",\"x\")", "today"]
    assert rows[0]["address"] == "'@SUM(1)"
    assert rows[1]["actor"] == "gb.an" and rows[1]["actor_nation"] == "GBR"
    assert rows[1]["action"] == "login" and rows[1]["subject"] == "gb.an"
    [export] = records(app, "export")
    assert export["actor"] == "us.admin" and export["address"] == HOME
    assert export["comment"] == "audit trail (user=gb.an, action=login): 2 rows, csv"
    # the download is on the record, and shows in the next download
    rows = csv_rows(admin.get("/admin/audit.csv?action=export"))
    assert [row["comment"] for row in rows] == [
        "audit trail (action=export): 1 row, csv",
        "audit trail (user=gb.an, action=login): 2 rows, csv"]


def test_the_csv_streams_a_trail_longer_than_one_slice(app, admin, monkeypatch):
    from lessons.services import audit

    monkeypatch.setattr(audit, "CSV_CHUNK", 7)
    same = utcnow() - timedelta(hours=1)  # equal times: the keyset also orders by id
    for n in range(23):
        add_record(app, "login", "gb.author", when=same if n % 2 else same
                   + timedelta(seconds=n), comment=f"entry {n}")
    response = admin.get("/admin/audit.csv?user=gb.author")
    assert response.is_streamed
    numbers = [int(row["comment"].split()[1]) for row in csv_rows(response)]
    assert sorted(numbers) == list(range(23)) and len(numbers) == 23
    expected = sorted(range(23), key=lambda n: (same + timedelta(seconds=0 if n % 2 else n),
                                                n), reverse=True)
    assert numbers == expected


# --- releasability ---------------------------------------------------------------------------
SECRET_NOTE = "Crypto fill devices were lost at the FARP"


def test_an_admin_never_learns_of_a_lesson_or_exercise_not_releasable_to_them(
        app, people, login_as, make_lesson, create):  # noqa: F811
    from lessons.services import lessons as lesson_service

    hidden = make_lesson("gb.author", "submitted", title="Hidden: crypto fill lost",
                         releasable_to=["USA"])
    with app.app_context():
        analyst = db.session.scalar(select(User).where(User.username == "gb.an"))
        lesson_service.transition_lesson(analyst, hidden.public_id, "validated", SECRET_NOTE)
        lesson_pk = db.session.scalar(select(Lesson.id).where(
            Lesson.public_id == hidden.public_id))
    exercise = create("gb.planner", name="Exercise QUIET GBR-USA", nations=["GBR", "USA"])
    planner = login_as("gb.planner")
    assert attach(planner, exercise, hidden.public_id).status_code == 302
    about_lesson = [r for r in records(app) if r["lesson_id"] == lesson_pk]
    assert any(r["comment"] == SECRET_NOTE for r in about_lesson)
    secrets = ("Hidden: crypto fill", hidden.public_id, SECRET_NOTE, "QUIET", exercise)

    us = login_as("us.admin")  # USA: the lesson and exercise are releasable to them
    page = us.get("/admin/audit?user=gb.an").get_data(as_text=True)
    assert "Hidden: crypto fill lost" in page and SECRET_NOTE in page
    assert "withheld" not in text_of(page).split("Audit trail", 2)[-1].split("UTC.")[-1]

    au = login_as("au.admin")  # AUS: neither is releasable to them
    page = au.get("/admin/audit").get_data(as_text=True)
    csv_text = au.get("/admin/audit.csv").get_data(as_text=True)
    for secret in secrets:
        assert secret not in page and secret not in csv_text, secret
    rows = trail_rows(page)
    assert len(rows) == len(records(app)) - 1  # every entry shown, the CSV's own aside
    withheld = [row for row in rows if "withheld" in row]
    assert len(withheld) >= len(about_lesson) + 1  # the exercise's own records too
    assert any(row.split(" ", 3)[2:3] == ["gb.an"] and "validated" in row
               for row in withheld)
    parsed = list(csv.DictReader(io.StringIO(csv_text.lstrip("\ufeff"))))
    marked = [row for row in parsed if row["withheld"]]
    assert len(marked) == len(withheld)
    assert all(not (row["lesson"] or row["lesson_title"] or row["exercise"]
                    or row["exercise_name"] or row["comment"] or row["changes"]
                    or row["from_status"] or row["to_status"]) for row in marked)
    # the filters find withheld entries too, without naming them
    assert comments(au, "?action=validated")
    filtered = au.get("/admin/audit?action=validated").get_data(as_text=True)
    assert SECRET_NOTE not in filtered and "withheld" in filtered
