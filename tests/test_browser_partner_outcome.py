"""The loop across nations in a real Chromium: an AUS planner's outcome on a GBR lesson,
recorded on B (AUS-army), reaches A (GBR-army) by bundle; A's analyst confirms it from
*To review* (CSRF on, as in production), and the decision goes back to B.

Bundles move through ``flask federation`` as in ``tests/test_federation.py``; the browser
drives A, served from a thread with CSRF on."""

# ruff: noqa: F811 - ``pair`` is a fixture imported from tests/test_federation.py
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from lessons import create_app
from tests.browser import TIMEOUT_MS, saved_on_failure
from tests.http_client import serving
from tests.test_federation import foreign, make_lesson, pair, ship  # noqa: F401
from tests.test_federation_returns import back, exercise_at_b, link_at, status_at

pytestmark = pytest.mark.browser


def test_an_analyst_confirms_a_partner_outcome_and_it_returns_to_the_partner(
        chromium: Browser, pair, tmp_path: Path) -> None:
    from tests.test_exercises import step

    a, b = pair
    public_id = make_lesson(a, title="Cassowaryrun resupply window", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Cassowaryrun")
    exercise_id = exercise_at_b(b, received.public_id)
    assert step(b.client("aus_analyst"), exercise_id, received.public_id, "effective",
                "Resupply arrived inside the window twice.").status_code == 302
    ship(b, a, back(tmp_path), 1)

    config = a.app.config
    served = create_app("testing", SQLALCHEMY_DATABASE_URI=config["SQLALCHEMY_DATABASE_URI"],
                        INDEX_DIR=config["INDEX_DIR"], FILES_DIR=config["FILES_DIR"],
                        FEDERATION_DIR=config["FEDERATION_DIR"], INSTANCE_NAME="GBR-army",
                        INSTANCE_NATION="GBR", WTF_CSRF_ENABLED=True)
    pages: dict = {}
    with serving(served) as address, saved_on_failure(pages, tmp_path):
        context = chromium.new_context(base_url=f"http://{address}")
        try:
            context.set_default_timeout(TIMEOUT_MS)
            page = pages["gbr_analyst"] = context.new_page()
            page.goto("/login")
            page.get_by_label("Username").fill("gbr_analyst")
            page.get_by_label("Password").fill("demo")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("button", name="Log out")).to_be_visible()
            page.goto("/")
            page.get_by_role("link", name=re.compile("from a partner instance")).click()
            section = page.locator("#partner-requests")
            expect(section).to_contain_text("Exercise TALISMAN SABRE 2027")
            expect(section).to_contain_text("AUS-army")
            expect(section).to_contain_text("Resupply arrived inside the window twice.")
            item = section.get_by_test_id("partner-item")
            item.get_by_label("Comment (required to decline)").fill("Seen in our AAR too.")
            item.get_by_role("button", name="Confirm: learned").click()
            expect(page.get_by_role("status")).to_contain_text(
                "Outcome confirmed; the decision goes to AUS-army with the next bundle.")
            expect(page.locator("#partner-requests")).to_have_count(0)
        finally:
            context.close()
    assert status_at(a, public_id) == "learned"
    ship(a, b, tmp_path, 2)
    assert link_at(b, exercise_id, received.public_id) == ("effective", "confirmed")
    assert status_at(b, received.public_id) == "learned"
