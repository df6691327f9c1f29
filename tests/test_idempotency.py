"""Safe retries of API creates with ``Idempotency-Key``: a repeat gets the first answer
and creates nothing; another body under the same key is a 422; keys are per user,
bounded, and forgotten after 24 hours; two requests racing with one key create once.

The races and the dropped connection go through a real threaded HTTP server, on SQLite
and (with ``TEST_DATABASE_URL``) on PostgreSQL.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from datetime import date, timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from lessons.extensions import db
from lessons.models import AuditRecord, Exercise, IdempotentRequest, Lesson, User
from lessons.models.base import utcnow
from lessons.services import tokens
from tests.conftest import lesson_fields
from tests.http_client import race, serving

SOON = date.today() + timedelta(days=30)
ROUNDS = 10


@pytest.fixture
def people(make_user) -> None:
    make_user("gb.author", "GBR", ("contributor", "planner"))
    make_user("us.author", "USA", ("contributor", "planner"))


@pytest.fixture
def secret(app: Flask, people) -> dict[str, str]:
    """An API token per user."""
    with app.app_context():
        return {user.username: tokens.create_token(user, "retries")[1]
                for user in db.session.scalars(select(User))}


def lesson_body(**overrides: Any) -> dict[str, Any]:
    return json.loads(json.dumps(lesson_fields(**overrides), default=str))


def exercise_body(**overrides: Any) -> dict[str, Any]:
    return {"name": "Exercise STEADFAST RETRY", "starts_on": str(SOON), "ends_on": str(SOON),
            "nations": ["GBR", "USA"], "objectives": ["Retry safely"], **overrides}


def post(client, path: str, body: Any, secret: str, key: str | None = None):
    headers = {"Authorization": f"Bearer {secret}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"/api/v1{path}", data=json.dumps(body), headers=headers,
                       content_type="application/json")


def count(app: Flask, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def created_audits(app: Flask) -> int:
    return count(app, AuditRecord, AuditRecord.action.in_(("created", "exercise_created")))


@pytest.mark.parametrize("path, body, model", [
    ("/lessons", lesson_body(submit=True), Lesson),
    ("/exercises", exercise_body(), Exercise)])
def test_a_repeat_gets_the_first_answer_and_creates_nothing(app, client, secret, path, body,
                                                            model):
    first = post(client, path, body, secret["gb.author"], "create-1")
    again = post(client, path, body, secret["gb.author"], "create-1")
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.get_data() == first.get_data()
    for header in ("Location", "ETag", "Content-Type"):
        assert again.headers[header] == first.headers[header]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert count(app, model) == 1
    assert created_audits(app) == 1
    assert count(app, IdempotentRequest) == 1
    fetched = client.get(first.headers["Location"],
                         headers={"Authorization": f"Bearer {secret['gb.author']}"})
    assert fetched.get_json() == first.get_json()


def test_the_same_values_in_another_key_order_or_spacing_count_as_the_same_body(
        app, client, secret):
    body = lesson_body()
    first = post(client, "/lessons", body, secret["gb.author"], "order")
    reordered = dict(reversed(list(body.items())))
    response = client.post("/api/v1/lessons", data=json.dumps(reordered, indent=3),
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {secret['gb.author']}",
                                    "Idempotency-Key": "order"})
    assert response.status_code == 201
    assert response.get_json()["id"] == first.get_json()["id"]
    assert count(app, Lesson) == 1


def test_the_same_key_with_another_body_is_a_422_that_says_so(app, client, secret):
    assert post(client, "/lessons", lesson_body(), secret["gb.author"], "k1").status_code == 201
    other = post(client, "/lessons", lesson_body(title="Another lesson entirely"),
                 secret["gb.author"], "k1")
    assert other.status_code == 422
    assert other.mimetype == "application/problem+json"
    problem = other.get_json()
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert "different request body" in problem["detail"]
    assert count(app, Lesson) == 1


def test_a_key_used_for_a_lesson_cannot_create_an_exercise(app, client, secret):
    assert post(client, "/lessons", lesson_body(), secret["gb.author"], "k").status_code == 201
    response = post(client, "/exercises", exercise_body(), secret["gb.author"], "k")
    assert response.status_code == 422
    assert count(app, Exercise) == 0


def test_keys_are_per_user(app, client, secret):
    mine = post(client, "/lessons", lesson_body(), secret["gb.author"], "shared-key")
    theirs = post(client, "/lessons", lesson_body(nations=["USA"]), secret["us.author"],
                  "shared-key")
    assert mine.status_code == theirs.status_code == 201
    assert mine.get_json()["id"] != theirs.get_json()["id"]
    assert "Idempotent-Replayed" not in theirs.headers
    assert count(app, Lesson) == 2


@pytest.mark.parametrize("key", ["", " ", "has space", "caf\u00e9", "k" * 256, "tab\there"])
def test_a_malformed_key_is_refused_with_a_clear_422(app, client, secret, key):
    response = post(client, "/lessons", lesson_body(), secret["gb.author"],
                    key.encode("utf-8").decode("latin-1"))
    assert response.status_code == 422
    error = response.get_json()["errors"][0]
    assert error["field"] == "Idempotency-Key"
    assert "visible ASCII" in error["message"]
    assert count(app, Lesson) == 0


def test_the_longest_key_is_accepted(client, secret):
    key = "~!" * 127 + "z"
    assert len(key) == 255
    first = post(client, "/lessons", lesson_body(), secret["gb.author"], key)
    assert first.status_code == 201
    assert post(client, "/lessons", lesson_body(), secret["gb.author"],
                key).headers["Idempotent-Replayed"] == "true"


def test_a_refused_create_stores_nothing_so_the_key_can_carry_the_corrected_body(
        app, client, secret):
    refused = post(client, "/lessons", lesson_body(nations=["XXX"]), secret["gb.author"], "fix")
    assert refused.status_code == 422
    assert count(app, IdempotentRequest) == 0
    fixed = post(client, "/lessons", lesson_body(), secret["gb.author"], "fix")
    assert fixed.status_code == 201
    assert count(app, Lesson) == 1


def test_a_key_older_than_24_hours_is_forgotten_and_pruned(app, client, secret):
    first = post(client, "/lessons", lesson_body(), secret["gb.author"], "old")
    stale = post(client, "/lessons", lesson_body(), secret["us.author"], "stale")
    assert first.status_code == stale.status_code == 201
    with app.app_context():
        db.session.execute(update(IdempotentRequest).values(
            created_at=utcnow() - timedelta(hours=24, minutes=1)))
        db.session.commit()
    again = post(client, "/lessons", lesson_body(), secret["gb.author"], "old")
    assert again.status_code == 201
    assert again.get_json()["id"] != first.get_json()["id"]
    assert "Idempotent-Replayed" not in again.headers
    assert count(app, Lesson) == 3
    # The write pruned both expired keys, the other user's too; only the new one is left.
    with app.app_context():
        assert [row.key for row in db.session.scalars(select(IdempotentRequest))] == ["old"]


def test_without_a_key_every_post_creates(app, client, secret):
    for _ in range(2):
        assert post(client, "/lessons", lesson_body(), secret["gb.author"]).status_code == 201
    assert count(app, Lesson) == 2
    assert count(app, IdempotentRequest) == 0


def test_the_openapi_document_describes_the_header(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path in ("/lessons", "/exercises"):
        operation = paths[path]["post"]
        header = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
        assert header["in"] == "header" and not header["required"]
        assert header["schema"]["maxLength"] == 255
        assert "24 hours" in header["description"]
        assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]
        assert "409" in operation["responses"]
    assert "Idempotency-Key" not in json.dumps(paths["/lessons/{public_id}"])


# Through a real server ------------------------------------------------------------------


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    with serving(app) as address:
        yield address


def send(address: str, path: str, body: Any, secret: str, key: str) -> SimpleNamespace:
    connection = http.client.HTTPConnection(address, timeout=60)
    try:
        connection.request("POST", f"/api/v1{path}", body=json.dumps(body), headers={
            "Authorization": f"Bearer {secret}", "Idempotency-Key": key,
            "Content-Type": "application/json"})
        response = connection.getresponse()
        return SimpleNamespace(status=response.status, text=response.read().decode(),
                               headers={k.lower(): v for k, v in response.getheaders()})
    finally:
        connection.close()


def test_two_requests_racing_with_one_key_create_once(app, secret, server):
    for round_ in range(ROUNDS):
        call = partial(send, server, "/lessons", lesson_body(title=f"Racing retry {round_}"),
                       secret["gb.author"], f"race-{round_}")
        answers = race(call, call)
        assert [a.status for a in answers] == [201, 201], [a.text[:200] for a in answers]
        assert answers[0].text == answers[1].text
        assert answers[0].headers["location"] == answers[1].headers["location"]
        assert sorted("idempotent-replayed" in a.headers for a in answers) == [False, True]
        assert count(app, Lesson) == round_ + 1
        assert created_audits(app) == round_ + 1


def test_two_requests_racing_with_one_key_and_different_bodies_create_once(app, secret,
                                                                          server):
    for round_ in range(ROUNDS):
        answers = race(*(partial(send, server, "/exercises",
                                 exercise_body(name=f"Exercise {side}{round_}"),
                                 secret["gb.author"], f"race-{round_}") for side in "AB"))
        assert sorted(a.status for a in answers) == [201, 422], [a.text[:200]
                                                                 for a in answers]
        assert count(app, Exercise) == round_ + 1


def stored_by_then(app: Flask, deadline: float) -> None:
    """Wait for the server to finish the request whose client went away."""
    while count(app, IdempotentRequest) == 0:
        assert time.monotonic() < deadline, "the dropped request was never stored"
        time.sleep(0.02)


def test_a_create_whose_connection_dropped_is_safely_retried(app, secret, server):
    """The client sends the request and its connection drops before the answer comes
    back; it sends the same request again and gets the lesson that was stored."""
    body = json.dumps(lesson_body(submit=True)).encode()
    host, port = server.split(":")
    request = (f"POST /api/v1/lessons HTTP/1.1\r\nHost: {server}\r\n"
               f"Authorization: Bearer {secret['gb.author']}\r\n"
               f"Idempotency-Key: dropped\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    with socket.create_connection((host, int(port)), timeout=30) as dropped:
        dropped.sendall(request)
        dropped.shutdown(socket.SHUT_WR)  # and never read the answer
    stored_by_then(app, deadline=time.monotonic() + 30)
    retry = send(server, "/lessons", json.loads(body), secret["gb.author"], "dropped")
    assert retry.status == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert count(app, Lesson) == 1
    with app.app_context():
        lesson = db.session.scalar(select(Lesson))
        assert json.loads(retry.text)["id"] == lesson.public_id
        assert lesson.status == "submitted"
    assert created_audits(app) == 1
