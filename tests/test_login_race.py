"""Racing password guesses through real HTTP: an account's back-off holds however many
guesses arrive at the same moment, on /login and on the account page's current-password
check, with the counters in memory and (when the server answers) in Redis.

Without an atomic reservation every request passes the "does the account wait?" check
before any failure is counted, so twenty parallel guesses all get their password
checked although the account allows five.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from functools import partial

import pytest
from flask import Flask
from werkzeug.security import check_password_hash

from lessons import create_app
from lessons.extensions import db
from lessons.services import users as user_service
from tests.http_client import Http, race, serving

ALLOWED = 5
RACERS = 20
PASSWORD = "lantern orchard gravel"
REDIS = "redis://127.0.0.1:6379/11"


def _redis_answers() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001 - no server: the Redis variant is skipped
        return False


@pytest.fixture(params=["memory://", REDIS])
def raced(request, app: Flask, database_url: str, tmp_path) -> Iterator[tuple[Flask, str]]:
    """An app of the test's own with the production back-off, slow (scrypt) hashes and
    an address limit out of the way, and an account on it; yields the app and the
    account's name (unique, so Redis counters of another run cannot interfere)."""
    if request.param == REDIS and not _redis_answers():
        pytest.skip("no Redis server at 127.0.0.1:6379")
    raced_app = create_app(
        "testing", SQLALCHEMY_DATABASE_URI=database_url, INDEX_DIR=str(tmp_path / "index"),
        RATELIMIT_STORAGE_URI=request.param, LOGIN_FAILURES_ALLOWED=ALLOWED,
        LOGIN_BACKOFF_SECONDS=60, LOGIN_BACKOFF_MAX_SECONDS=600,
        LOGIN_RATE_LIMIT="100000 per minute", PASSWORD_HASH_METHOD="scrypt")
    username = f"gb.race{secrets.token_hex(4)}"
    with raced_app.app_context():
        user_service.create_user(username, nation="GBR", roles=["contributor"],
                                 password=PASSWORD)
    yield raced_app, username
    with raced_app.test_request_context():
        from lessons import throttle

        throttle.login_succeeded(username)  # Redis keeps counters between runs
        db.engine.dispose()


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password the server checks against a stored hash, in order."""
    checked: list[str] = []
    lock = threading.Lock()

    def counting(pwhash: str, password: str) -> bool:
        with lock:
            checked.append(password)
        return check_password_hash(pwhash, password)

    monkeypatch.setattr(user_service, "check_password_hash", counting)
    return checked


def _guess(address: str, path: str, form: dict, cookies: dict | None = None):
    return Http(address, cookies=dict(cookies or {})).send("POST", path, form=form)


def _assert_held(replies, wrong_status: int, checks: list[str]) -> None:
    statuses = [reply.status for reply in replies]
    assert set(statuses) <= {wrong_status, 429}, statuses
    # Four wrong answers, then the fifth failure starts the wait: five checks at most.
    assert statuses.count(wrong_status) <= ALLOWED - 1, statuses
    assert len(checks) <= ALLOWED, f"{len(checks)} passwords checked"
    for reply in replies:
        if reply.status == 429:
            assert int(reply.headers["retry-after"]) >= 1


def test_parallel_wrong_passwords_at_login_get_no_more_checks_than_allowed(raced, checks):
    app, username = raced
    with serving(app) as address:
        guesses = [partial(_guess, address, "/login",
                           {"username": username, "password": f"guess number {n}"})
                   for n in range(RACERS)]
        replies = race(*guesses)
        _assert_held(replies, 401, checks)
        right = _guess(address, "/login", {"username": username, "password": PASSWORD})
        assert right.status == 429 and int(right.headers["retry-after"]) >= 1


def test_parallel_unknown_usernames_are_held_the_same_way(raced, checks):
    app, _username = raced
    nobody = f"gb.nobody{secrets.token_hex(4)}"
    with serving(app) as address:
        replies = race(*[partial(_guess, address, "/login",
                                 {"username": nobody, "password": f"guess {n}"})
                         for n in range(RACERS)])
        _assert_held(replies, 401, checks)
    with app.test_request_context():
        from lessons import throttle

        throttle.login_succeeded(nobody)


def test_parallel_wrong_current_passwords_on_the_account_page_are_held(raced, checks):
    app, username = raced
    with serving(app) as address:
        browser = Http(address).login(username, PASSWORD)
        checks.clear()
        new = "quartz meadow lantern"
        guesses = [partial(_guess, address, "/account/password",
                           {"current_password": f"guess number {n}", "new_password": new,
                            "new_password_again": new}, browser.cookies)
                   for n in range(RACERS)]
        replies = race(*guesses)
        _assert_held(replies, 422, checks)
        right = _guess(address, "/login", {"username": username, "password": PASSWORD})
        assert right.status == 429
