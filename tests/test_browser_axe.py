"""axe-core in a real Chromium, on a 360 px phone and a 1366 px laptop: the main pages,
as each kind of user sees them, have no accessibility violation axe rates serious or
critical (missing labels, too little colour contrast, duplicate ids, nested controls...).

axe-core is pinned in ``.ci/axe`` (``npm ci`` there; ``.ci/run`` does it). Its
``axe.min.js`` is injected into each page with Playwright; the pages' Content Security
Policy allows no inline script, so these browser contexts bypass it (the app's own pages
still run under it). Without axe-core the tests are skipped, saying how to install it,
except under CI (``CI=true``), where that is a failure: the check must not vanish.

One test per screen size walks every page and reports all findings at once: each
violation's rule, its help text and the elements it names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from lessons import policy
from lessons.extensions import db
from lessons.models import Exercise, Lesson, User
from tests import browser
from tests.browser import saved_on_failure

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / ".ci/axe/node_modules/axe-core/axe.min.js"
PHONE = {"width": 360, "height": 740}
LAPTOP = {"width": 1366, "height": 768}
SIZES = pytest.mark.parametrize("size", [PHONE, LAPTOP], ids=["360px", "1366px"])
BLOCKING = ("serious", "critical")
MISSING = "ZZZZZZZZZZZZ"  # a well-formed public id that names nothing

# Runs axe on the whole document and keeps what a report needs (the full result holds
# every node's HTML and check data: too much to carry back for each page).
RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary})),
  }));
}"""


def require_axe(script: Path = AXE) -> Path:
    """The pinned axe-core build, or a skip (locally) / failure (CI) saying how to get it."""
    if not script.exists():
        reason = (f"axe-core is not installed ({script} is missing): run "
                  "`npm ci --ignore-scripts` in .ci/axe")
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the accessibility checks (.ci/run installs it)")
        pytest.skip(reason)
    return script


@pytest.fixture
def axe_script() -> Path:
    return require_axe()


@pytest.fixture
def log_in(chromium: Browser, live_server: str, open_pages: dict[str, Page]
           ) -> Iterator[Callable[..., Page]]:
    """``log_in(username, size)``: a page in its own context (cookies) at that viewport,
    logged in through the form; ``None`` for an anonymous page. CSP is bypassed so axe
    can be injected."""

    def _open(username: str | None, size: dict[str, int]) -> Page:
        context = chromium.new_context(base_url=live_server, viewport=size, bypass_csp=True)
        context.set_default_timeout(browser.TIMEOUT_MS)
        context.set_default_navigation_timeout(browser.TIMEOUT_MS)
        page = context.new_page()
        open_pages[username or "anonymous"] = page
        if username is not None:
            page.goto("/login")
            page.get_by_label("Username").fill(username)
            page.get_by_label("Password").fill("demo")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("button", name="Log out")).to_be_visible()
        return page

    yield _open
    for page in open_pages.values():
        page.context.close()


def browser_base(page: Page) -> str:
    """The live server's origin, to name pages by their path in the report."""
    return page.evaluate("() => location.origin")


def violations(page: Page, script: Path) -> list[dict[str, Any]]:
    """axe's serious and critical violations on the page as it is now."""
    page.add_script_tag(path=str(script))
    found = page.evaluate(RUN_AXE)
    return [v for v in found if v["impact"] in BLOCKING]


def report(findings: dict[str, list[dict[str, Any]]]) -> str:
    """One readable block per page: rule, impact, help, link, then each element."""
    lines = []
    for where, found in findings.items():
        lines.append(f"{where}:")
        for v in found:
            lines.append(f"  [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
            for node in v["nodes"][:8]:
                summary = " ".join(node["summary"].split())
                lines.append(f"      {node['target']}  -- {summary}")
            if len(v["nodes"]) > 8:
                lines.append(f"      ... and {len(v['nodes']) - 8} more")
    return "\n".join(lines)


@pytest.fixture
def places(app: Flask, demo: None) -> dict[str, str]:
    """Ids from the demo data: a validated lesson the GBR analyst may act on (not their
    own) and an exercise the GBR planner plans."""
    with app.app_context():
        users = {u.username: u for u in db.session.scalars(select(User))}
        analyst, planner = users["gb.analyst"], users["gb.planner"]
        lesson = next(
            lesson for lesson in db.session.scalars(
                select(Lesson).where(Lesson.status == "validated").order_by(Lesson.id))
            if policy.can_view(analyst, lesson) and policy.allowed_transitions(analyst, lesson)
            and not policy.is_author(analyst, lesson))
        exercise = next(
            exercise for exercise in db.session.scalars(select(Exercise).order_by(Exercise.id))
            if policy.can_edit_exercise(planner, exercise))
        return {"lesson": lesson.public_id, "exercise": exercise.public_id}


@SIZES
def test_the_main_pages_have_no_serious_or_critical_axe_violation(
        log_in, open_pages, axe_script, places, tmp_path, size):
    findings: dict[str, list[dict[str, Any]]] = {}

    def check(page: Page, label: str) -> None:
        """axe on the page as it stands; ``label`` names it in the report."""
        found = violations(page, axe_script)
        if found:
            findings[label] = found

    def visit(page: Page, who: str, path: str, status: int = 200) -> None:
        response = page.goto(path)
        assert response is not None and response.status == status, (who, path)
        check(page, f"{path} as {who}")

    with saved_on_failure(open_pages, tmp_path):
        anonymous = log_in(None, size)
        visit(anonymous, "anonymous", "/login")

        contributor = log_in("au.contributor", size)
        if size == PHONE:  # the navigation, opened from its "Menu" disclosure
            contributor.locator("summary", has_text="Menu").click()
            expect(contributor.get_by_role("navigation", name="Main")).to_be_visible()
            check(contributor, "/ with the Menu open as au.contributor")
        for path in ("/", "/lessons?tab=mine", "/lessons/new", "/notifications",
                     "/account/notifications", "/account", f"/lessons/{MISSING}"):
            visit(contributor, "au.contributor", path, 404 if MISSING in path else 200)
        contributor.goto("/lessons/new")
        contributor.get_by_role("button", name="Submit for review").click()
        expect(contributor.locator(".errors").first).to_be_visible()
        check(contributor, "/lessons/new after a submit with errors as au.contributor")
        contributor.get_by_label("Title (required)", exact=True).fill("Radios did not talk")
        contributor.get_by_role("button", name="Save draft").click()
        expect(contributor.get_by_role("status")).to_be_visible()
        check(contributor, "a new draft's page, with its flash, as au.contributor")
        contributor.get_by_role("link", name="Edit", exact=True).click()
        expect(contributor.get_by_role("button", name="Save changes")).to_be_visible()
        check(contributor, "the draft's edit page as au.contributor")
        contributor.goto("/search?q=radio")
        contributor.get_by_label("Watch this search").fill("Radio gaps")
        contributor.get_by_role("button", name="Watch", exact=True).click()
        expect(contributor.get_by_text("You watch this search as")).to_be_visible()
        check(contributor, "/search?q=radio, with its flash, as au.contributor")
        visit(contributor, "au.contributor", "/account/watches")

        analyst = log_in("gb.analyst", size)
        for path in ("/", "/lessons?tab=review", "/lessons?tab=all",
                     f"/lessons/{places['lesson']}", "/search?q=liaison"):
            visit(analyst, "gb.analyst", path)
        facet = analyst.locator("aside.facets section.facet a").first
        if size == PHONE:
            expect(facet).to_be_hidden()
            analyst.locator("summary", has_text="Filters").click()
            expect(facet).to_be_visible()
            check(analyst, "/search?q=liaison with Filters open as gb.analyst")
        facet.click()
        expect(analyst.locator("ul.chips")).to_be_visible()
        check(analyst, f"{analyst.url.removeprefix(browser_base(analyst))} as gb.analyst")

        planner = log_in("gb.planner", size)
        exercise = f"/exercises/{places['exercise']}"
        for path in ("/", "/exercises", exercise, f"{exercise}/packet",
                     f"{exercise}/recommendations", "/exercises/new"):
            visit(planner, "gb.planner", path)

        admin = log_in("admin", size)
        for path in ("/admin/users", "/admin/audit", "/admin/glossary"):
            visit(admin, "admin", path)

    assert not findings, ("axe found serious or critical violations:\n" + report(findings))


def test_axe_reports_a_serious_violation_when_there_is_one(log_in, open_pages, axe_script,
                                                          app, tmp_path):
    """The check is real: an unlabelled text box and an image without alternative text,
    added to the login page, are reported with their rule and element, by the pinned
    axe-core."""
    with saved_on_failure(open_pages, tmp_path):
        page = log_in(None, LAPTOP)
        page.goto("/login")
        page.evaluate("""() => {
          const main = document.querySelector('main') || document.body;
          main.insertAdjacentHTML('beforeend',
            '<input type="text" id="axe-bait"><img id="axe-image" src="/missing.png">');
        }""")
        found = {v["id"]: v for v in violations(page, axe_script)}
        version = page.evaluate("() => axe.version")
    pinned = json.loads((ROOT / ".ci/axe/package.json").read_text())["dependencies"]["axe-core"]
    assert version == pinned, "the installed axe-core is not the pinned one: npm ci in .ci/axe"
    assert {"label", "image-alt"} <= set(found)
    assert found["label"]["nodes"][0]["target"] == "#axe-bait"
    assert "#axe-image" in report({"/login": list(found.values())})


def test_without_axe_core_ci_fails_and_a_laptop_skips(monkeypatch, tmp_path):
    missing = tmp_path / "axe.min.js"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the accessibility checks"):
        require_axe(missing)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"npm ci --ignore-scripts` in \.ci/axe"):
        require_axe(missing)
