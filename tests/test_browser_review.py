"""Review in a real Chromium: the analyst validates from the top of the lesson page, with
a note, and lands on the next lesson of their To review list."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import saved_on_failure

pytestmark = pytest.mark.browser


def test_an_analyst_validates_from_the_top_with_a_note_and_lands_on_the_next_lesson(
        open_as, open_pages, make_user, make_lesson, tmp_path):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.analyst", "GBR", ("contributor", "analyst"))
    older = make_lesson("gb.author", "submitted", title="Radios on different crypto")
    newer = make_lesson("gb.author", "submitted", title="No liaison officer at the bridge")
    with saved_on_failure(open_pages, tmp_path):
        analyst = open_as("gb.analyst")
        analyst.goto("/lessons?tab=review")
        analyst.get_by_role("link", name="No liaison officer at the bridge").click()
        expect(analyst).to_have_url(re.compile(f"/lessons/{newer.public_id}$"))
        # The panel sits at the top: its button is on screen before any scrolling, and
        # above the lesson's text.
        validate = analyst.get_by_role("button", name="Validate")
        button = validate.bounding_box()
        observation = analyst.get_by_role("heading", name="Observation").bounding_box()
        assert button and observation and button["y"] < observation["y"]
        assert button["y"] + button["height"] <= analyst.viewport_size["height"]
        analyst.get_by_label("Note (optional, kept in the history)").fill(
            "Checked with the bridge company.")
        validate.click()
        # On to the next one, with a flash saying what was done.
        expect(analyst).to_have_url(re.compile(f"/lessons/{older.public_id}$"))
        expect(analyst.get_by_role("status")).to_contain_text(
            "Validated: \u201cNo liaison officer at the bridge\u201d.")
        expect(analyst.get_by_role("heading", level=1)).to_have_text(
            "Radios on different crypto")
        # The note is in the validated lesson's history.
        analyst.goto(f"/lessons/{newer.public_id}")
        expect(analyst.locator("#history")).to_contain_text("Checked with the bridge company.")
        expect(analyst.locator(".meta .badge")).to_have_text("Validated")
