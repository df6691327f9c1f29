"""A plain HTTP user agent for tests against a real server (werkzeug or gunicorn): one
connection per request, the session cookie kept by hand (production marks it Secure,
which a cookie jar would not send over plain HTTP), redirects not followed."""

from __future__ import annotations

import http.client
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


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
             body: dict | None = None, timeout: float = 30) -> Reply:
        headers: dict[str, str] = {}
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

    def login(self, username: str, password: str = "demo") -> None:
        """Through the login form, with its CSRF token when the page carries one."""
        page = self.get("/login")
        assert page.status == 200, page.text[:300]
        form = {"username": username, "password": password}
        token = CSRF_FIELD.search(page.text)
        if token:
            form["csrf_token"] = token.group(1)
        reply = self.send("POST", "/login", form=form)
        assert reply.status == 302, (reply.status, reply.text[:300])


def as_reply(response) -> Reply:
    """A Flask test client's response seen the same way, so one set of assertions
    serves both."""
    return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                 response.get_data(as_text=True))
