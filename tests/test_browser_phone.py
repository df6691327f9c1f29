"""Muster on a 360 px phone and a 1366 px laptop, in a real Chromium.

Every main page, for a user with every role and a long name, among the demo data and
lessons with long titles: nothing scrolls sideways (list tables become one card per row,
each value labelled), and on the phone the header is one short bar whose "Menu" holds the
navigation while the unread-notifications count stays in sight.

The search page: the facets sit behind a "Filters" disclosure on the phone and after the
results in Tab order, and the keyboard reaches the first result from the search box in
at most three Tabs (a "Skip to results" link)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser import saved_on_failure

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


# --- every main page ---------------------------------------------------------------------
EVERYONE = "gb.everything"
LONG_NAME = "Lieutenant-Colonel Alexandra Montgomery-Fotheringham-Smythe"
LONG_EXERCISE = "Exercise COALITION-INTEROPERABILITY-AND-CROSS-DOMAIN-SOLUTIONS-VALIDATION 2027"


@pytest.fixture
def world(app, demo, make_user, make_lesson, login_as) -> dict[str, str]:
    """The demo data, plus a British user with every role and a long name who plans an
    exercise with a long name, reviews lessons with long titles, has an API token and a
    watched search. Returns the pages' paths that need ids."""
    from datetime import date, timedelta

    from lessons.models import GlossaryGroup, User
    from lessons.services import lessons as lesson_service
    from lessons.services import tokens, watches

    make_user(EVERYONE, "GBR", ("contributor", "analyst", "planner", "admin"),
              display_name=LONG_NAME, unit="Headquarters Allied Rapid Reaction Corps G7")
    make_user("gb.writer", "GBR", ("contributor",), display_name="Capt Writer")
    shown = make_lesson("gb.writer", "action_assigned", analyst=EVERYONE,
                        title=f"{LONG_TITLE} (acted on)", releasable_to=["FVEY"])
    for n in range(2):
        make_lesson("gb.writer", "submitted", title=f"{LONG_TITLE} (to review {n})")
    draft = make_lesson(EVERYONE, "draft", title=f"{LONG_TITLE} (draft)")
    other = make_lesson("gb.writer", "validated", analyst=EVERYONE,
                        title=f"{LONG_TITLE} (not yet attached)", releasable_to=["FVEY"])
    with app.app_context():
        from sqlalchemy import select

        from lessons.extensions import db

        user = db.session.scalar(select(User).where(User.username == EVERYONE))
        user_id = user.id
        group_id = db.session.scalar(select(GlossaryGroup.id).order_by(GlossaryGroup.id))
        lesson_service.add_action(user, shown.public_id, {
            "description": "Give-every-partner-liaison-officer-an-account-on-the-coalition-"
                           "chat-server before the initial planning conference",
            "owner_org": "HQ 3rd (UK) Division G6 Communications and Information Systems",
            "due_on": date.today() + timedelta(days=30)})
        tokens.create_token(user, "Nightly-synchronisation-with-the-national-lessons-database")
        watches.save_watch(user, "Coalition-interoperability-and-cross-domain-solutions",
                           "interoperability coalition", None, "relevance")

    soon = date.today() + timedelta(days=40)
    planner = login_as(EVERYONE)
    response = planner.post("/exercises/new", data={
        "name": LONG_EXERCISE, "type": "cpx", "lead_nation": "GBR",
        "nations": ["GBR", "USA", "AUS", "CAN", "NZL"],
        "starts_on": soon.isoformat(), "ends_on": (soon + timedelta(days=9)).isoformat(),
        "location": "Salisbury-Plain-Training-Area and Sennybridge",
        "description": "A divisional command post exercise with partner liaison officers.",
        "objectives-0-id": "", "objectives-0-text": "Exchange liaison officers on day one",
        "tags": "liaison, mission-network",
        "milestones-initial_planning_conference": (date.today() + timedelta(days=5))
        .isoformat(),
        "planners": ""})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    exercise = response.headers["Location"].rsplit("/", 1)[-1]
    response = planner.post(f"/exercises/{exercise}/attach?lesson={shown.public_id}", data={
        "purpose": "training_objective", "objective": "", "note": "",
        "milestone": "initial_planning_conference"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return {"lesson": f"/lessons/{shown.public_id}", "exercise": f"/exercises/{exercise}",
            "packet": f"/exercises/{exercise}/packet?milestone=initial_planning_conference",
            "draft": draft.public_id, "shown": shown.public_id, "other": other.public_id,
            "exercise_id": exercise, "user": str(user_id), "group": str(group_id)}


MAIN_PAGES = ["/", "/lessons", "/lessons?tab=review", "/lessons?tab=all", "{lesson}",
              "/lessons/new", "/exercises", "{exercise}", "{packet}", "/notifications",
              "/account", "/account/watches", "/admin/users", "/admin/glossary",
              "/admin/audit", "/api/docs", "/search?q=interoperability", "/no-such-page"]


# The forms and the pages one step away from the main ones.
OTHER_PAGES = ["/lessons/{draft}/edit", "/lessons/import", "/exercises/new",
               "{exercise}/edit", "{exercise}/recommendations",
               "{exercise}/attach-by-tag?tag=liaison", "{exercise}/attach?lesson={other}",
               "{exercise}/lessons/{shown}/edit", "/account/notifications",
               "/admin/users/new", "/admin/users/{user}/edit", "/admin/users/{user}/password",
               "/admin/glossary/new", "/admin/glossary/{group}/edit",
               "/admin/glossary/{group}/delete", "/admin/glossary/reset"]


# Words of buttons, tabs and badges that a narrow layout split across two lines (a line
# break after a hyphen is fine): what "overflow-wrap: anywhere" does to a squeezed button.
SPLIT_WORDS = """() => {
  const split = [];
  for (const el of document.querySelectorAll(
      'main button, main .button, main .tabs a, main .badge')) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.getBoundingClientRect().width <= 1) continue;  // for readers
      for (const m of node.data.matchAll(/[^\\s-]+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        if (lines.size > 1) split.push(m[0]);
      }
    }
  }
  return split;
}"""


def pages_wider_than_the_screen(page: Page, paths: list[str], ids: dict[str, str]
                                ) -> dict[str, int | list[str]]:
    """Each path whose page scrolls sideways, with by how many pixels, or whose buttons
    have a word split in two, with the words."""
    wider: dict[str, int | list[str]] = {}
    for path in paths:
        response = page.goto(path.format(**ids))
        assert response.status < 500 and (response.status < 400 or path == "/no-such-page"), (
            f"{path}: {response.status}")
        if overflow := sideways_overflow(page):
            wider[path] = overflow
        elif split := page.evaluate(SPLIT_WORDS):
            wider[path] = split
    return wider


@pytest.mark.parametrize("size", [PHONE, LAPTOP], ids=["360px", "1366px"])
def test_no_main_page_scrolls_sideways(open_as, open_pages, world, tmp_path, size):
    page = open_as(EVERYONE)
    page.set_viewport_size(size)
    with saved_on_failure(open_pages, tmp_path):
        wider = pages_wider_than_the_screen(page, MAIN_PAGES, world)
        assert wider == {}, f"pages wider than {size['width']} px (by px), or split words: {wider}"


@pytest.mark.parametrize("size", [PHONE, LAPTOP], ids=["360px", "1366px"])
def test_no_form_scrolls_sideways(open_as, open_pages, world, tmp_path, size):
    page = open_as(EVERYONE)
    page.set_viewport_size(size)
    with saved_on_failure(open_pages, tmp_path):
        wider = pages_wider_than_the_screen(page, OTHER_PAGES, world)
        page.get_by_role("button", name="Log out").click()
        page.goto("/login")
        if overflow := sideways_overflow(page):
            wider["/login"] = overflow
        assert wider == {}, f"pages wider than {size['width']} px (by px), or split words: {wider}"


def test_on_a_phone_the_header_is_one_short_bar_with_the_unread_count(open_as, open_pages,
                                                                      world, tmp_path):
    page = open_as(EVERYONE)
    page.set_viewport_size(PHONE)
    with saved_on_failure(open_pages, tmp_path):
        page.goto("/lessons")
        # Two short lines (about 68 px); the whole navigation and this long name used to
        # wrap to nine lines, 274 px, over a third of the screen.
        assert page.locator("header.site").bounding_box()["height"] < 80
        expect(page.get_by_test_id("notification-count")).to_be_visible()
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Exercises")).to_be_hidden()
        # The menu opens from the keyboard: Skip link, brand, notifications, then Menu.
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        menu = page.locator("header.site summary")
        menu.focus()
        page.keyboard.press("Enter")
        expect(nav.get_by_role("link", name="Exercises")).to_be_visible()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        page.keyboard.press("Tab")
        expect(nav.get_by_role("link", name="Lessons")).to_be_focused()
        assert sideways_overflow(page) == 0
        nav.get_by_role("link", name="Exercises").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Exercises")


def test_on_a_laptop_the_header_shows_the_whole_navigation(open_as, open_pages, world,
                                                           tmp_path):
    page = open_as(EVERYONE)
    page.set_viewport_size(LAPTOP)
    with saved_on_failure(open_pages, tmp_path):
        page.goto("/lessons")
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Audit trail")).to_be_visible()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        expect(page.locator("header.site summary")).to_be_hidden()


def label_of(cell) -> str:
    """The label a reflowed cell shows before its value (CSS generated content)."""
    return cell.evaluate("td => getComputedStyle(td, '::before').content")


def test_on_a_phone_a_list_row_is_a_card_with_its_labels(open_as, open_pages, world,
                                                         tmp_path):
    page = open_as(EVERYONE)
    with saved_on_failure(open_pages, tmp_path):
        page.set_viewport_size(PHONE)
        page.goto("/lessons?tab=review")
        row = page.get_by_test_id("lesson-row").first
        assert row.evaluate("tr => getComputedStyle(tr).display") == "block"
        box = row.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        cells = row.locator("td")
        labels = [label_of(cells.nth(i)) for i in range(cells.count())]
        assert labels[:3] == ['"Title"', '"Kind"', '"Status"'] and '"Marking"' in labels
        # The column headings stay for screen readers, out of sight.
        heading = page.locator("table.lessons thead")
        assert heading.bounding_box()["height"] <= 1

        page.set_viewport_size(LAPTOP)
        assert row.evaluate("tr => getComputedStyle(tr).display") == "table-row"
        assert label_of(cells.nth(1)) in ("none", "normal")
        expect(page.locator("table.lessons th").first).to_be_visible()
