"""Sorting the lessons list in a real Chromium: on a 1366 px laptop by clicking a column
heading (the order changes, the URL holds the sort, the heading says so), and on a
360 px phone, where the headings give way to cards, with the "Sort by" control."""

from __future__ import annotations

import re
from datetime import date

import pytest
from playwright.sync_api import Page, expect

from tests.browser import saved_on_failure

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}
LAPTOP = {"width": 1366, "height": 768}
# Made in this order, so the default (newest change first) is the reverse.
TITLES = ["Charlie datum", "alpha net", "Bravo relay"]
OBSERVED = [date(2024, 1, 1), date(2025, 1, 1), date(2023, 1, 1)]


@pytest.fixture
def reader(make_user, make_lesson) -> str:
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.analyst", "GBR", ("analyst", "contributor"))
    for title, observed in zip(TITLES, OBSERVED, strict=True):
        make_lesson("gb.author", "validated", analyst="gb.analyst", title=title,
                    observed_on=observed, releasable_to=["FVEY"])
    return "gb.analyst"


def titles(page: Page) -> list[str]:
    return page.get_by_test_id("lesson-row").locator("a[href^='/lessons/']").all_inner_texts()


def test_a_column_heading_sorts_the_list_and_the_url_keeps_it(open_as, open_pages, reader,
                                                               tmp_path):
    page = open_as(reader)
    with saved_on_failure(open_pages, tmp_path):
        page.set_viewport_size(LAPTOP)
        page.goto("/lessons?tab=all")
        expect(page.get_by_test_id("lesson-row")).to_have_count(3)
        assert titles(page) == TITLES[::-1]
        heading = page.get_by_role("columnheader", name="Title")
        expect(heading).not_to_have_attribute("aria-sort", re.compile("."))
        heading.get_by_role("link").click()
        expect(page).to_have_url(re.compile(r"/lessons\?tab=all&sort=title$"))
        expect(page.get_by_role("columnheader", name="Title")).to_have_attribute(
            "aria-sort", "ascending")
        assert titles(page) == ["alpha net", "Bravo relay", "Charlie datum"]
        page.get_by_role("columnheader", name="Title").get_by_role("link").click()
        expect(page).to_have_url(re.compile(r"sort=-title$"))
        expect(page.get_by_role("columnheader", name="Title")).to_have_attribute(
            "aria-sort", "descending")
        assert titles(page) == ["Charlie datum", "Bravo relay", "alpha net"]
        page.reload()  # the order lives in the URL
        assert titles(page) == ["Charlie datum", "Bravo relay", "alpha net"]


def test_on_a_phone_the_sort_by_control_orders_the_list(open_as, open_pages, reader, tmp_path):
    page = open_as(reader)
    with saved_on_failure(open_pages, tmp_path):
        page.set_viewport_size(PHONE)
        page.goto("/lessons?tab=all")
        control = page.get_by_label("Sort by")
        expect(control).to_be_visible()
        control.select_option(label="Observed date (newest first)")
        page.get_by_role("button", name="Show").click()
        expect(page).to_have_url(re.compile(r"tab=all.*sort=-observed"))
        expect(page.get_by_label("Sort by")).to_have_value("-observed")
        assert titles(page) == ["alpha net", "Charlie datum", "Bravo relay"]
