"""Throttling: failed log-ins make an account wait (the same for unknown names), log-ins
per client address, the API per token, exports per user; the answers are 429s with
Retry-After."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from lessons import create_app
from lessons.extensions import db
from lessons.models import AuditRecord, User
from lessons.services import tokens
from tests.conftest import login

WRONG = "Unknown username or wrong password."
LOCKED = "Too many failed log-ins for this account"


@pytest.fixture
def throttled(app, database_url, tmp_path):
    """An app of the test's own, with the production log-in rules and a one-second
    back-off (``app`` is requested for its clean-up of the shared database)."""

    made = []

    def _make(**overrides):
        settings = {"LOGIN_FAILURES_ALLOWED": 5, "LOGIN_BACKOFF_SECONDS": 1,
                    "LOGIN_BACKOFF_MAX_SECONDS": 4, **overrides}
        made.append(create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                               INDEX_DIR=str(tmp_path / "index"), **settings))
        return made[-1]

    yield _make
    for other in made:
        with other.app_context():
            db.engine.dispose()


def attempt(client, username: str, password: str):
    return client.post("/login", data={"username": username, "password": password})


def test_five_failures_make_an_account_wait_and_the_wait_doubles(throttled, make_user):
    app = throttled()
    make_user("gb.one")
    client = app.test_client()
    for _ in range(4):
        response = attempt(client, "gb.one", "guess")
        assert response.status_code == 401 and WRONG in response.text
    fifth = attempt(client, "gb.one", "guess")
    assert fifth.status_code == 429
    assert LOCKED in fifth.text and "Wait 1 second" in fifth.text
    assert fifth.headers["Retry-After"] == "1"
    # The right password is refused while the account waits, from any client.
    refused = attempt(app.test_client(), "gb.one", "demo")
    assert refused.status_code == 429 and LOCKED in refused.text
    time.sleep(1.1)
    sixth = attempt(client, "gb.one", "guess")
    assert sixth.status_code == 429 and sixth.headers["Retry-After"] == "2"
    time.sleep(2.1)
    assert attempt(client, "gb.one", "demo").status_code == 302
    # Success starts the count again.
    client.post("/logout")
    assert attempt(client, "gb.one", "guess").status_code == 401


def test_an_unknown_account_gets_the_same_answers(throttled, make_user):
    app = throttled()
    make_user("gb.one")
    answers = {}
    for name in ("gb.one", "gb.nobody"):
        client = app.test_client()
        answers[name] = [(r.status_code, r.headers.get("Retry-After"),
                          r.text.replace(name, "NAME"))
                         for r in (attempt(client, name, "guess") for _ in range(6))]
    assert answers["gb.one"] == answers["gb.nobody"]
    assert [status for status, _, _ in answers["gb.one"]] == [401] * 4 + [429] * 2


def test_a_wait_is_audited(throttled, make_user):
    app = throttled()
    user = make_user("gb.one")
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.3.3.3"
    for _ in range(5):
        attempt(client, "gb.one", "guess")
    with app.app_context():
        entries = list(db.session.scalars(
            select(AuditRecord).where(AuditRecord.action == "login_locked")))
        assert [(e.actor_id, e.lesson_id, e.subject, e.address) for e in entries] == [
            (user.id, None, "gb.one", "10.3.3.3")]
        assert "1 s" in entries[0].comment


def test_wrong_current_passwords_on_the_account_page_count_too(throttled, make_user):
    app = throttled(LOGIN_FAILURES_ALLOWED=2)
    make_user("gb.one")
    client = app.test_client()
    login(client, "gb.one")
    data = {"current_password": "guess", "new_password": "lantern orchard gravel",
            "new_password_again": "lantern orchard gravel"}
    assert client.post("/account/password", data=data).status_code == 422
    second = client.post("/account/password", data=data)
    assert second.status_code == 429 and second.headers["Retry-After"] == "1"
    assert "Too many wrong passwords" in second.text
    assert attempt(app.test_client(), "gb.one", "demo").status_code == 429


def test_logins_from_one_address_are_limited_whatever_it_claims(throttled):
    app = throttled(LOGIN_RATE_LIMIT="3 per minute")
    client = app.test_client()
    for number in range(3):
        response = client.post("/login", data={"username": f"gb.n{number}", "password": "x"},
                               headers={"X-Forwarded-For": f"192.0.2.{number}"})
        assert response.status_code == 401
    response = client.post("/login", data={"username": "gb.n9", "password": "x"},
                           headers={"X-Forwarded-For": "192.0.2.9"})
    assert response.status_code == 429
    assert "Too many log-in attempts from your address" in response.text
    assert int(response.headers["Retry-After"]) > 0
    assert response.mimetype == "text/html"
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.4.4.4"
    assert client.get("/login").status_code == 200  # pages are not limited
    assert attempt(other, "gb.n1", "x").status_code == 401


def token_for(app, username: str) -> str:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        return tokens.create_token(user, "script")[1]


def test_the_api_is_limited_per_token_with_rate_limit_headers(throttled, make_user):
    app = throttled(API_RATE_LIMIT="3 per minute")
    make_user("gb.one")
    make_user("gb.two")
    client = app.test_client()
    first, second = token_for(app, "gb.one"), token_for(app, "gb.two")
    remaining = []
    for _ in range(3):
        response = client.get("/api/v1/lessons", headers={"Authorization": f"Bearer {first}"})
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert int(response.headers["X-RateLimit-Reset"]) > time.time()
        assert 0 < int(response.headers["Retry-After"]) <= 60  # until the window ends
        remaining.append(response.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    refused = client.get("/api/v1/lessons", headers={"Authorization": f"Bearer {first}"})
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert refused.json["status"] == 429 and "Retry-After" in refused.json["detail"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    other = client.get("/api/v1/lessons", headers={"Authorization": f"Bearer {second}"})
    assert other.status_code == 200


def test_exports_are_limited_per_user(throttled, make_user):
    app = throttled(EXPORT_RATE_LIMIT="2 per minute")
    make_user("gb.one")
    make_user("gb.two")
    one, two = app.test_client(), app.test_client()
    login(one, "gb.one")
    login(two, "gb.two")
    assert [one.get("/search/export").status_code for _ in range(3)] == [200, 200, 429]
    assert two.get("/search/export").status_code == 200


@pytest.mark.parametrize("setting,value,message", [
    ("API_RATE_LIMIT", "lots", "MUSTER_API_RATE_LIMIT is not a rate limit"),
    ("PROXIES", "one", "MUSTER_PROXIES must be a whole number"),
])
def test_malformed_settings_stop_the_app_by_name(database_url, setting, value, message):
    with pytest.raises(RuntimeError, match=message):
        create_app("testing", SQLALCHEMY_DATABASE_URI=database_url, **{setting: value})


def test_make_serve_names_a_malformed_proxy_count():
    import subprocess
    import sys

    from config import BASE_DIR

    result = subprocess.run([sys.executable, "config.py"], cwd=BASE_DIR, capture_output=True,
                            text=True, env={"MUSTER_ENV": "development", "MUSTER_PROXIES": "x"})
    assert result.returncode == 1
    assert "MUSTER_PROXIES must be a whole number" in result.stderr


def test_import_uploads_are_limited_per_user(throttled, make_user):
    app = throttled(IMPORT_RATE_LIMIT="1 per minute")
    make_user("gb.analyst", roles=("analyst",))
    make_user("gb.other", roles=("analyst",))
    one, two = app.test_client(), app.test_client()
    login(one, "gb.analyst")
    login(two, "gb.other")
    assert one.post("/lessons/import").status_code == 422  # no file, but it counts
    refused = one.post("/lessons/import")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "You have done that too often" in refused.text
    assert one.get("/lessons/import").status_code == 200  # the form is not limited
    assert two.post("/lessons/import").status_code == 422
