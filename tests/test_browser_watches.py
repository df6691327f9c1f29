"""Watching a search in a real Chromium: the search page's small "Watch this search" form
saves it with a flash, and the account's watched-searches page lists, renames and deletes
it (with the CSRF token of the rendered forms, as in production)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import saved_on_failure

pytestmark = pytest.mark.browser


def test_a_search_is_watched_renamed_and_deleted(open_as, open_pages, make_user, tmp_path):
    make_user("us.watcher", "USA", ("contributor",))
    page = open_as("us.watcher")
    with saved_on_failure(open_pages, tmp_path):
        page.goto("/search?q=radios")
        page.get_by_label("Watch this search").fill("Radio gaps")
        page.get_by_role("button", name="Watch", exact=True).click()
        expect(page.get_by_text("You watch this search as \u201cRadio gaps\u201d")).to_be_visible()
        expect(page.locator("#q")).to_have_value("radios")
        page.get_by_role("link", name="your account").click()
        expect(page.get_by_role("heading", name="Watched searches")).to_be_visible()
        page.get_by_label("New name for Radio gaps").fill("Radio silence")
        page.get_by_role("button", name="Rename").click()
        expect(page.get_by_role("link", name="Radio silence")).to_be_visible()
        page.get_by_role("button", name="Stop watching Radio silence").click()
        expect(page.get_by_text("You no longer watch \u201cRadio silence\u201d")).to_be_visible()
        expect(page.get_by_text("You watch no searches.")).to_be_visible()
