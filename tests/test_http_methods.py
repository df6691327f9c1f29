"""Every HTTP method on every route answers as HTTP says: a method a URL does not take
gets 405 with ``Allow``, ``OPTIONS`` gets ``Allow`` (API too, with or without a token),
``HEAD`` is ``GET`` without a body; and no method, header or query string, however
odd, gets a server error.

The routes come from ``app.url_map`` itself, so a route added later is covered without
editing this file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from lessons.extensions import db
from lessons.models import ExerciseLesson, GlossaryGroup, Lesson, User
from lessons.services import tokens

METHODS = ("OPTIONS", "HEAD", "GET", "POST", "PUT", "PATCH", "DELETE", "TRACE", "FOO",
           "PROPFIND")
JUNK = {"string": "no-such-thing", "int": "987654"}
USER = "gb.planner"


@dataclass
class World:
    """Real ids from the demo data, to fill path arguments with."""

    lesson: str
    other_lesson: str
    exercise: str
    linked_lesson: str
    glossary_group: str
    spare_token: str
    secret: str


@pytest.fixture
def world(app: Flask, demo: None) -> World:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == USER))
        link = next(link for link in db.session.scalars(select(ExerciseLesson))
                    if user.nation_code in link.exercise.nations)
        other = db.session.scalars(select(Lesson).where(Lesson.id != link.lesson_id)).first()
        group = db.session.scalars(select(GlossaryGroup)).first()
        spare = tokens.create_token(user, "to be revoked by the sweep")[0]
        return World(lesson=link.lesson.public_id, other_lesson=other.public_id,
                     exercise=link.exercise.public_id, linked_lesson=link.lesson.public_id,
                     glossary_group=str(group.id), spare_token=str(spare.id),
                     secret=tokens.create_token(user, "sweep")[1])


def _plausible(world: World, rule: str, name: str) -> str:
    on_exercise = "/exercises/" in rule or rule.startswith("/reviews/")
    return {
        "public_id": world.exercise if on_exercise else world.lesson,
        "exercise_id": world.exercise,
        "lesson_id": world.linked_lesson,
        "other_id": world.other_lesson,
        "position": "1",
        "group_id": world.glossary_group,
        "token_id": world.spare_token,
        "user_id": "1",  # any account: only administrators reach past the blueprint
        "request_id": "1",
        "token": "not-an-import",
        "filename": "css/muster.css",
    }.get(name, "x")


def urls(app: Flask, world: World) -> Iterator[tuple[str, str]]:
    """(rule, url) for every rule: once with plausible path values, once with junk."""
    seen: set[str] = set()
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.rule in seen:  # the API routes one path to several endpoints
                continue
            seen.add(rule.rule)
            converters = {name: type(conv).__name__ for name, conv in
                          rule._converters.items()}
            fillings = [{name: _plausible(world, rule.rule, name) for name in rule.arguments}]
            if rule.arguments:
                fillings.append({name: JUNK["int" if converters[name] == "IntegerConverter"
                                            else "string"] for name in rule.arguments})
            for values in fillings:
                path = rule.rule
                for name, value in values.items():
                    path = re.sub(rf"<(?:[a-z]+:)?{name}>", value, path)
                yield rule.rule, path


@pytest.fixture
def secret(app: Flask, make_user) -> str:
    """An API token of a user who is also logged in on the web (without demo data)."""
    make_user(USER, "GBR", ("contributor", "planner"))
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == USER))
        return tokens.create_token(user, "script")[1]


def allowed_methods(app: Flask, rule_text: str) -> set[str]:
    return {method for rule in app.url_map.iter_rules() if rule.rule == rule_text
            for method in rule.methods or ()}


def allow_header(response) -> set[str]:
    return {part.strip() for part in response.headers.get("Allow", "").split(",")
            if part.strip()}


@pytest.fixture
def identities(app: Flask, world: World, login_as) -> dict[str, Callable[[], FlaskClient]]:
    """A client per way of calling: nobody, a logged-in web user, an API token (which
    also carries the web user's cookie: the API must ignore it)."""

    def anonymous() -> tuple[FlaskClient, dict[str, str]]:
        return app.test_client(), {}

    def web() -> tuple[FlaskClient, dict[str, str]]:
        return login_as(USER), {}

    def token() -> tuple[FlaskClient, dict[str, str]]:
        return login_as(USER), {"Authorization": f"Bearer {world.secret}"}

    return {"anonymous": anonymous, "web": web, "token": token}


@pytest.mark.parametrize("who", ["anonymous", "web", "token"])
def test_every_method_on_every_route_answers_as_http_says(app, world, identities, who):
    client, headers = identities[who]()
    failures: list[str] = []
    checked = 0
    # Logging out ends the session the rest of the sweep needs: it goes last.
    ordered = sorted(urls(app, world), key=lambda pair: pair[0] == "/logout")
    for rule, url in ordered:
        expected = allowed_methods(app, rule)
        for method in METHODS:
            response = client.open(url, method=method, headers=headers)
            response.close()
            checked += 1
            status = response.status_code
            where = f"{method} {url} as {who}: {status}"
            if status >= 500:
                failures.append(f"{where} {response.get_data(as_text=True)[:200]}")
            elif method not in expected and status != 405:
                failures.append(f"{where}, expected 405")
            elif status == 405 and allow_header(response) != expected:
                failures.append(f"{where} Allow {response.headers.get('Allow')!r}, "
                                f"expected {sorted(expected)}")
            elif method == "OPTIONS" and (status != 200
                                          or allow_header(response) != expected):
                failures.append(f"{where} Allow {response.headers.get('Allow')!r}")
            elif method == "HEAD" and response.get_data():
                failures.append(f"{where} has a body")
    assert checked > 500
    assert not failures, "\n".join(failures)


def test_options_on_the_api_is_answered_without_a_token(client):
    response = client.options("/api/v1/lessons")
    assert response.status_code == 200
    assert allow_header(response) == {"GET", "HEAD", "OPTIONS", "POST"}


def test_a_method_the_api_does_not_take_is_405_problem_with_allow_even_without_a_token(
        client):
    response = client.delete("/api/v1/lessons")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert allow_header(response) == {"GET", "HEAD", "OPTIONS", "POST"}


def test_head_on_the_api_checks_its_query_like_get(client, secret):
    auth = {"Authorization": f"Bearer {secret}"}
    assert client.head("/api/v1/lessons?page=2", headers=auth).status_code == 200
    assert client.head("/api/v1/lessons?stauts=draft", headers=auth).status_code == 422
    assert client.get("/api/v1/lessons?stauts=draft", headers=auth).status_code == 422


def test_a_web_page_answers_a_method_it_does_not_take_with_405_and_allow(client):
    response = client.put("/lessons")
    assert response.status_code == 405
    assert allow_header(response) == {"GET", "HEAD", "OPTIONS"}


ODD_HEADERS: list[dict[str, str]] = [
    {"If-Match": "garbage"}, {"If-Match": 'W/"1"'}, {"If-Match": '"1", "2"'},
    {"If-Match": '"99999999999999999999999999"'}, {"If-Match": "*"}, {"If-Match": '"'},
    {"If-Match": "x" * 8000},
    {"Content-Type": "x" * 8000}, {"Content-Type": "application/json; charset=nonsense"},
    {"Content-Type": "application/json; charset=utf-16"}, {"Content-Type": "multipart/form-data"},
    {"Content-Type": "multipart/form-data; boundary=x"}, {"Content-Type": ";;;=;"},
    {"Content-Type": "application/x-www-form-urlencoded; charset=bogus"},
    {"Accept": "garbage"}, {"Accept": "*/*;q=bad"}, {"Accept": "x" * 8000},
    {"Accept-Language": "??;q=x"}, {"Accept-Encoding": "bogus;q=2"},
    {"Authorization": "Basic Z2IucGxhbm5lcjpkZW1v"}, {"Authorization": "Bearer"},
    {"Authorization": "Bearer "}, {"Authorization": "Bearer mus_" + "A" * 5000},
    {"Authorization": "Digest username=x"}, {"Authorization": "bearer\tmus_x"},
    {"Authorization": "Bearer mus_\u00e9\u00e8"}, {"If-None-Match": "garbage"},
    {"If-Modified-Since": "yesterday"}, {"Range": "bytes=oops"}, {"Cookie": "session=%%%"},
    {"Idempotency-Key": ""}, {"Idempotency-Key": "k" * 5000},
    {"Idempotency-Key": "caf\u00e9"}, {"X-Forwarded-For": "garbage"},
]

ODD_QUERIES: list[str] = [
    "page=1&page=2&page=x", "unknown=1", "q=%FF%FE%FD", "%FF=1", "q=" + "a" * 20000,
    "page=99999999999999999999999", "per_page=-1", "=", "&&&", "a[b]=c", "q=%00",
    "when=%FF", "milestone=%FF&audience=%FF,%FE", "kind=%FF&domain=x&tag=" + "t" * 5000,
    "q=%E2%82", "sort=newest&sort=relevance", "next=//evil.example",
]


@pytest.fixture
def sample(world: World) -> list[tuple[str, str, str | None]]:
    """(method, url, body) across pages, API reads and API writes."""
    lesson, exercise = world.lesson, world.exercise
    body = '{"title": "t"}'
    return [
        ("GET", "/", None), ("GET", "/lessons", None), ("GET", "/search", None),
        ("GET", f"/lessons/{lesson}", None), ("POST", f"/lessons/{lesson}/edit", "title=t"),
        ("POST", "/login", "username=x&password=y"), ("GET", f"/exercises/{exercise}/packet",
                                                      None),
        ("GET", "/api/v1/lessons", None), ("GET", f"/api/v1/lessons/{lesson}", None),
        ("POST", "/api/v1/lessons", body), ("PATCH", f"/api/v1/lessons/{lesson}", body),
        ("POST", f"/api/v1/lessons/{lesson}/transitions", '{"to": "validated"}'),
        ("POST", "/api/v1/exercises", body), ("GET", f"/api/v1/exercises/{exercise}/packet",
                                              None),
        ("PATCH", f"/api/v1/exercises/{exercise}/lessons/{world.linked_lesson}", body),
        ("GET", "/api/v1/openapi.json", None),
    ]


def test_odd_headers_and_query_strings_never_get_a_server_error(app, world, login_as,
                                                                  sample):
    web = login_as(USER)
    auth = {"Authorization": f"Bearer {world.secret}"}
    failures: list[str] = []
    for method, url, body in sample:
        base = auth if url.startswith("/api/") else {}
        for odd in ODD_HEADERS:
            headers = {**base, **odd}
            response = web.open(url, method=method, headers=headers, data=body)
            if response.status_code >= 500:
                failures.append(f"{method} {url} {str(odd)[:80]}: {response.status_code}")
        for query in ODD_QUERIES:
            response = web.open(f"{url}?{query}", method=method, headers=base, data=body,
                                content_type="application/json" if body and "/api/" in url
                                else "application/x-www-form-urlencoded")
            if response.status_code >= 500:
                failures.append(f"{method} {url}?{query[:60]}: {response.status_code}")
    assert not failures, "\n".join(failures)


def test_a_bearer_token_sent_to_a_page_or_an_api_with_a_web_cookie_stays_apart(
        client, secret, login_as):
    """The API ignores the session cookie, and pages ignore the bearer token."""
    web = login_as(USER)
    assert web.get("/api/v1/lessons").status_code == 401
    anonymous_page = client.get("/account",
                                headers={"Authorization": f"Bearer {secret}"})
    assert anonymous_page.status_code == 302


@pytest.mark.parametrize("raw", ["[1, 2]", "{", '{"title": {"a": 1}}', '"text"'])
def test_json_posted_to_a_page_is_refused_with_415(make_user, login_as, raw):
    make_user("gb.writer")
    web = login_as("gb.writer")
    response = web.post("/lessons/new", data=raw, content_type="application/json")
    assert response.status_code == 415
    assert b"/api/v1" in response.data


def test_json_posted_to_a_page_with_csrf_on_is_a_csrf_refusal_not_a_server_error(
        app, database_url):
    """With CSRF on (production), its check answers first; drawing that error page must
    not read the JSON body as the page header's logout form."""
    from lessons import create_app

    guarded = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                         INDEX_DIR=app.config["INDEX_DIR"], WTF_CSRF_ENABLED=True)
    client = guarded.test_client()
    for raw in ("{", "[1, 2]"):
        response = client.post("/login", data=raw, content_type="application/json")
        assert response.status_code == 400
    with guarded.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("depth", [300, 600, 5000, 100_000])
def test_json_nested_too_deeply_is_a_400_not_a_server_error(client, secret, depth):
    auth = {"Authorization": f"Bearer {secret}"}
    for raw in ("[" * depth + "]" * depth, '{"title": ' + "[" * depth + "]" * depth + "}"):
        response = client.post("/api/v1/lessons", data=raw, headers=auth,
                               content_type="application/json")
        assert response.status_code in (400, 422)
        assert response.mimetype == "application/problem+json"


def test_an_unknown_address_gets_the_house_404_page_with_a_search_box(app, make_user,
                                                                      login_as, client):
    make_user("gb.author", "GBR")
    anonymous = client.get("/no/such/page")
    assert anonymous.status_code == 404
    assert "<h1>Page not found</h1>" in anonymous.text
    assert "requested URL was not found" not in anonymous.text
    assert 'data-testid="not-found-search"' not in anonymous.text  # search needs a login
    page = login_as("gb.author").get("/no/such/page")
    assert page.status_code == 404 and "<h1>Page not found</h1>" in page.text
    assert 'data-testid="not-found-search"' in page.text
    assert 'action="/search"' in page.text
    # A lesson that is hidden or gone keeps its own wording, and the search box too.
    hidden = login_as("gb.author").get("/lessons/zzzzzzzzzz")
    assert hidden.status_code == 404 and 'data-testid="not-found-search"' in hidden.text
    api = client.get("/api/v1/no/such/thing")
    assert api.status_code == 404 and api.headers["Content-Type"].startswith(
        "application/problem+json")
