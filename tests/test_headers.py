"""Response headers: nothing one user may see is stored by a cache, pages cannot be
framed or embed plugins, HTTPS answers ask browsers to stay on HTTPS, and no header
names a server version (checked on the app and on the production server, gunicorn)."""

from __future__ import annotations

import pytest

from lessons.services import tokens
from tests import test_serve
from tests.http_client import Http

served = test_serve.served  # the real gunicorn server, started by its own fixture


@pytest.fixture
def secret(app, make_user, make_lesson):
    make_user("gb.author", "GBR", ("contributor",))
    make_lesson("gb.author", "draft")
    with app.app_context():
        from sqlalchemy import select

        from lessons.extensions import db
        from lessons.models import User

        author = db.session.scalar(select(User).where(User.username == "gb.author"))
        return tokens.create_token(author, "headers")[1]


def assert_private(response) -> None:
    assert response.headers.get("Cache-Control") == "no-store", response.request.path
    assert "Server" not in response.headers


def assert_unframeable(response) -> None:
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"


def test_pages_for_a_logged_in_user_are_not_stored(secret, login_as):
    client = login_as("gb.author")
    for path in ("/lessons", "/search?q=liaison", "/account", "/exercises", "/no-such-page"):
        response = client.get(path)
        assert_private(response)
        assert_unframeable(response)


def test_the_login_page_and_the_login_answer_are_not_stored(client, secret):
    page = client.get("/login")
    assert page.status_code == 200
    assert_private(page)
    assert_unframeable(page)
    answer = client.post("/login", data={"username": "gb.author", "password": "demo"})
    assert answer.status_code == 302
    assert_private(answer)


def test_every_api_answer_is_not_stored(client, secret):
    auth = {"Authorization": f"Bearer {secret}"}
    for path, status in (("/api/v1/lessons", 200), ("/api/v1/lessons/ZZZZZZZZZZZZ", 404),
                         ("/api/v1/openapi.json", 200)):
        response = client.get(path, headers=auth)
        assert response.status_code == status
        assert_private(response)
    assert_private(client.get("/api/v1/lessons"))  # 401


@pytest.mark.parametrize("query", ["", "?format=csv"])
def test_exports_are_not_stored(secret, login_as, query):
    response = login_as("gb.author").get(f"/search/export{query}")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert_private(response)
    response.close()


def test_static_files_stay_cacheable(client):
    response = client.get("/static/css/muster.css")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")
    response.close()


def test_hsts_only_over_https(client, secret):
    secure = client.get("/login", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "Strict-Transport-Security" not in client.get("/login").headers


def test_gunicorn_names_no_version(served):
    """gunicorn 27 always sends ``Server: gunicorn`` (no setting changes it); the app adds
    no Server header of its own, so nothing names a version."""
    for path in ("/login", "/api/v1/openapi.json", "/static/css/muster.css"):
        reply = Http(served.address).get(path)
        assert reply.status == 200
        assert reply.headers["server"] == "gunicorn"

