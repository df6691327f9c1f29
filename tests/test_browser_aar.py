"""After-action reports in, in a real Chromium with CSRF on: a contributor uploads a
five-observation report from the lessons list, reviews the five proposals (on a phone
too), drops one, merges one into the one above it, and creates the drafts in one
sitting."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests import aar_reports as reports
from tests import test_browser_axe as axe
from tests.browser import saved_on_failure

log_in = axe.log_in
axe_script = axe.axe_script

pytestmark = pytest.mark.browser


def test_a_contributor_turns_a_report_into_drafts(open_as, open_pages, make_user, tmp_path):
    make_user("gb.author", "GBR", ("contributor",), display_name="Capt Author")
    report = tmp_path / "STEADFAST-AAR.docx"
    report.write_bytes(reports.five_observation_docx())

    with saved_on_failure(open_pages, tmp_path):
        author = open_as("gb.author")
        author.get_by_role("navigation", name="Main").get_by_role("link",
                                                                  name="Lessons").click()
        author.get_by_role("link", name="Draft lessons from a report").click()
        author.get_by_label("After-action report").set_input_files(str(report))
        author.get_by_role("button", name="Read the report").click()

        expect(author).to_have_url(re.compile(r"/lessons/aar/[\w-]+$"))
        review_url = author.url
        proposals = author.get_by_test_id("proposal")
        expect(proposals).to_have_count(5)
        expect(author.get_by_label("Operation or exercise")).to_have_value(
            "Exercise STEADFAST JUPITER 2026")
        expect(author.get_by_label("Observed on")).to_have_value("2026-03-12")
        expect(author.get_by_label("Unit", exact=True)).to_have_value("1 Signal Regiment")
        expect(proposals.nth(0).get_by_label("Title")).to_have_value(
            "HF radios of the two brigades could not talk at night")

        # On a 360 px phone the review page does not scroll sideways.
        author.set_viewport_size({"width": 360, "height": 740})
        assert author.evaluate("() => document.documentElement.scrollWidth"
                               " - document.documentElement.clientWidth") <= 0
        author.set_viewport_size({"width": 1366, "height": 768})

        proposals.nth(1).get_by_label("Keep").uncheck()
        proposals.nth(4).get_by_label("Merge with the previous proposal").check()
        proposals.nth(0).get_by_label("Title").fill("Night HF failed between brigades")
        author.get_by_role("button", name="Create drafts").click()

        expect(author).to_have_url(review_url)
        expect(author.get_by_role("status")).to_contain_text("Created 3 drafts")
        created = author.get_by_test_id("aar-created")
        expect(created.locator("tbody tr")).to_have_count(3)
        expect(created).to_contain_text("Exercise STEADFAST JUPITER 2026")
        created.get_by_role("link", name="Night HF failed between brigades").click()
        expect(author.get_by_role("heading", level=1)).to_have_text(
            "Night HF failed between brigades")
        expect(author.locator(".meta .badge")).to_have_text("Draft")
        expect(author.get_by_role("link", name="STEADFAST-AAR.docx")).to_be_visible()
        author.go_back()
        # The fifth was merged into the fourth: its own title is no draft's.
        expect(created).to_contain_text("Fuel reports were sent by e-mail and lost in inboxes")
        expect(created.get_by_text("Air tasking orders")).to_have_count(0)


@axe.SIZES
def test_the_report_pages_have_no_serious_axe_violation(log_in, open_pages, axe_script,
                                                        make_user, tmp_path, size):
    make_user("gb.author", "GBR", ("contributor",))
    report = tmp_path / "aar.txt"
    report.write_text(reports.SUSTAIN_TXT, "utf-8")
    findings = {}
    with saved_on_failure(open_pages, tmp_path):
        page = log_in("gb.author", size)
        page.goto("/lessons/aar")
        findings["upload"] = axe.violations(page, axe_script)
        page.get_by_role("button", name="Read the report").click()  # no file: refused
        expect(page.get_by_role("alert")).to_be_visible()
        findings["upload refused"] = axe.violations(page, axe_script)
        page.get_by_label("After-action report").set_input_files(str(report))
        page.get_by_role("button", name="Read the report").click()
        expect(page.get_by_test_id("proposal")).to_have_count(4)
        findings["review"] = axe.violations(page, axe_script)
        page.get_by_test_id("proposal").nth(0).get_by_label("Title").fill("")
        page.get_by_role("button", name="Create drafts").click()
        expect(page.get_by_role("alert")).to_be_visible()
        findings["review refused"] = axe.violations(page, axe_script)
        page.get_by_test_id("proposal").nth(0).get_by_label("Title").fill("Daily sync")
        page.get_by_role("button", name="Create drafts").click()
        expect(page.get_by_test_id("aar-created").locator("tbody tr")).to_have_count(4)
        findings["created"] = axe.violations(page, axe_script)
    assert not any(findings.values()), axe.report(
        {where: found for where, found in findings.items() if found})
