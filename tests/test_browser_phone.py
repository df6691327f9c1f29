"""The search page on a 360 px phone and a 1366 px laptop, in a real Chromium: nothing
scrolls sideways, the facets sit behind a "Filters" disclosure on the phone and after the
results in Tab order, and the keyboard reaches the first result from the search box in
at most three Tabs (a "Skip to results" link)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests import test_browser as browser

# The browser fixtures, shared with the main flows' tests (bound here, not imported, as
# the tests' parameters name them).
chromium = browser.chromium
live_server = browser.live_server
open_pages = browser.open_pages
open_as = browser.open_as
saved_on_failure = browser.saved_on_failure

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}
LAPTOP = {"width": 1366, "height": 768}
# Long words and marking strings are where narrow layouts usually break.
LONG_TITLE = ("Interoperability-of-coalition-tactical-data-links-and-cross-domain-solutions "
              "failed during the combined brigade rehearsal")


def sideways_overflow(page: Page) -> int:
    """How many pixels the document is wider than the viewport (0: no sideways scroll)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")


@pytest.fixture
def searcher(make_user, make_lesson) -> str:
    make_user("gb.author", "GBR", ("contributor",), display_name="Capt Author")
    make_user("gb.analyst", "GBR", ("analyst", "contributor", "planner", "admin"),
              display_name="Maj Analyst With A Long Display Name")
    for n, domain in enumerate(("doctrine", "organization", "training", "materiel")):
        make_lesson("gb.author", "validated", analyst="gb.analyst", domains=[domain],
                    title=f"{LONG_TITLE} {n}", releasable_to=["FVEY"])
    return "gb.analyst"


def search(page: Page, size: dict[str, int], query: str = "coalition") -> None:
    page.set_viewport_size(size)
    page.goto(f"/search?q={query}")
    expect(page.get_by_test_id("total")).to_contain_text("4 lessons found")


@pytest.mark.parametrize("size", [PHONE, LAPTOP], ids=["360px", "1366px"])
def test_the_search_page_never_scrolls_sideways(open_as: Callable[[str], Page], open_pages,
                                                searcher, tmp_path, size):
    page = open_as(searcher)
    with saved_on_failure(open_pages, tmp_path):
        search(page, size)
        assert sideways_overflow(page) == 0


def test_on_a_phone_the_facets_wait_behind_filters(open_as, open_pages, searcher, tmp_path):
    page = open_as(searcher)
    with saved_on_failure(open_pages, tmp_path):
        search(page, PHONE)
        facet = page.get_by_role("link", name="Training", exact=True)
        expect(facet).to_be_hidden()
        page.get_by_text("Filters", exact=True).click()
        expect(facet).to_be_visible()
        facet.click()
        expect(page.get_by_test_id("total")).to_contain_text("1 lesson found")
        assert sideways_overflow(page) == 0


def test_on_a_laptop_the_facets_are_open_beside_the_results(open_as, open_pages, searcher,
                                                            tmp_path):
    page = open_as(searcher)
    with saved_on_failure(open_pages, tmp_path):
        search(page, LAPTOP)
        expect(page.get_by_role("link", name="Training", exact=True)).to_be_visible()
        expect(page.get_by_text("Filters", exact=True)).to_be_hidden()


@pytest.mark.parametrize("size", [PHONE, LAPTOP], ids=["360px", "1366px"])
def test_the_keyboard_reaches_the_first_result_in_three_tabs(open_as, open_pages, searcher,
                                                             tmp_path, size):
    page = open_as(searcher)
    with saved_on_failure(open_pages, tmp_path):
        search(page, size)
        page.locator("#q").focus()
        first = page.locator("ol.results a").first
        for _ in range(3):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.textContent.trim()") == (
                    "Skip to results"):
                page.keyboard.press("Enter")
            if first.evaluate("a => a === document.activeElement"):
                break
        expect(first).to_be_focused()
