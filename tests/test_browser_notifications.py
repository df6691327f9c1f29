"""In Chromium, with CSRF on: an analyst validates a contributor's lesson, and the
contributor sees the unread count in the header, the entry, and marks it read."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import saved_on_failure

pytestmark = pytest.mark.browser


def test_a_validated_lesson_reaches_its_author_in_the_header(open_as, open_pages, make_user,
                                                             make_lesson, tmp_path):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.analyst", "GBR", ("analyst",), display_name="Maj Analyst")
    lesson = make_lesson("gb.author", "submitted", title="Radios did not talk")

    with saved_on_failure(open_pages, tmp_path):
        analyst = open_as("gb.analyst")
        analyst.goto(f"/lessons/{lesson.public_id}")
        analyst.get_by_role("button", name="Validate").click()
        expect(analyst.get_by_role("status").first).to_contain_text(
            re.compile("validated", re.I))

        author = open_as("gb.author")
        count = author.get_by_role("link", name="Notifications, 1 unread")
        expect(count).to_have_text("Notifications (1)")
        count.click()
        expect(author).to_have_url(re.compile(r"/notifications$"))
        entry = author.get_by_test_id("notifications").get_by_role("listitem")
        expect(entry).to_contain_text(
            "Maj Analyst validated your lesson \u201cRadios did not talk\u201d.")
        entry.get_by_role("button", name="Mark as read").click()
        expect(author.get_by_role("link", name="Notifications, none unread")).to_have_text(
            "Notifications")
        author.get_by_role("link", name=re.compile("validated your lesson")).click()
        expect(author.get_by_role("heading", level=1)).to_have_text("Radios did not talk")
