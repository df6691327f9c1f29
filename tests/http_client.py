"""A plain HTTP user agent for tests against a real server (werkzeug or gunicorn): one
connection per request, the session cookie kept by hand (production marks it Secure,
which a cookie jar would not send over plain HTTP), redirects not followed."""

from __future__ import annotations

import http.client
import json
import re
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import Flask
from werkzeug.serving import make_server

from lessons.extensions import db

CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` served by a threaded server on a free loopback port (requests overlap in
    it as they would under gunicorn's threads); yields host:port."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    # Werkzeug's request threads are daemons, which socketserver neither tracks nor joins:
    # one still finishing (its teardown, or work after the response) would hold a
    # database connection through the dispose below, and that connection, returned to
    # a pool nobody holds, would be closed by the garbage collector in a later test.
    httpd.daemon_threads = False
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=5)
        for handler in list(getattr(httpd, "_threads", None) or ()):
            handler.join(timeout=30)
            assert not handler.is_alive(), "a request thread did not finish"
        socketserver.TCPServer.server_close(httpd)  # the threads are joined above
        with app.app_context():
            db.engine.dispose()


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` in threads released at the same moment by a barrier; their results
    in order. A call that raised (no answer at all) fails the test."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    for result in results:
        assert result is not None and not isinstance(result, BaseException), (
            f"a racing request failed: {result!r}")
    return results


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> dict:
        return json.loads(self.text)


@dataclass
class Http:
    address: str  # host:port
    token: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)

    def send(self, method: str, path: str, *, form: dict | None = None,
             body: dict | None = None, headers: dict[str, str] | None = None,
             timeout: float = 30) -> Reply:
        headers = dict(headers or {})
        data = None
        if form is not None:
            data = urlencode(form, doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection = http.client.HTTPConnection(self.address, timeout=timeout)
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
            for cookie in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = cookie.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                         text)
        finally:
            connection.close()

    def get(self, path: str, **kw) -> Reply:
        return self.send("GET", path, **kw)

    def login(self, username: str, password: str = "demo") -> Http:
        """Through the login form, with its CSRF token when the page carries one."""
        page = self.get("/login")
        assert page.status == 200, page.text[:300]
        form = {"username": username, "password": password}
        token = CSRF_FIELD.search(page.text)
        if token:
            form["csrf_token"] = token.group(1)
        reply = self.send("POST", "/login", form=form)
        assert reply.status == 302, (reply.status, reply.text[:300])
        return self


def as_reply(response) -> Reply:
    """A Flask test client's response seen the same way, so one set of assertions
    serves both."""
    return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                 response.get_data(as_text=True))
