"""Trends at /dashboard in a real Chromium, under the site's Content Security Policy: on a
360 px phone and a 1366 px laptop nothing scrolls sideways, every chart is drawn with
the site's colours (its stylesheet loads from 'self'; no inline style or script is
refused, because there is none), the filters work from the form, and axe finds no
serious or critical accessibility violation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests import test_browser_axe as axe_tests
from tests.browser import saved_on_failure

log_in = axe_tests.log_in
axe_script = axe_tests.axe_script

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}
LAPTOP = {"width": 1366, "height": 768}
ACCENT = "rgb(31, 78, 121)"  # --accent in static/css/muster.css, the charts' first colour


@pytest.mark.parametrize("size", [PHONE, LAPTOP], ids=["360px", "1366px"])
def test_the_dashboard_fits_and_draws_its_charts(open_as, open_pages, demo, tmp_path, size):
    page = open_as("gb.planner")
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    with saved_on_failure(open_pages, tmp_path):
        page.set_viewport_size(size)
        page.goto("/dashboard")
        expect(page.get_by_role("heading", name="Trends", exact=True)).to_be_visible()
        charts = page.locator("svg.pygal-chart")
        expect(charts).to_have_count(8)
        for i in range(8):
            box = charts.nth(i).bounding_box()
            assert box and box["width"] > 200 and box["height"] > 100
        bar = page.locator("#chart-status .series.color-0 rect").first
        assert bar.evaluate("e => getComputedStyle(e).fill") == ACCENT
        assert page.evaluate("() => document.documentElement.scrollWidth"
                             " - document.documentElement.clientWidth") == 0
        assert not refused, refused


def test_the_filter_form_narrows_the_figures(open_as, open_pages, demo, tmp_path):
    page = open_as("gb.planner")
    with saved_on_failure(open_pages, tmp_path):
        page.goto("/dashboard")
        everything = int(page.get_by_test_id("lesson-total").locator("strong").inner_text())
        page.get_by_label("Domain", exact=True).select_option("training")
        page.get_by_role("button", name="Show").click()
        expect(page).to_have_url(re.compile(r"[?&]domain=training(&|$)"))
        narrowed = int(page.get_by_test_id("lesson-total").locator("strong").inner_text())
        assert 0 < narrowed < everything
        expect(page.get_by_label("Domain", exact=True)).to_have_value("training")


@pytest.mark.parametrize("size", [PHONE, LAPTOP], ids=["360px", "1366px"])
def test_the_dashboard_has_no_serious_axe_violation(log_in, open_pages, axe_script, demo,
                                                    tmp_path, size):
    page = log_in("gb.planner", size)
    with saved_on_failure(open_pages, tmp_path):
        page.goto("/dashboard?nation=ZZZ")  # with a filter message showing
        found = axe_tests.violations(page, axe_script)
        assert not found, axe_tests.report({"/dashboard": found})
