"""The README walk-through's screenshots, taken from a real Muster with the demo data.

    .venv/bin/python docs/screenshots.py [--out docs/screenshots]

Builds the app over a migrated SQLite database and a search index in a temporary folder
(the developer's ``instance/`` is never touched), loads the demo data through
``lessons.demo.load_demo`` as ``flask demo load`` does, serves it from a thread, and has
Chromium (``/usr/bin/chromium``, through Playwright) take 1280x800 viewport PNGs as the
demo analyst ``gb.analyst``:

* ``home.png``: the home page, *What needs you*;
* ``search-watch.png``: a search with its *Watch this search* control;
* ``watches.png``: the account's watched searches, after watching that search;
* ``notifications.png``: the notifications, once a new lesson matching the watch was
  validated and the daily check (``flask notify send``) ran.

Everything the user sees is done through the pages; only what another user or the daily
job would do (writing the new lesson, the check) is done through the services.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 800}
USER = "gb.analyst"
QUERY = "liaison officer"
WATCH_NAME = "Liaison officers"
MAX_BYTES = 200_000  # each PNG stays small enough for the README
# What a planner writes after the watch was saved: a lesson the watch reports.
NEW_LESSON = {
    "title": "Liaison officers arrived before their national caveats were briefed",
    "observation": "At the main planning conference for Exercise SOUTHERN JACKAL 2027, two "
                   "UK liaison officers joined the Australian brigade staff before anyone "
                   "had briefed them on the national caveats of the other contingents.",
    "discussion": "Each liaison officer learnt the caveats piecemeal, from whoever asked "
                  "for support they could not give; two taskings were accepted and later "
                  "withdrawn.",
    "conclusion": "A liaison officer is only useful once they know what every contingent "
                  "may and may not do.",
    "recommendation": "Brief incoming liaison officers on all contingents' caveats on their "
                      "first day, from one maintained summary.",
    "kind": "lesson", "source_event": "Exercise SOUTHERN JACKAL 2027 planning",
    "location": "Brisbane", "unit": "HQ 3rd (UK) Division G7",
    "domains": ["training", "policy"], "functions": ["command_control"],
    "tags": ["liaison", "caveats"], "nations": ["GBR", "AUS"],
    "classification": "UNCLASSIFIED", "releasable_to": ["FVEY"],
}


def build_app(folder: Path) -> Flask:
    """A Muster over a migrated SQLite file in ``folder``, holding the demo data; its
    index and lesson files in ``folder`` too, so nothing is left behind."""
    import flask_migrate

    from lessons import create_app
    from lessons.demo import load_demo

    app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{folder / 'muster.db'}",
                     INDEX_DIR=str(folder / "index"), FILES_DIR=str(folder / "files"),
                     WTF_CSRF_ENABLED=True)
    with app.app_context():
        flask_migrate.upgrade(directory=str(ROOT / "migrations"))
        summary = load_demo()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    print(f"Demo data: {summary['users']} users, {summary['lessons']} lessons, "
          f"{summary['exercises']} exercises.")
    return app


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` served from a background thread on a free port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def new_matching_lesson(app: Flask) -> None:
    """A planner writes a lesson matching the watch, its analyst validates it, and the
    daily check finds it: what happens between the user's visits."""
    from lessons.extensions import db
    from lessons.services import lessons, users, watches

    with app.app_context():
        lesson = lessons.create_lesson(users.find_user("gb.planner"), NEW_LESSON,
                                       submit=True)
        lessons.transition_lesson(users.find_user(USER), lesson.public_id, "validated",
                                  "Clear and actionable; shared with the FVEY staffs.")
        stored = watches.check_due()
        db.session.remove()
    if not stored:
        raise SystemExit("The watch found nothing new: the walk-through would be empty.")


def shoot(page: Page, out: Path, name: str) -> Path:
    """The viewport as ``out/name``; refused when it comes out larger than ``MAX_BYTES``."""
    path = out / name
    page.screenshot(path=str(path), full_page=False, animations="disabled", caret="hide")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{path} is {size:,} bytes, more than {MAX_BYTES:,}.")
    print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
          f"({size // 1000} KB)")
    return path


def walk_through(base_url: str, app: Flask, out: Path) -> list[Path]:
    """The four screens, in the order the README tells them."""
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(base_url=base_url, viewport=VIEWPORT,
                                          device_scale_factor=1)
            page = context.new_page()
            page.goto("/login")
            page.get_by_label("Username").fill(USER)
            page.get_by_label("Password").fill("demo")
            page.get_by_role("button", name="Log in").click()
            page.get_by_role("button", name="Log out").wait_for()
            shots.append(shoot(page, out, "home.png"))

            page.goto("/search?" + "q=" + QUERY.replace(" ", "+"))
            page.get_by_label("Watch this search").fill(WATCH_NAME)
            shots.append(shoot(page, out, "search-watch.png"))
            page.get_by_role("button", name="Watch", exact=True).click()
            page.wait_for_load_state()

            new_matching_lesson(app)
            page.goto("/account/watches")
            shots.append(shoot(page, out, "watches.png"))
            page.goto("/notifications")
            shots.append(shoot(page, out, "notifications.png"))
        finally:
            browser.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots",
                        help="folder for the PNGs (default: docs/screenshots)")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is not installed (apt-get install chromium).", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="muster-shots-") as folder:
        app = build_app(Path(folder))
        with serving(app) as base_url:
            walk_through(base_url, app, args.out)
        with app.app_context():
            from lessons.extensions import db

            db.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
