"""The main flow in a real Chromium: write and submit a lesson, validate it, and see who
can read it, with CSRF on as in production (the fixtures are in ``tests/browser.py``).
On failure every open page is saved as a screenshot and HTML beside the test's
``tmp_path``, and the paths are added to the error.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from lessons.extensions import db
from tests.browser import saved_on_failure

pytestmark = pytest.mark.browser

FVEY_MARKING = "UNCLASSIFIED // REL TO AUS, CAN, GBR, NZL, USA"
TITLE = "Partner LNOs could not reach the coalition chat"


def test_lesson_is_written_validated_and_shared_only_as_released(
        open_as, open_pages, make_user, make_lesson, tmp_path):
    make_user("gb.author", "GBR", ("contributor",), display_name="Capt Author")
    make_user("gb.analyst", "GBR", ("analyst",))
    make_user("au.reader", "AUS", ("contributor",))
    gbr_only = make_lesson("gb.author", "submitted", title="Only for British eyes")

    with saved_on_failure(open_pages, tmp_path):
        # (a) A GBR contributor writes a lesson released to FVEY and submits it.
        author = open_as("gb.author")
        nav = author.get_by_role("navigation", name="Main")
        nav.get_by_role("link", name="Write a lesson").click()
        author.get_by_label("Title (required)", exact=True).fill(TITLE)
        author.get_by_label("Observation (required to submit)", exact=True).fill(
            "The AUS liaison officers had no account on the division chat server.")
        author.get_by_label("Recommendation (required to submit)", exact=True).fill(
            "Request partner accounts at the initial planning conference.")
        author.get_by_role("group", name="Releasable to").get_by_label("FVEY").check()
        author.get_by_role("button", name="Submit for review").click()

        expect(author).to_have_url(re.compile(r"/lessons/[\w-]+$"))
        lesson_url = author.url
        expect(author.get_by_role("heading", level=1)).to_have_text(TITLE)
        expect(author.locator(".meta .badge")).to_have_text("Submitted")
        expect(author.get_by_test_id("marking-top")).to_have_text(FVEY_MARKING)
        expect(author.get_by_test_id("marking-bottom")).to_have_text(FVEY_MARKING)

        nav.get_by_role("link", name="Lessons").click()
        author.get_by_role("link", name=re.compile(r"^Mine\b")).click()
        expect(author).to_have_url(re.compile(r"tab=mine"))
        expect(author.locator("table.lessons").get_by_role("link", name=TITLE)).to_be_visible()

        # (b) A GBR analyst finds it in the review queue and validates it.
        analyst = open_as("gb.analyst")
        analyst.goto("/lessons?tab=review")
        analyst.get_by_role("link", name=TITLE).click()
        expect(analyst).to_have_url(lesson_url)
        analyst.get_by_role("button", name="Validate").click()
        # The analyst goes on to the next lesson to review; the flash names what was done.
        expect(analyst.get_by_role("status")).to_contain_text("Validated")
        analyst.goto(lesson_url)
        expect(analyst.locator(".meta .badge")).to_have_text("Validated")

        # (c) An AUS user reads the FVEY lesson; a lesson for GBR alone does not exist
        # for them.
        reader = open_as("au.reader")
        response = reader.goto(lesson_url)
        assert response is not None and response.status == 200
        expect(reader.get_by_role("heading", level=1)).to_have_text(TITLE)
        expect(reader.get_by_test_id("marking-top")).to_have_text(FVEY_MARKING)
        response = reader.goto(f"/lessons/{gbr_only.public_id}")
        assert response is not None and response.status == 404
        expect(reader.get_by_text("Only for British eyes")).to_have_count(0)

        # (d) The AUS user finds it through the search page; the GBR-only lesson is in
        # neither their results nor their count.
        reader.get_by_role("navigation", name="Main").get_by_role("link", name="Search").click()
        reader.get_by_label(re.compile("^Words")).fill("liaison chat")
        reader.get_by_role("search").get_by_role("button", name="Search").click()
        expect(reader).to_have_url(re.compile(r"/search\?q=liaison"))
        expect(reader.locator("ol.results").get_by_role("link", name=TITLE)).to_be_visible()
        expect(reader.locator("ol.results mark").first).to_be_visible()
        reader.get_by_label(re.compile("^Words")).fill("British")
        reader.get_by_role("search").get_by_role("button", name="Search").click()
        expect(reader.get_by_test_id("total")).to_contain_text("0 lessons found")
        expect(reader.get_by_text("Only for British eyes")).to_have_count(0)


def test_planner_goes_from_a_new_exercise_to_the_printed_packet(
        open_as, open_pages, make_user, make_lesson, tmp_path):
    from datetime import date, timedelta

    make_user("gb.planner", "GBR", ("contributor", "planner"), display_name="Maj Planner")
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.analyst", "GBR", ("analyst",))
    lesson = make_lesson("gb.author", "validated", analyst="gb.analyst",
                         releasable_to=["FVEY"], tags=["liaison"], title=TITLE)
    make_lesson("gb.author", "validated", analyst="gb.analyst", tags=["liaison"],
                title="Kept for British eyes")
    soon = date.today() + timedelta(days=40)

    with saved_on_failure(open_pages, tmp_path):
        planner = open_as("gb.planner")
        planner.get_by_role("navigation", name="Main").get_by_role("link",
                                                                 name="Exercises").click()
        planner.get_by_role("link", name="Plan a new exercise").click()
        planner.locator("#name").fill("Exercise BROWSER JACKAL")
        participants = planner.get_by_role("group", name="Participating nations")
        participants.get_by_label("USA").check()
        participants.get_by_label("AUS").check()
        planner.get_by_label("Starts on").fill(soon.isoformat())
        planner.get_by_label("Ends on").fill((soon + timedelta(days=7)).isoformat())
        planner.get_by_label("Description").fill(
            "Divisional CPX with partner liaison officers on the coalition chat.")
        planner.get_by_label("Objective 1").fill("Give partner LNOs chat accounts on day one")
        planner.get_by_label("Tags").fill("liaison")
        planner.get_by_label("Initial planning conference").fill(
            (date.today() + timedelta(days=10)).isoformat())
        planner.get_by_role("button", name="Create exercise").click()
        expect(planner.get_by_role("heading", level=1)).to_have_text("Exercise BROWSER JACKAL")
        expect(planner.locator("#timeline")).to_contain_text("in 10 days")

        # Recommendations: the FVEY lesson first, with its reasons; attach it.
        planner.get_by_role("link", name="Recommended lessons", exact=True).click()
        first = planner.locator("li.recommendation").first
        expect(first.get_by_role("link", name=TITLE)).to_be_visible()
        expect(first.locator(".why")).to_contain_text("Shares tags: liaison")
        expect(first).to_contain_text("Releasable to every participating nation.")
        first.get_by_role("link", name="Attach…").click()
        planner.get_by_label("Supports objective").select_option(
            label="1. Give partner LNOs chat accounts on day one")
        planner.get_by_label("Note").fill("Brief at the IPC.")
        planner.get_by_role("button", name="Attach as proposed").click()
        attached = planner.locator(f"#link-{lesson.public_id}")
        expect(attached.locator(".badge").first).to_have_text("Proposed")
        attached.get_by_role("button", name="Mark accepted").click()
        expect(planner.locator(f"#link-{lesson.public_id} .badge").first).to_have_text(
            "Accepted")

        # The packet for the initial planning conference, then printed.
        planner.locator("#timeline").get_by_role("row", name=re.compile(
            "Initial planning conference")).get_by_role("link").click()
        expect(planner.get_by_role("heading", level=1)).to_have_text(
            "Read-ahead packet: Exercise BROWSER JACKAL")
        group = planner.locator("section.packet-group")
        expect(group.get_by_role("heading", level=2)).to_have_text(
            "Objective 1: Give partner LNOs chat accounts on day one")
        expect(group.get_by_role("heading", level=3)).to_have_text(TITLE)
        expect(planner.get_by_text("Kept for British eyes")).to_have_count(0)
        marking = "UNCLASSIFIED // REL TO AUS, GBR, USA"
        expect(planner.get_by_test_id("marking-top")).to_have_text(marking)
        planner.emulate_media(media="print")
        expect(planner.locator(".packet-options")).to_be_hidden()
        expect(planner.get_by_test_id("marking-top")).to_be_visible()
        assert planner.get_by_test_id("marking-top").evaluate(
            "e => getComputedStyle(e).position") == "fixed"
        pdf = planner.pdf(format="A4")
        assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 1


def test_admin_reads_and_filters_the_audit_trail(open_as, open_pages, make_user, make_lesson,
                                                 app, tmp_path):
    from lessons.models import User
    from lessons.services import tokens

    make_user("us.admin", "USA", ("admin",))
    make_user("gb.author", "GBR", ("contributor",))
    make_user("au.reader", "AUS", ("contributor",))
    make_lesson("gb.author", "draft", title="A draft nobody else may read")
    with app.app_context():
        author = db.session.query(User).filter_by(username="gb.author").one()
        tokens.create_token(author, "nightly sync")

    with saved_on_failure(open_pages, tmp_path):
        open_as("au.reader")  # a log-in by someone else, to be filtered out
        admin = open_as("us.admin")
        admin.get_by_role("navigation", name="Main").get_by_role("link",
                                                                 name="Audit trail").click()
        expect(admin.get_by_role("heading", level=1)).to_have_text("Audit trail")
        table = admin.get_by_test_id("audit-table")
        expect(table.get_by_text("token created")).to_be_visible()
        expect(table.get_by_text("au.reader", exact=False).first).to_be_visible()
        # the draft's record is there, but the admin may not read the draft: withheld
        expect(table.get_by_text("withheld (not releasable to you)")).to_have_count(1)
        expect(admin.get_by_text("A draft nobody else may read")).to_have_count(0)

        admin.get_by_label("User").fill("gb.author")
        admin.get_by_role("button", name="Filter").click()
        expect(admin).to_have_url(re.compile(r"/admin/audit\?user=gb.author"))
        expect(table.get_by_text("au.reader")).to_have_count(0)
        rows = table.locator("tbody tr")
        expect(rows.first).to_be_visible()
        assert rows.count() == table.locator("tbody tr", has_text="gb.author").count() >= 2

        admin.get_by_label("Action").select_option(label="token created")
        admin.get_by_role("button", name="Filter").click()
        expect(admin.get_by_test_id("audit-total")).to_contain_text("1 entry")
        expect(table.locator("tbody tr")).to_have_count(1)
        expect(table).to_contain_text("nightly sync")
        download = admin.get_by_role("link", name="Download as CSV")
        expect(download).to_have_attribute(
            "href", "/admin/audit.csv?user=gb.author&action=token_created")

        admin.get_by_label("From").fill("2999-01-01")  # a date picker: ISO in, ISO out
        admin.get_by_role("button", name="Filter").click()
        expect(admin).to_have_url(re.compile(r"from=2999-01-01"))
        expect(admin.get_by_text("No entry matches these filters.")).to_be_visible()

        response = admin.goto("/admin/audit?from=not-a-day")  # typed into the address bar
        assert response is not None and response.status == 422
        expect(admin.get_by_text("Not a date: give a date as YYYY-MM-DD")).to_be_visible()
        expect(admin.get_by_test_id("audit-table")).to_have_count(0)
