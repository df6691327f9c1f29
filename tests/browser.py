"""The browser tests' shared fixtures: the app served from a thread, Debian's Chromium
driven by Playwright, a logged-in page per user, and pages saved when a test fails.

The app is served by Werkzeug from a thread on a free local port, against the test
database, with CSRF on as in production; Debian's ``/usr/bin/chromium`` is driven by
Playwright (``playwright install`` cannot download browsers here). Outside CI a test
needing it is skipped when that Chromium is missing; in CI (``CI=true``) a missing
browser is a failure, so the checks cannot vanish. ``tests/conftest.py`` makes the
fixtures available to every test module.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect, sync_playwright
from werkzeug.serving import make_server

from lessons import create_app
from lessons.extensions import db

CHROMIUM = Path("/usr/bin/chromium")
# Headless in a container, often as root (CI): no sandbox, GPU or background traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 5_000


@pytest.fixture
def live_server(app: Flask, database_url: str) -> Iterator[str]:
    """The app with CSRF on, served from a background thread; yields its base URL."""
    served = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                        INDEX_DIR=app.config["INDEX_DIR"], FILES_DIR=app.config["FILES_DIR"],
                        WTF_CSRF_ENABLED=True)
    server = make_server("127.0.0.1", 0, served, threaded=True)  # port 0: a free one
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
        with served.app_context():
            db.engine.dispose()


@pytest.fixture
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                             timeout=15_000)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def open_pages() -> dict[str, Page]:
    """The pages ``open_as`` opened, by username: what to save when a test fails."""
    return {}


@pytest.fixture
def open_as(chromium: Browser, live_server: str, open_pages: dict[str, Page]
            ) -> Iterator[Callable[[str], Page]]:
    """``open_as(username)``: a page in a fresh browser context (its own cookies), logged
    in through the login form."""
    pages = open_pages

    def _open(username: str, password: str = "demo") -> Page:
        context = chromium.new_context(base_url=live_server)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        page = context.new_page()
        pages[username] = page
        page.goto("/login")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        return page

    yield _open
    for page in pages.values():
        page.context.close()


@contextmanager
def saved_on_failure(pages: dict[str, Page], folder: Path) -> Iterator[None]:
    """On an error, save each open page's screenshot and HTML, and say where."""
    try:
        yield
    except Exception as exc:
        saved = []
        for name, page in pages.items():
            try:
                shot = folder / f"{name}.png"
                page.screenshot(path=str(shot), full_page=True, timeout=TIMEOUT_MS)
                (folder / f"{name}.html").write_text(page.content(), "utf-8")
                saved.append(f"{name} at {page.url}: {shot}")
            except Exception as shot_error:  # the browser may be what failed
                saved.append(f"{name}: no screenshot ({shot_error})")
        if saved:
            exc.add_note("Pages at failure:\n  " + "\n  ".join(saved))
        raise
