"""The lesson form in a real Chromium, with CSRF on: Enter in Title saves a draft, a
refused submit focuses the error summary whose links move to their fields, the
workaround fields show only for a workaround, and leaving a changed form asks first."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import saved_on_failure

pytestmark = pytest.mark.browser


def test_enter_saves_a_draft_and_a_refused_submit_leads_to_each_field(
        request, make_user, tmp_path):
    make_user("gb.author", "GBR", ("contributor",))
    login = request.getfixturevalue("open_as")
    pages = request.getfixturevalue("open_pages")

    with saved_on_failure(pages, tmp_path):
        author = login("gb.author")
        author.goto("/lessons/new")
        title = author.get_by_label("Title (required)")
        title.fill("Radios would not talk across the boundary")
        title.press("Enter")
        expect(author.get_by_role("heading", level=1)).to_have_text(
            "Radios would not talk across the boundary")
        expect(author.get_by_text("Draft saved.")).to_be_visible()
        assert re.search(r"/lessons/[A-Za-z0-9]+$", author.url)

        author.goto("/lessons/new")
        workaround_fields = author.get_by_role("group", name=re.compile("For workarounds"))
        expect(workaround_fields).to_be_hidden()
        author.get_by_label("Kind").select_option("workaround")
        expect(workaround_fields).to_be_visible()
        expect(author.get_by_label("Friction (required to submit)")).to_be_visible()
        author.get_by_label("Kind").select_option("lesson")
        expect(workaround_fields).to_be_hidden()

        author.get_by_label("Title (required)").fill("Half a lesson")
        author.get_by_role("button", name="Submit for review").click()
        summary = author.locator(".error-summary")
        expect(summary).to_be_focused()
        expect(summary).to_have_attribute("role", "alert")
        summary.get_by_role("link", name=re.compile("^Recommendation:")).click()
        expect(author.locator("#recommendation")).to_be_focused()
        summary.get_by_role("link", name=re.compile("^Observation:")).click()
        expect(author.locator("#observation")).to_be_focused()


def test_leaving_a_changed_form_asks_first(request, make_user, tmp_path):
    make_user("gb.author", "GBR", ("contributor",))
    login = request.getfixturevalue("open_as")
    pages = request.getfixturevalue("open_pages")

    with saved_on_failure(pages, tmp_path):
        author = login("gb.author")
        author.goto("/lessons/new")
        asked: list[str] = []

        def answer(dialog) -> None:
            asked.append(dialog.type)
            dialog.dismiss()  # stay on the page

        author.on("dialog", answer)
        author.get_by_role("link", name="Lessons", exact=True).first.click()
        author.wait_for_url("**/lessons")  # unchanged: leaves without asking
        assert asked == []
        author.goto("/lessons/new")
        author.get_by_label("Observation (required to submit)").fill("Something happened")
        author.get_by_role("link", name="Lessons", exact=True).first.click()
        author.wait_for_timeout(500)
        assert asked == ["beforeunload"]
        assert author.url.endswith("/lessons/new")


def test_a_form_sent_back_unsaved_asks_before_leaving_even_unchanged(request, make_user,
                                                                     tmp_path):
    """A refused submit stored nothing: what the author typed is only on this page."""
    make_user("gb.author", "GBR", ("contributor",))
    login = request.getfixturevalue("open_as")
    pages = request.getfixturevalue("open_pages")

    with saved_on_failure(pages, tmp_path):
        author = login("gb.author")
        author.goto("/lessons/new")
        author.get_by_label("Title (required)").fill("Half a lesson")
        author.get_by_role("button", name="Submit for review").click()
        expect(author.locator(".error-summary")).to_be_focused()
        asked: list[str] = []

        def answer(dialog) -> None:
            asked.append(dialog.type)
            dialog.dismiss()

        author.on("dialog", answer)
        author.get_by_role("link", name="Lessons", exact=True).first.click()
        author.wait_for_timeout(500)
        assert asked == ["beforeunload"]
