"""A lesson's files in a real Chromium: attached through the page's own form (with its
CSRF token), listed without sideways scrolling at 360 px and 1366 px however long the
name, downloaded as a file (never opened as a page), and removed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser import saved_on_failure
from tests.test_browser_phone import LAPTOP, PHONE, sideways_overflow

pytestmark = pytest.mark.browser

LONG_NAME = "After-action-report-of-the-combined-brigade-river-crossing-rehearsal-" \
            "annex-C-engineer-bridging-and-gap-crossing-timings.txt"
CONTENT = b"<html><script>alert('not a page')</script></html>\n"


@pytest.fixture
def lesson(make_user, make_lesson) -> str:
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.analyst", "GBR", ("analyst", "contributor"))
    make_user("gb.second", "GBR", ("analyst",))
    return make_lesson("gb.author", "validated", analyst="gb.second",
                       title="Bridging drills").public_id


@pytest.mark.parametrize("size", [PHONE, LAPTOP], ids=["360px", "1366px"])
def test_a_file_is_attached_listed_downloaded_and_removed(
        open_as: Callable[[str], Page], open_pages, lesson, tmp_path, size):
    page = open_as("gb.analyst")
    with saved_on_failure(open_pages, tmp_path):
        page.set_viewport_size(size)
        page.goto(f"/lessons/{lesson}")
        page.get_by_text("Attach a file", exact=True).click()
        page.get_by_label("File").set_input_files(
            files=[{"name": LONG_NAME, "mimeType": "text/html", "buffer": CONTENT}])
        page.get_by_role("button", name="Attach", exact=True).click()
        expect(page.locator(".flash")).to_contain_text("Attached")
        link = page.get_by_role("link", name=LONG_NAME)
        expect(link).to_be_visible()
        assert sideways_overflow(page) == 0

        with page.expect_download() as download:
            link.click()
        saved = tmp_path / "downloaded"
        download.value.save_as(saved)
        assert saved.read_bytes() == CONTENT
        assert download.value.suggested_filename == LONG_NAME

        page.get_by_role("button", name=f"Remove {LONG_NAME}").click()
        expect(page.locator(".flash")).to_contain_text("Removed")
        expect(page.get_by_role("link", name=LONG_NAME)).to_have_count(0)
