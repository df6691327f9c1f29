"""The exercise form in a real Chromium, with CSRF on: a planner writes five objectives on
the first form (the "Add another objective" button adds boxes in the page) and picks a
second planner by name."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser import saved_on_failure

pytestmark = pytest.mark.browser

OBJECTIVES = [
    "Give partner LNOs chat accounts on day one",
    "Exchange liaison officers between the division and the brigades",
    "Clear combined fires across national systems",
    "Cross-refuel partner vehicles at any fuel point",
    "Run one common operational picture for every HQ",
]


def test_a_planner_creates_an_exercise_with_five_objectives_and_picks_a_planner_by_name(
        request, make_user, tmp_path):
    make_user("gb.planner", "GBR", ("contributor", "planner"), display_name="Maj Planner")
    make_user("gb.deputy", "GBR", ("planner",), display_name="Capt Deputy")
    make_user("fr.planner", "FRA", ("planner",), display_name="Cdt Lemaire")
    login = request.getfixturevalue("open_as")
    pages = request.getfixturevalue("open_pages")
    start = date.today() + timedelta(days=40)

    with saved_on_failure(pages, tmp_path):
        planner = login("gb.planner")
        planner.goto("/exercises/new")
        planner.locator("#name").fill("Exercise FIVE AIMS")
        planner.get_by_label("Starts on").fill(start.isoformat())
        planner.get_by_label("Ends on").fill((start + timedelta(days=5)).isoformat())
        url = planner.url
        for _ in range(2):
            planner.get_by_role("button", name="Add another objective").click()
        assert planner.url == url  # added in the page, no round trip
        for number, text in enumerate(OBJECTIVES, start=1):
            planner.get_by_label(f"Objective {number}", exact=True).fill(text)

        picker = planner.get_by_role("group", name="Planners")
        expect(picker.get_by_label("Maj Planner (GBR)")).to_be_checked()
        expect(picker.get_by_text("Cdt Lemaire")).to_have_count(0)
        picker.get_by_label("Capt Deputy (GBR)").check()
        planner.get_by_role("button", name="Create exercise").click()

        expect(planner.get_by_role("heading", level=1)).to_have_text("Exercise FIVE AIMS")
        objectives = planner.locator("#objectives ol li")
        expect(objectives).to_have_text(OBJECTIVES)
        expect(planner.get_by_text("Planners: Capt Deputy (GBR), Maj Planner (GBR)")) \
            .to_be_visible()
