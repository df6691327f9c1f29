"""Database outages: an unreachable or busy database is a 503 with ``Retry-After`` (a
plain page for people, problem+json for the API) from any point of a request, never a
500 or the server's bare error page, and service resumes on its own when the database
comes back. Programming errors stay 500s.

PostgreSQL outages go through a TCP proxy the test cuts; SQLite has no connection to
cut, so its outage is the database's folder going away (and "database is locked").
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from lessons import create_app
from lessons.extensions import db
from lessons.models import Lesson, User
from lessons.services import tokens
from tests.http_client import Http, as_reply, serving

RETRY_AFTER = "10"
NEW_LESSON = {
    "title": "Partner LNOs could not reach the coalition chat",
    "observation": "The AUS liaison officers had no account on the division chat server.",
    "recommendation": "Request partner accounts at the initial planning conference.",
    "releasable_to": ["FVEY"],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def is_postgresql(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


@pytest.fixture
def planner(app: Flask, make_user) -> str:
    """A user and their API token; returns the token."""
    make_user("gb.planner", roles=("contributor", "planner"))
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "gb.planner"))
        return tokens.create_token(user, "script")[1]


def stored_lessons(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Lesson.id)))


def app_on(url: str, tmp_path: Path, **overrides: object) -> Flask:
    """An app as a server runs it: errors answered, not raised into the test."""
    return create_app("testing", SQLALCHEMY_DATABASE_URI=url, PROPAGATE_EXCEPTIONS=False,
                      INDEX_DIR=str(tmp_path / "index"), **overrides)


def assert_unavailable_page(reply) -> None:
    assert reply.status == 503, (reply.status, reply.text[:500])
    assert reply.headers["retry-after"] == RETRY_AFTER
    assert reply.headers["content-type"].startswith("text/html")
    assert "<h1>Service unavailable</h1>" in reply.text
    assert "cannot reach its database" in reply.text


def assert_unavailable_problem(reply) -> None:
    assert reply.status == 503, (reply.status, reply.text[:500])
    assert reply.headers["retry-after"] == RETRY_AFTER
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["status"] == 503 and problem["title"] == "Service unavailable"


# --- a database that is not there at all ----------------------------------------------------

def test_a_database_on_a_closed_port_gives_503_pages_and_problems(app, planner, tmp_path):
    """The app starts without its database and answers every database-bound request
    with a 503: the login form, a logged-in page (the session's user is loaded from the
    database on every request) and the API."""
    signed_in = app.test_client()
    signed_in.post("/login", data={"username": "gb.planner", "password": "demo"})
    session_cookie = signed_in.get_cookie("session").value

    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/muster"
    down = app_on(closed, tmp_path, SQLALCHEMY_ENGINE_OPTIONS={
        "pool_pre_ping": True, "connect_args": {"connect_timeout": 1}})
    client = down.test_client()

    response = client.post("/login", data={"username": "gb.planner", "password": "demo"})
    assert_unavailable_page(as_reply(response))

    client.set_cookie("session", session_cookie)
    for path in ("/lessons", "/account", "/"):
        assert_unavailable_page(as_reply(client.get(path)))
    assert_unavailable_page(as_reply(client.post("/account/tokens", data={"name": "x"})))

    api = down.test_client()
    for method, path in (("GET", "/api/v1/lessons"), ("POST", "/api/v1/lessons")):
        response = api.open(path, method=method, json=NEW_LESSON,
                            headers={"Authorization": f"Bearer {planner}"})
        assert_unavailable_problem(as_reply(response))


def test_programming_errors_stay_server_errors(tmp_path):
    """A database that answers but lacks the schema is a fault to fix, not an outage to
    wait out: 500, no Retry-After."""
    empty = app_on(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path)
    response = empty.test_client().post("/login", data={"username": "a", "password": "b"})
    assert response.status_code == 500
    assert "Retry-After" not in response.headers


# --- down, then back, on a real server -------------------------------------------------------

class Proxy:
    """A TCP forwarder to the database. ``cut`` drops every connection through it;
    ``down`` also refuses new ones (accepted, then closed at once) until ``up``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepting = True
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.accepting:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(source, sink)

    def _drop(self, *sockets: socket.socket) -> None:
        for each in sockets:
            with self.lock:
                self.sockets.discard(each)
            try:
                each.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            each.close()

    def cut(self) -> None:
        with self.lock:
            sockets = list(self.sockets)
        self._drop(*sockets)

    def down(self) -> None:
        self.accepting = False
        self.cut()

    def up(self) -> None:
        self.accepting = True

    def close(self) -> None:
        self.down()
        self.listener.close()


class Outage:
    """Takes the test database away and brings it back, the way each backend loses it."""

    def __init__(self, database_url: str) -> None:
        self.url = make_url(database_url)
        self.proxy: Proxy | None = None
        if is_postgresql(database_url):
            self.proxy = Proxy(self.url.host or "127.0.0.1", self.url.port or 5432)
            served = self.url.set(host="127.0.0.1", port=self.proxy.port)
            self.app_url = served.render_as_string(hide_password=False)
            self.engine_options = {"pool_pre_ping": True,
                                   "connect_args": {"connect_timeout": 1}}
        else:
            self.folder = Path(self.url.database).parent
            self.moved = self.folder.with_name(self.folder.name + "-away")
            self.app_url = database_url
            # Each request opens the file: an open SQLite connection keeps reading a
            # file that was moved, so a pool would hide the outage.
            self.engine_options = {"poolclass": NullPool}

    def down(self) -> None:
        if self.proxy:
            self.proxy.down()
        else:
            self.folder.rename(self.moved)

    def up(self) -> None:
        if self.proxy:
            self.proxy.up()
        elif self.moved.exists():
            self.moved.rename(self.folder)

    def close(self) -> None:
        self.up()
        if self.proxy:
            self.proxy.close()


@pytest.fixture
def outage(database_url: str) -> Iterator[Outage]:
    outage = Outage(database_url)
    yield outage
    outage.close()


def test_service_resumes_when_the_database_comes_back(app, planner, outage, tmp_path):
    served = app_on(outage.app_url, tmp_path, SQLALCHEMY_ENGINE_OPTIONS=outage.engine_options)
    with serving(served) as address:
        person, script = Http(address), Http(address, token=planner)
        person.login("gb.planner")
        assert person.get("/lessons").status == 200
        assert script.get("/api/v1/lessons").status == 200

        outage.down()
        for _ in range(2):  # and not worse the second time
            assert_unavailable_page(person.get("/lessons"))
            assert_unavailable_problem(script.get("/api/v1/lessons"))
            assert_unavailable_problem(script.send("POST", "/api/v1/lessons", body=NEW_LESSON))
        assert_unavailable_page(Http(address).send(
            "POST", "/login", form={"username": "gb.planner", "password": "demo"}))

        outage.up()
        assert person.get("/lessons").status == 200
        assert script.send("POST", "/api/v1/lessons", body=NEW_LESSON).status == 201
    assert stored_lessons(app) == 1  # none from the refused requests


def test_a_connection_cut_inside_a_request_or_its_teardown_is_no_bare_500(
        app, planner, outage, tmp_path, caplog):
    if outage.proxy is None:
        pytest.skip("SQLite has no connection to cut (its outages are covered above)")
    served = app_on(outage.app_url, tmp_path, SQLALCHEMY_ENGINE_OPTIONS=outage.engine_options)
    cut_after_first_query, cut_at_teardown = threading.Event(), threading.Event()

    @served.before_request
    def cut_mid_request() -> None:
        if cut_after_first_query.is_set():
            cut_after_first_query.clear()
            db.session.execute(text("SELECT 1"))  # the transaction is open, then lost
            outage.proxy.cut()

    @served.teardown_appcontext  # runs before the session is removed (teardowns unwind)
    def cut_before_session_removal(exc) -> None:
        if cut_at_teardown.is_set():
            cut_at_teardown.clear()
            outage.proxy.cut()

    caplog.set_level(logging.WARNING, logger="lessons.outages")
    with serving(served) as address:
        person, script = Http(address), Http(address, token=planner)
        person.login("gb.planner")

        cut_after_first_query.set()
        assert_unavailable_page(person.get("/lessons"))
        assert person.get("/lessons").status == 200
        cut_after_first_query.set()
        assert_unavailable_problem(script.send("POST", "/api/v1/lessons", body=NEW_LESSON))
        assert stored_lessons(app) == 0

        # The response was made before the cut: it stands, and the failed rollback of a
        # read-only transaction is logged instead of replacing it with the server's page.
        cut_at_teardown.set()
        assert person.get("/lessons").status == 200
        assert "closing the database session failed" in caplog.text
        assert person.get("/lessons").status == 200
        assert script.send("POST", "/api/v1/lessons", body=NEW_LESSON).status == 201
    assert stored_lessons(app) == 1


# --- a busy database -------------------------------------------------------------------------

def test_a_locked_sqlite_database_is_a_503_until_the_lock_goes(app, planner, database_url,
                                                              tmp_path):
    if is_postgresql(database_url):
        pytest.skip("SQLite's lock; PostgreSQL writers wait for row locks instead")
    served = app_on(database_url, tmp_path, SQLITE_BUSY_TIMEOUT=0.2)
    person, script = served.test_client(), served.test_client()
    person.post("/login", data={"username": "gb.planner", "password": "demo"})
    auth = {"Authorization": f"Bearer {planner}"}

    holder = sqlite3.connect(make_url(database_url).database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        assert_unavailable_page(as_reply(person.post("/account/tokens",
                                                          data={"name": "laptop"})))
        assert_unavailable_problem(as_reply(
            script.post("/api/v1/lessons", json=NEW_LESSON, headers=auth)))
        holder.execute("ROLLBACK")
    finally:
        holder.close()

    assert person.post("/account/tokens", data={"name": "laptop"}).status_code == 201
    assert script.post("/api/v1/lessons", json=NEW_LESSON, headers=auth).status_code == 201
    assert stored_lessons(app) == 1
    with served.app_context():
        db.engine.dispose()
