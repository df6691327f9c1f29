"""Logs: one JSON object a line, a request id on every line written during a request
(taken from X-Request-ID only when short and safe) and echoed in the answer, and one
access line per request, through the Flask test client and the real handler."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from flask import Flask

from lessons import logs

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def output(app: Flask) -> Iterator[io.StringIO]:
    """The handler production installs, writing JSON into a buffer; and a page that
    logs from inside a request, as any module's logger would."""
    stream = io.StringIO()
    handler = logs.configure("json", stream=stream)

    @app.get("/_log-probe")
    def probe() -> str:
        logging.getLogger("lessons.probe").warning("inside %s", "the request")
        return "ok"

    yield stream
    logging.getLogger().removeHandler(handler)


@pytest.fixture
def member(make_user, login_as, output: io.StringIO):
    """A logged-in client (every page but the log-in's needs one), its log-in's lines
    cleared from the output."""
    make_user("gb.member")
    client = login_as("gb.member")
    output.truncate(0), output.seek(0)
    return client


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access_lines(stream: io.StringIO) -> list[dict]:
    return [line for line in lines(stream) if line["logger"] == logs.ACCESS_LOGGER]


def test_every_line_written_during_a_request_carries_its_id(member, output):
    response = member.get("/_log-probe", headers={"X-Request-ID": "lb-7f3a.12:9_x"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "lb-7f3a.12:9_x"
    written = lines(output)
    assert [line["logger"] for line in written] == ["lessons.probe", logs.ACCESS_LOGGER]
    assert {line["request_id"] for line in written} == {"lb-7f3a.12:9_x"}
    assert written[0]["message"] == "inside the request"
    assert written[0]["level"] == "WARNING"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", written[0]["time"])


def test_each_request_gets_its_own_id_and_none_leaks_out_of_it(member, output):
    first = member.get("/_log-probe").headers["X-Request-ID"]
    second = member.get("/_log-probe").headers["X-Request-ID"]
    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second) and first != second
    assert [line["request_id"] for line in lines(output)] == [first, first, second, second]
    logging.getLogger("lessons.probe").warning("after the requests")
    assert lines(output)[-1]["request_id"] is None
    assert [line["request_id"] for line in access_lines(output)] == [first, second]


@pytest.mark.parametrize("unsafe", [
    "x" * 65,  # too long to repeat in every line
    "has space", 'quote"d', "<script>", "semi;colon", "tab\there", "ünïcode", ""])
def test_an_unsafe_request_id_is_replaced_by_a_fresh_one(member, output, unsafe):
    response = member.get("/_log-probe", headers={"X-Request-ID": unsafe})
    request_id = response.headers["X-Request-ID"]
    assert "inside the request" in output.getvalue()
    assert GENERATED.fullmatch(request_id)
    assert {line["request_id"] for line in lines(output)} == {request_id}
    assert unsafe not in output.getvalue() or unsafe == ""


def test_the_access_line_names_the_user_and_not_the_query(make_user, login_as, output):
    user = make_user("gb.author")
    client = login_as("gb.author")
    output.truncate(0), output.seek(0)  # the log-in's own lines
    response = client.get("/lessons?q=secret+words&page=1")
    assert response.status_code == 200
    [line] = access_lines(output)
    assert line["method"] == "GET"
    assert line["path"] == "/lessons"
    assert "secret" not in json.dumps(line)
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["user_id"] == user.id
    assert line["request_id"] == response.headers["X-Request-ID"]


def test_anonymous_and_refused_requests_are_logged_with_their_status(client, output):
    assert client.get("/lessons").status_code == 302  # to the log-in page
    assert client.get("/no-such-page", headers={"X-Request-ID": "r1"}).status_code in (302, 404)
    assert client.get("/login", query_string={"next": "\x00"}).status_code == 400
    logged = access_lines(output)
    assert [line["status"] for line in logged][0] == 302
    assert logged[-1]["status"] == 400
    assert all(line["user_id"] is None for line in logged)
    assert logged[1]["request_id"] == "r1"


def test_an_api_call_is_logged_with_its_token_user(app, make_user, output):
    from lessons.extensions import db
    from lessons.models import User
    from lessons.services import tokens

    user = make_user("gb.author")
    with app.app_context():
        secret = tokens.create_token(db.session.get(User, user.id), "log test")[1]
    response = app.test_client().get("/api/v1/lessons",
                                     headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    [line] = access_lines(output)
    assert (line["path"], line["user_id"]) == ("/api/v1/lessons", user.id)


def test_a_traceback_stays_inside_its_one_line(client, output):
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        logging.getLogger("lessons.probe").exception("it failed")
    [line] = output.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "it failed"
    assert "ValueError: broken\nacross lines" in entry["exception"]


def test_text_format_shows_the_request_id_too(client, app):
    stream = io.StringIO()
    handler = logs.configure("text", stream=stream)
    try:
        client.get("/lessons", headers={"X-Request-ID": "abc123"})
    finally:
        logging.getLogger().removeHandler(handler)
    assert re.search(r" INFO muster\.access \[abc123\] GET /lessons 302 [\d.]+ms$",
                     stream.getvalue().strip())


def test_an_app_built_twice_writes_each_line_once():
    first, second = io.StringIO(), io.StringIO()
    logs.configure("json", stream=first)
    handler = logs.configure("json", stream=second)
    try:
        logging.getLogger("lessons.probe").warning("once")
    finally:
        logging.getLogger().removeHandler(handler)
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1
