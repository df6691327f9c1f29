"""The exercise form asks before a changed form is left, as the lesson form does (the one
``static/js/forms.js``), in a real Chromium with CSRF on: leaving an unchanged form or a
saved one asks nothing; leaving after a change asks; so does leaving a form the server
sent back unsaved ("Show their planners"), whose changes are not stored either."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.browser import saved_on_failure

pytestmark = pytest.mark.browser


def asked_on(page: Page) -> list[str]:
    """The dialogs the page opens from now on, by type; each is dismissed (stay)."""
    asked: list[str] = []

    def answer(dialog) -> None:
        asked.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", answer)
    return asked


def leave(page: Page) -> None:
    """Follow the header's link to the exercises list, as a user leaving would."""
    page.get_by_role("link", name="Exercises", exact=True).first.click()


def test_leaving_a_changed_exercise_form_asks_first_and_a_saved_one_does_not(
        open_as, open_pages, make_user, tmp_path):
    make_user("gb.planner", "GBR", ("contributor", "planner"), display_name="Maj Planner")
    start = date.today() + timedelta(days=40)

    with saved_on_failure(open_pages, tmp_path):
        planner = open_as("gb.planner")
        asked = asked_on(planner)
        # Unchanged: leaves without asking.
        planner.goto("/exercises/new")
        leave(planner)
        planner.wait_for_url("**/exercises")
        assert asked == []

        # Changed: asks, and staying keeps what was typed.
        planner.goto("/exercises/new")
        planner.locator("#name").fill("Exercise STAY PUT")
        leave(planner)
        planner.wait_for_timeout(500)
        assert asked == ["beforeunload"]
        assert planner.url.endswith("/exercises/new")
        expect(planner.locator("#name")).to_have_value("Exercise STAY PUT")

        # Sent back unsaved by "Show their planners": still unsaved, still asks.
        planner.get_by_role("button", name="Show their planners").click()
        planner.wait_for_load_state()
        expect(planner.locator("#name")).to_have_value("Exercise STAY PUT")
        leave(planner)
        planner.wait_for_timeout(500)
        assert asked == ["beforeunload", "beforeunload"]

        # Saved: nothing to lose, no question on the way out or afterwards.
        planner.get_by_label("Starts on").fill(start.isoformat())
        planner.get_by_label("Ends on").fill((start + timedelta(days=3)).isoformat())
        planner.get_by_role("button", name="Create exercise").click()
        expect(planner.get_by_role("heading", level=1)).to_have_text("Exercise STAY PUT")
        detail = planner.url
        leave(planner)
        planner.wait_for_url("**/exercises")
        assert asked == ["beforeunload", "beforeunload"]

        # The edit page: a change asks, a save does not.
        planner.goto(f"{detail}/edit")
        planner.locator("#location").fill("Salisbury Plain")
        leave(planner)
        planner.wait_for_timeout(500)
        assert asked == ["beforeunload"] * 3
        planner.get_by_role("button", name="Save changes").click()
        planner.wait_for_url(detail)
        assert asked == ["beforeunload"] * 3
        expect(planner.get_by_text("Salisbury Plain")).to_be_visible()
