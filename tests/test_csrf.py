"""CSRF protection on every HTML form: a POST without the token is refused with 400 and
changes nothing; the same POST carrying the token of the rendered page goes through.

The testing config turns CSRF off for the other tests, so these run on a second app with
it on, beside the ``app`` fixture on the same database (whose teardown clears the data).
Each POST is built from the form as the page rendered it, as a browser would submit it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from lessons import create_app
from lessons.extensions import db
from lessons.models import GlossaryGroup, Lesson, RemedialAction, User

TOKEN = "csrf_token"


# --- reading forms off a page ------------------------------------------------------------
@dataclass
class Form:
    action: str | None
    method: str = "get"
    fields: list[tuple[str, str]] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        return next((v for k, v in self.fields if k == name), None)

    def data(self, *, token: bool = True, **overrides: str) -> MultiDict:
        """What submitting the form sends: its successful controls, with ``overrides``
        replacing (or adding) single values, and without the CSRF token if ``token`` is
        false."""
        data = MultiDict(self.fields)
        for name, value in overrides.items():
            data.setlist(name, [value])
        if not token:
            data.poplist(TOKEN)
        return data


class FormParser(HTMLParser):
    """Collects each form's successful controls: named inputs (checked ones for check
    boxes), textareas and selects (the selected options, else the first)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._textarea: str | None = None
        self._text = ""
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=a.get("action"), method=a.get("method", "get").lower()))
        if not self.forms or "disabled" in a:
            return
        fields = self.forms[-1].fields
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    fields.append((a["name"], a.get("value", "on")))
            elif kind not in ("submit", "button", "reset", "image", "file"):
                fields.append((a["name"], a.get("value", "")))
        elif tag == "textarea" and a.get("name"):
            self._textarea, self._text = a["name"], ""
        elif tag == "select" and a.get("name"):
            self._select, self._options = a["name"], []
        elif tag == "option" and self._select:
            self._options.append((a.get("value", ""), "selected" in a))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._textarea is not None:
            # Browsers drop one newline right after <textarea>; WTForms writes one.
            text = self._text[2:] if self._text.startswith("\r\n") else self._text
            text = text[1:] if text.startswith("\n") else text
            self.forms[-1].fields.append((self._textarea, text))
            self._textarea = None
        elif tag == "select" and self._select is not None:
            chosen = [v for v, selected in self._options if selected] or \
                [v for v, _ in self._options[:1]]
            self.forms[-1].fields.extend((self._select, v) for v in chosen)
            self._select = None


def form_on(page: str, action: str | None = None, **hidden: str) -> Form:
    """The one form on ``page`` posting to ``action`` (``None``: to the page itself) whose
    hidden fields include ``hidden``."""
    parser = FormParser()
    parser.feed(page)
    matches = [f for f in parser.forms if f.action == action
               and all(f.value(k) == v for k, v in hidden.items())]
    assert len(matches) == 1, f"expected one form to {action} {hidden}, found {len(matches)}"
    assert matches[0].value(TOKEN), f"the form to {action} renders no CSRF token"
    return matches[0]


# --- fixtures ----------------------------------------------------------------------------
@pytest.fixture
def csrf_app(app: Flask, database_url: str) -> Iterator[Flask]:
    """The app with CSRF on, on the ``app`` fixture's database and index."""
    protected = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                           INDEX_DIR=app.config["INDEX_DIR"], WTF_CSRF_ENABLED=True)
    yield protected
    with protected.app_context():
        db.session.remove()
        db.engine.dispose()


def csrf_login(client: FlaskClient, username: str, password: str = "demo") -> None:
    form = form_on(client.get("/login").text, "/login")
    response = client.post("/login", data=form.data(username=username, password=password))
    assert response.status_code == 302, f"login as {username} failed: {response.status_code}"


@pytest.fixture
def csrf_client(csrf_app: Flask) -> Callable[[str], FlaskClient]:
    """A fresh client of the CSRF app, logged in (with the token) as ``username``."""

    def _client(username: str) -> FlaskClient:
        client = csrf_app.test_client()
        csrf_login(client, username)
        return client

    return _client


@pytest.fixture
def users(make_user) -> None:
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.analyst", "GBR", ("analyst",))


def lesson_row(app: Flask, public_id: str) -> Lesson:
    with app.app_context():
        lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == public_id))
        db.session.expunge(lesson)
        return lesson


def count(app: Flask, model: type) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def assert_refused(response) -> None:
    assert response.status_code == 400
    assert "CSRF token is missing" in response.text


def is_logged_in(client: FlaskClient) -> bool:
    return client.get("/lessons").status_code == 200


# --- /login ------------------------------------------------------------------------------
def test_login_without_token_is_refused_and_logs_nobody_in(csrf_app, users):
    client = csrf_app.test_client()
    form = form_on(client.get("/login").text, "/login")
    response = client.post("/login", data=form.data(token=False, username="gb.author",
                                                    password="demo"))
    assert_refused(response)
    assert not is_logged_in(client)


def test_login_with_token_logs_in(csrf_app, users):
    client = csrf_app.test_client()
    form = form_on(client.get("/login").text, "/login")
    response = client.post("/login", data=form.data(username="gb.author", password="demo"))
    assert response.status_code == 302
    assert is_logged_in(client)


def test_token_of_another_session_is_refused(csrf_app, users):
    other = csrf_app.test_client()
    stolen = form_on(other.get("/login").text, "/login").value(TOKEN)
    client = csrf_app.test_client()
    form = form_on(client.get("/login").text, "/login")
    data = form.data(username="gb.author", password="demo")
    data[TOKEN] = stolen
    response = client.post("/login", data=data)
    assert response.status_code == 400
    assert not is_logged_in(client)


# --- /lessons/new ------------------------------------------------------------------------
NEW_LESSON = {
    "title": "Coalition chat accounts came too late",
    "observation": "Partner liaison officers had no chat accounts on day one.",
    "recommendation": "Request partner accounts at the initial planning conference.",
}


def test_new_lesson_without_token_is_refused_and_stores_nothing(app, users, csrf_client):
    client = csrf_client("gb.author")
    form = form_on(client.get("/lessons/new").text)
    response = client.post("/lessons/new", data=form.data(token=False, action="submit",
                                                          **NEW_LESSON))
    assert_refused(response)
    assert count(app, Lesson) == 0


def test_new_lesson_with_token_is_stored(app, users, csrf_client):
    client = csrf_client("gb.author")
    form = form_on(client.get("/lessons/new").text)
    response = client.post("/lessons/new", data=form.data(action="submit", **NEW_LESSON))
    assert response.status_code == 302
    assert count(app, Lesson) == 1


# --- /lessons/<id>/edit ------------------------------------------------------------------
def test_edit_without_token_is_refused_and_changes_nothing(app, users, make_lesson,
                                                           csrf_client):
    lesson = make_lesson("gb.author")
    client = csrf_client("gb.author")
    path = f"/lessons/{lesson.public_id}/edit"
    form = form_on(client.get(path).text)
    response = client.post(path, data=form.data(token=False, title="Changed title"))
    assert_refused(response)
    stored = lesson_row(app, lesson.public_id)
    assert (stored.title, stored.version) == (form.value("title"), lesson.version)


def test_edit_with_token_is_saved(app, users, make_lesson, csrf_client):
    lesson = make_lesson("gb.author")
    client = csrf_client("gb.author")
    path = f"/lessons/{lesson.public_id}/edit"
    form = form_on(client.get(path).text)
    response = client.post(path, data=form.data(title="Changed title"))
    assert response.status_code == 302
    stored = lesson_row(app, lesson.public_id)
    assert (stored.title, stored.version) == ("Changed title", lesson.version + 1)


# --- /lessons/<id>/transition ------------------------------------------------------------
def test_transition_without_token_is_refused_and_keeps_the_status(app, users, make_lesson,
                                                                  csrf_client):
    lesson = make_lesson("gb.author")
    client = csrf_client("gb.author")
    path = f"/lessons/{lesson.public_id}"
    form = form_on(client.get(path).text, f"{path}/transition", to="submitted")
    assert_refused(client.post(f"{path}/transition", data=form.data(token=False)))
    assert lesson_row(app, lesson.public_id).status == "draft"


def test_transition_with_token_moves_the_lesson(app, users, make_lesson, csrf_client):
    lesson = make_lesson("gb.author")
    client = csrf_client("gb.author")
    path = f"/lessons/{lesson.public_id}"
    form = form_on(client.get(path).text, f"{path}/transition", to="submitted")
    response = client.post(f"{path}/transition", data=form.data())
    assert response.status_code == 302
    assert lesson_row(app, lesson.public_id).status == "submitted"


# --- /lessons/<id>/actions ---------------------------------------------------------------
def test_add_action_without_token_is_refused_and_adds_nothing(app, users, make_lesson,
                                                               csrf_client):
    lesson = make_lesson("gb.author", "validated", analyst="gb.analyst")
    client = csrf_client("gb.analyst")
    path = f"/lessons/{lesson.public_id}"
    form = form_on(client.get(path).text, f"{path}/actions")
    response = client.post(f"{path}/actions",
                           data=form.data(token=False, description="Fix the process"))
    assert_refused(response)
    assert count(app, RemedialAction) == 0


def test_add_action_with_token_adds_it(app, users, make_lesson, csrf_client):
    lesson = make_lesson("gb.author", "validated", analyst="gb.analyst")
    client = csrf_client("gb.analyst")
    path = f"/lessons/{lesson.public_id}"
    form = form_on(client.get(path).text, f"{path}/actions")
    response = client.post(f"{path}/actions", data=form.data(description="Fix the process"))
    assert response.status_code == 302
    assert count(app, RemedialAction) == 1


# --- /logout -----------------------------------------------------------------------------
def test_logout_without_token_is_refused_and_keeps_the_session(users, csrf_client):
    client = csrf_client("gb.author")
    form = form_on(client.get("/lessons").text, "/logout")
    assert_refused(client.post("/logout", data=form.data(token=False)))
    assert is_logged_in(client)


def test_logout_with_token_logs_out(users, csrf_client):
    client = csrf_client("gb.author")
    form = form_on(client.get("/lessons").text, "/logout")
    response = client.post("/logout", data=form.data())
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert not is_logged_in(client)


def test_every_post_form_on_the_lesson_pages_carries_a_token(users, make_lesson, csrf_client):
    """A form rendered without ``csrf_token`` would always be refused: catch it here."""
    lesson = make_lesson("gb.author", "action_assigned", analyst="gb.analyst")
    client = csrf_client("gb.analyst")
    for path in ("/", "/lessons", f"/lessons/{lesson.public_id}",
                 f"/lessons/{lesson.public_id}/edit", "/account", "/lessons/import"):
        parser = FormParser()
        parser.feed(client.get(path).text)
        posts = [f for f in parser.forms if f.method == "post"]
        assert posts, path
        for form in posts:
            assert form.value(TOKEN), f"form to {form.action} on {path} has no CSRF token"



# --- /admin/glossary ---------------------------------------------------------------------
@pytest.fixture
def glossary_group(app: Flask, make_user) -> int:
    """An admin ``us.admin`` and one glossary group of theirs; returns the group's id."""
    from lessons.services import glossary

    make_user("us.admin", "USA", ("admin",))
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.username == "us.admin"))
        return glossary.create_group(admin, ["lno", "lo", "liaison officer"]).id


def glossary_terms(app: Flask) -> list[list[str]]:
    with app.app_context():
        return [list(t) for t in db.session.scalars(
            select(GlossaryGroup.terms).order_by(GlossaryGroup.id))]


def test_new_glossary_group_without_token_is_refused_and_stores_nothing(app, glossary_group,
                                                                       csrf_client):
    client = csrf_client("us.admin")
    form = form_on(client.get("/admin/glossary/new").text)
    response = client.post("/admin/glossary/new",
                           data=form.data(token=False, terms="cp\r\ncommand post"))
    assert_refused(response)
    assert glossary_terms(app) == [["lno", "lo", "liaison officer"]]


def test_new_glossary_group_with_token_is_stored(app, glossary_group, csrf_client):
    client = csrf_client("us.admin")
    form = form_on(client.get("/admin/glossary/new").text)
    response = client.post("/admin/glossary/new", data=form.data(terms="cp\r\ncommand post"))
    assert response.status_code == 302
    assert glossary_terms(app) == [["lno", "lo", "liaison officer"], ["cp", "command post"]]


def test_glossary_edit_without_token_is_refused_and_changes_nothing(app, glossary_group,
                                                                   csrf_client):
    client = csrf_client("us.admin")
    path = f"/admin/glossary/{glossary_group}/edit"
    form = form_on(client.get(path).text)
    assert_refused(client.post(path, data=form.data(token=False, terms="lno\r\nlo")))
    assert glossary_terms(app) == [["lno", "lo", "liaison officer"]]


def test_glossary_delete_without_token_is_refused_and_keeps_the_group(app, glossary_group,
                                                                     csrf_client):
    client = csrf_client("us.admin")
    path = f"/admin/glossary/{glossary_group}/delete"
    form = form_on(client.get(path).text, path)
    assert_refused(client.post(path, data=form.data(token=False)))
    assert glossary_terms(app) == [["lno", "lo", "liaison officer"]]


def test_glossary_delete_with_token_deletes(app, glossary_group, csrf_client):
    client = csrf_client("us.admin")
    path = f"/admin/glossary/{glossary_group}/delete"
    form = form_on(client.get(path).text, path)
    assert client.post(path, data=form.data()).status_code == 302
    assert glossary_terms(app) == []


def test_glossary_reset_without_token_is_refused_and_changes_nothing(app, glossary_group,
                                                                    csrf_client):
    client = csrf_client("us.admin")
    form = form_on(client.get("/admin/glossary/reset").text, "/admin/glossary/reset")
    assert_refused(client.post("/admin/glossary/reset", data=form.data(token=False)))
    assert glossary_terms(app) == [["lno", "lo", "liaison officer"]]


def test_every_post_form_on_the_admin_pages_carries_a_token(glossary_group, csrf_client):
    client = csrf_client("us.admin")
    for path in ("/admin/glossary", "/admin/glossary/new",
                 f"/admin/glossary/{glossary_group}/edit",
                 f"/admin/glossary/{glossary_group}/delete", "/admin/glossary/reset"):
        parser = FormParser()
        parser.feed(client.get(path).text)
        posts = [f for f in parser.forms if f.method == "post"]
        assert posts, path
        for form in posts:
            assert form.value(TOKEN), f"form to {form.action} on {path} has no CSRF token"


# --- /lessons/<id>/links and the new-lesson preview -------------------------------------
def lesson_links(app: Flask) -> int:
    from lessons.models import LessonLink

    return count(app, LessonLink)


@pytest.fixture
def draft_and_related(users, make_lesson) -> tuple[str, str]:
    """A draft of gb.author's and a validated lesson with the same text (so the draft's
    page offers it as a related lesson to link)."""
    other = make_lesson("gb.author", "validated", analyst="gb.analyst")
    draft = make_lesson("gb.author", "draft")
    return draft.public_id, other.public_id


def test_link_without_token_is_refused_and_links_nothing(app, draft_and_related,
                                                         csrf_client):
    draft, other = draft_and_related
    client = csrf_client("gb.author")
    path = f"/lessons/{draft}"
    form = form_on(client.get(path).text, f"{path}/links", other=other)
    assert_refused(client.post(f"{path}/links", data=form.data(token=False)))
    assert lesson_links(app) == 0


def test_link_with_token_links(app, draft_and_related, csrf_client):
    draft, other = draft_and_related
    client = csrf_client("gb.author")
    path = f"/lessons/{draft}"
    form = form_on(client.get(path).text, f"{path}/links", other=other)
    assert client.post(f"{path}/links", data=form.data()).status_code == 302
    assert lesson_links(app) == 1


def test_unlink_without_token_is_refused_and_keeps_the_link(app, draft_and_related,
                                                            csrf_client):
    draft, other = draft_and_related
    client = csrf_client("gb.author")
    path = f"/lessons/{draft}"
    form = form_on(client.get(path).text, f"{path}/links", other=other)
    client.post(f"{path}/links", data=form.data())
    unlink = f"{path}/links/{other}/delete"
    form = form_on(client.get(path).text, unlink)
    assert_refused(client.post(unlink, data=form.data(token=False)))
    assert lesson_links(app) == 1
    assert client.post(unlink, data=form.data()).status_code == 302
    assert lesson_links(app) == 0


def test_similar_lessons_preview_needs_the_token(app, draft_and_related, csrf_client):
    client = csrf_client("gb.author")
    form = form_on(client.get("/lessons/new").text)
    assert_refused(client.post("/lessons/new", data=form.data(token=False, action="preview")))
    response = client.post("/lessons/new", data=form.data(
        action="preview", title="Partner LNOs could not reach the coalition chat"))
    assert response.status_code == 200
    assert 'name="link_to"' in response.text
    assert count(app, Lesson) == 2


# --- exercises ------------------------------------------------------------------------------
@pytest.fixture
def planning(app: Flask, make_user, make_lesson) -> tuple[str, str]:
    """A GBR+USA exercise planned by ``gb.planner`` with one lesson attached (accepted)
    whose REL TO leaves out USA, a pending outcome confirmation and a pending release
    request for ``gb.analyst``; returns (exercise id, lesson id)."""
    from datetime import date, timedelta

    from lessons.services import attachments, packets
    from lessons.services import exercises as exercise_service

    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.analyst", "GBR", ("analyst",))
    make_user("gb.planner", "GBR", ("contributor", "planner"))
    make_user("us.planner", "USA", ("planner",))
    lesson = make_lesson("gb.author", "validated", analyst="gb.analyst")
    other = make_lesson("gb.author", "validated", analyst="gb.analyst", releasable_to=["USA"])
    with app.app_context():
        planner = db.session.scalar(select(User).where(User.username == "gb.planner"))
        us = db.session.scalar(select(User).where(User.username == "us.planner"))
        soon = date.today() + timedelta(days=30)
        exercise = exercise_service.create_exercise(planner, {
            "name": "Exercise CSRF", "type": "cpx", "nations": ["GBR", "USA"],
            "starts_on": date.today() - timedelta(days=1),  # under way: outcomes allowed
            "ends_on": soon + timedelta(days=5),
            "objectives": ["Exchange liaison officers"], "planners": ["us.planner"],
            "milestones": {"initial_planning_conference": date.today()}})
        public_id = exercise.public_id
        attachments.attach_lesson(planner, public_id, lesson.public_id,
                                  {"purpose": "read_ahead"})
        attachments.update_link(planner, public_id, lesson.public_id, {}, to="accepted")
        packets.request_release(planner, public_id, lesson.public_id, ["USA"])
        attachments.attach_lesson(us, public_id, other.public_id, {"purpose": "inject"})
        for to in ("accepted", "incorporated"):
            attachments.update_link(us, public_id, other.public_id, {}, to=to)
        attachments.update_link(us, public_id, other.public_id, {}, to="effective",
                                evidence="It worked.")
    return public_id, lesson.public_id


def test_new_exercise_without_token_is_refused_and_stores_nothing(app, make_user,
                                                                  csrf_client):
    from datetime import date, timedelta

    from lessons.models import Exercise

    make_user("gb.planner", "GBR", ("planner",))
    client = csrf_client("gb.planner")
    form = form_on(client.get("/exercises/new").text)
    start = (date.today() + timedelta(days=9)).isoformat()
    fields = {"name": "Exercise TOKEN", "starts_on": start, "ends_on": start}
    assert_refused(client.post("/exercises/new", data=form.data(token=False, **fields)))
    assert count(app, Exercise) == 0
    response = client.post("/exercises/new", data=form.data(**fields))
    assert response.status_code == 302
    assert count(app, Exercise) == 1


def test_a_link_step_without_token_is_refused_and_changes_nothing(app, planning, csrf_client):
    from lessons.models import ExerciseLesson

    exercise_id, lesson_id = planning
    client = csrf_client("gb.planner")
    action = f"/exercises/{exercise_id}/lessons/{lesson_id}/step"
    form = form_on(client.get(f"/exercises/{exercise_id}").text, action)
    assert_refused(client.post(action, data=form.data(token=False)))
    with app.app_context():
        assert db.session.scalar(select(ExerciseLesson.status).join(Lesson).where(
            Lesson.public_id == lesson_id)) == "accepted"
    assert client.post(action, data=form.data()).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(ExerciseLesson.status).join(Lesson).where(
            Lesson.public_id == lesson_id)) == "incorporated"


def test_a_release_decision_without_token_is_refused(app, planning, csrf_client):
    from lessons.models import ReleaseRequest

    client = csrf_client("gb.analyst")
    page = client.get("/lessons?tab=review").text
    with app.app_context():
        request_id = db.session.scalar(select(ReleaseRequest.public_id))
    action = f"/reviews/releases/{request_id}"
    form = form_on(page, action)
    assert_refused(client.post(action, data=form.data(token=False, decision="approve")))
    with app.app_context():
        assert db.session.scalar(select(ReleaseRequest.status)) == "pending"
    assert client.post(action, data=form.data(decision="approve")).status_code == 302


def test_every_post_form_on_the_exercise_pages_carries_a_token(planning, csrf_client):
    exercise_id, lesson_id = planning
    pages = {
        "gb.planner": ["/exercises/new", f"/exercises/{exercise_id}",
                       f"/exercises/{exercise_id}/edit",
                       f"/exercises/{exercise_id}/packet?milestone=initial_planning_conference",
                       f"/exercises/{exercise_id}/lessons/{lesson_id}/edit",
                       f"/exercises/{exercise_id}/attach-by-tag?tag=liaison",
                       f"/lessons/{lesson_id}"],
        "gb.analyst": ["/lessons?tab=review"],
    }
    for user, paths in pages.items():
        client = csrf_client(user)
        for path in paths:
            parser = FormParser()
            parser.feed(client.get(path).text)
            posts = [f for f in parser.forms if f.method == "post"]
            assert posts, path
            for form in posts:
                assert form.value(TOKEN), f"form to {form.action} on {path} has no CSRF token"


def test_the_api_takes_bearer_tokens_and_no_csrf_token(app, users, csrf_app, csrf_client):
    from lessons.models import ApiToken
    from lessons.services import tokens

    with app.app_context():
        author = db.session.scalar(select(User).where(User.username == "gb.author"))
        secret = tokens.create_token(author, "script")[1]
    response = csrf_app.test_client().post(
        "/api/v1/lessons", json={"title": "Via the API", "observation": "No CSRF needed."},
        headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 201
    # The account page's token form is a CSRF-protected HTML form like any other.
    client = csrf_client("gb.author")
    form = form_on(client.get("/account").text, "/account/tokens")
    assert_refused(client.post("/account/tokens", data=form.data(token=False, name="x")))
    assert count(app, ApiToken) == 1
