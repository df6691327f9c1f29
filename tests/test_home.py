"""The "What needs me" home page, through HTTP: every count it shows equals the number of
items on the page its link opens, for every demo user; each role's entries; nothing
hidden from the user is counted."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urldefrag

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from lessons.demo import DEMO_USERS
from lessons.extensions import db
from lessons.models import User
from lessons.services import exercises as exercise_service
from lessons.services import lessons as lesson_service
from lessons.services import packets
from lessons.services.lessons import LessonFilter
from lessons.services.worklist import worklist

DEMO_USERNAMES = [row[0] for row in DEMO_USERS]


class _Tags(HTMLParser):
    """Start tags carrying a ``data-testid`` (with their attributes), and every ``href``
    of a ``rel="next"`` link."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.next: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "data-testid" in values:
            self.tags.append((values["data-testid"], values))
        if tag == "a" and values.get("rel") == "next":
            self.next = values["href"]


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def _page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def home_entries(client: FlaskClient, html: str | None = None) -> dict[str, tuple[int, str]]:
    """The home page's entries: key -> (count shown, link)."""
    entries = {}
    for testid, attrs in _parse(html or _page(client, "/")).tags:
        if testid.startswith("home-entry-"):
            entries[testid.removeprefix("home-entry-")] = (int(attrs["data-count"]),
                                                           attrs["href"])
    return entries


def items_listed(client: FlaskClient, href: str) -> int:
    """How many items the page at ``href`` lists: the section its anchor names, or the
    lesson table, read over every page of it."""
    url, anchor = urldefrag(href)
    html = _page(client, url)
    if anchor:
        item = {"outcomes": "outcome-item", "release-requests": "release-item",
                "partner-requests": "partner-item"}[anchor]
        found = sum(1 for testid, _ in _parse(html).tags if testid == item)
        if found:
            assert f'id="{anchor}"' in html
        return found
    total = int(re.search(r'data-testid="lesson-total">(\d+) ', html).group(1))
    rows = 0
    while True:
        parsed = _parse(html)
        rows += sum(1 for testid, _ in parsed.tags if testid == "lesson-row")
        if parsed.next is None:
            break
        html = _page(client, parsed.next)
    assert rows == total, (href, rows, total)
    return rows


def packet_figures(client: FlaskClient, href: str) -> tuple[int, int, int]:
    """(in the packet, proposed, withheld) as the packet page shows them."""
    html = _page(client, href)
    in_packet = html.count('<article class="packet-lesson"')
    withheld_section = re.search(r'<section id="withheld".*?</section>', html, re.S)
    withheld = withheld_section.group(0).count("<li>") if withheld_section else 0
    proposed = re.search(r"(\d+) lessons? at this milestone still only proposed", html)
    return in_packet, int(proposed.group(1)) if proposed else 0, withheld


def _milestones(client: FlaskClient, html: str | None = None) -> list[dict[str, str]]:
    parsed = _parse(html or _page(client, "/")).tags
    rows = [attrs for testid, attrs in parsed if testid == "home-milestone"]
    links = [attrs["href"] for testid, attrs in parsed if testid == "home-milestone-packet"]
    return [{**row, "href": href} for row, href in zip(rows, links, strict=True)]


def _as(app: Flask, username: str, fn: Callable[[User], object]) -> object:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        return fn(user)


# --- every demo user: each count equals its list ------------------------------------------
def _check_counts_equal_lists(client: FlaskClient, username: str) -> None:
    home = _page(client, "/")
    entries = home_entries(client, home)
    assert "overdue" in entries  # every user has a nation
    for key, (count, href) in entries.items():
        assert items_listed(client, href) == count, (username, key, href)
    for row in _milestones(client, home):
        shown = (int(row["data-in-packet"]), int(row["data-proposed"]),
                 int(row["data-withheld"]))
        assert packet_figures(client, row["href"]) == shown, (username, row)
    if "review" in entries:
        tab = _page(client, "/lessons?tab=review")
        tab_count = re.search(r'data-testid="tab-review" data-count="(\d+)"', tab).group(1)
        review_total = re.search(r'data-testid="home-review-total">(\d+)<', home).group(1)
        assert review_total == tab_count


def test_home_on_the_demo_data(app, demo, login_as):
    """Read-only checks sharing one load of the demo data (it takes seconds): for every
    demo user each count equals its list; roles decide the sections; the analyst's
    outcome and release request; the planner's milestones; links are their filters."""
    for username in DEMO_USERNAMES:
        _check_counts_equal_lists(login_as(username), username)
    _check_roles_decide_the_sections(login_as)
    _check_analyst_sees_the_outcome_and_release_request_waiting(login_as)
    _check_planner_sees_upcoming_milestones_with_packet_status(login_as)
    _check_worklist_links_are_the_filters_it_counts_with(app)
    _check_bad_list_filters_are_ignored_not_refused(login_as)


def _check_roles_decide_the_sections(login_as) -> None:
    assert set(home_entries(login_as("admin"))) == {"overdue"}
    assert set(home_entries(login_as("au.contributor"))) == {
        "returned", "drafts", "validated", "mine", "overdue"}
    assert set(home_entries(login_as("gb.analyst"))) == {
        "review", "outcomes", "releases", "returned", "drafts", "validated", "mine",
        "overdue"}
    assert 'data-testid="home-section-milestones"' in _page(login_as("gb.planner"), "/")
    assert 'data-testid="home-section-milestones"' not in _page(login_as("gb.analyst"), "/")


# --- analysts -------------------------------------------------------------------------------
def _check_analyst_sees_the_outcome_and_release_request_waiting(login_as) -> None:
    """The observed bug: home said "2 to review" while the tab counted 4, and never
    mentioned the outcome to confirm or the release request."""
    client = login_as("gb.analyst")
    entries = home_entries(client)
    assert entries["outcomes"][0] == 1
    assert entries["releases"][0] == 1
    review = _page(client, entries["outcomes"][1])
    assert "Jointly written glossary annex" in review
    assert "Coupling and NSN gaps" in review
    home = _page(client, "/")
    tab = _page(client, "/lessons?tab=review")
    tab_count = int(re.search(r'data-testid="tab-review" data-count="(\d+)"', tab).group(1))
    assert tab_count == entries["review"][0] + 1 + 1
    assert f'data-testid="home-review-total">{tab_count}<' in home
    assert entries["outcomes"][1].endswith("#outcomes")
    assert entries["releases"][1].endswith("#release-requests")


def test_counts_follow_the_work_done(app, demo, login_as, make_lesson):
    """Mutating checks sharing one load of the demo data; each looks at entries the
    others do not change."""
    app.config["SELF_REVIEW_NATIONS"] = ["GBR", "USA"]  # one analyst per demo nation
    _check_deciding_a_release_request(app, login_as)
    _check_contributor_returned_drafts_and_recently_validated(app, login_as, make_lesson)
    _check_overdue_actions_of_my_nation(app, login_as, make_lesson)


def _check_deciding_a_release_request(app: Flask, login_as) -> None:
    client = login_as("gb.analyst")
    before = home_entries(client)["releases"][0]

    def decide(user: User) -> None:
        request = packets.pending_release_requests(user)[0]
        packets.decide_release(user, request.public_id, approve=False, note="Not yet.")

    _as(app, "gb.analyst", decide)
    count, href = home_entries(client)["releases"]
    assert count == before - 1 == items_listed(client, href)


# --- contributors ---------------------------------------------------------------------------
def _check_contributor_returned_drafts_and_recently_validated(app: Flask, login_as,
                                                              make_lesson) -> None:
    client = login_as("au.contributor")
    before = {key: count for key, (count, _) in home_entries(client).items()}
    make_lesson("au.contributor", "draft", title="A draft still being written")
    returned = make_lesson("au.contributor", "submitted", title="Sent back for more detail")
    _as(app, "au.analyst", lambda analyst: lesson_service.transition_lesson(
        analyst, returned.public_id, "draft", "Say which radios were used."))
    make_lesson("au.contributor", "validated", analyst="au.analyst",
                title="Validated this week")
    after = home_entries(client)
    assert after["returned"][0] == before["returned"] + 1
    assert after["drafts"][0] == before["drafts"] + 2
    assert after["validated"][0] == before["validated"] + 1
    assert after["mine"][0] == before["mine"] + 3
    assert "Sent back for more detail" in _page(client, after["returned"][1])
    assert "A draft still being written" not in _page(client, after["returned"][1])
    assert "Validated this week" in _page(client, after["validated"][1])
    for key, (count, href) in after.items():
        assert items_listed(client, href) == count, key
    # Resubmitted, it is no longer waiting for its author.
    _as(app, "au.contributor", lambda user: lesson_service.transition_lesson(
        user, returned.public_id, "submitted"))
    assert home_entries(client)["returned"][0] == before["returned"]


def test_nothing_waits_is_said_plainly(app, make_user, login_as):
    make_user("new.contributor", nation="NOR", roles=("contributor",))
    client = login_as("new.contributor")
    home = _page(client, "/")
    assert "Nothing waits for you." in home
    entries = home_entries(client)
    assert entries and all(count == 0 for count, _ in entries.values())
    for count, href in entries.values():
        assert items_listed(client, href) == count


# --- planners -------------------------------------------------------------------------------
def _check_planner_sees_upcoming_milestones_with_packet_status(login_as) -> None:
    client = login_as("gb.planner")
    rows = {row["href"].split("milestone=")[1]: row for row in _milestones(client)}
    # SOUTHERN JACKAL: main planning conference in 15 days, site survey in 30, final
    # planning conference in 45; execution (75 days) is beyond the horizon.
    assert set(rows) == {"main_planning_conference", "site_survey",
                         "final_planning_conference"}
    main = rows["main_planning_conference"]
    # Three accepted or incorporated there; the UK-US fuel lesson is not released to AUS.
    assert (main["data-in-packet"], main["data-proposed"], main["data-withheld"]) == (
        "2", "0", "1")
    final = rows["final_planning_conference"]
    assert (final["data-in-packet"], final["data-proposed"], final["data-withheld"]) == (
        "0", "1", "0")
    for row in rows.values():
        assert packet_figures(client, row["href"]) == (
            int(row["data-in-packet"]), int(row["data-proposed"]), int(row["data-withheld"]))
    assert "3 lessons attached: 2 in the packet, 0 proposed, 1 withheld" in _page(client, "/")
    # The UK-US fuel lesson is hidden from Australia: its planner's figures leave it out
    # altogether (neither in the packet nor withheld), as the packet page does.
    au_client = login_as("au.planner")
    au_rows = {row["href"].split("milestone=")[1]: row for row in _milestones(au_client)}
    au_main = au_rows["main_planning_conference"]
    assert (au_main["data-in-packet"], au_main["data-proposed"], au_main["data-withheld"]) == (
        "2", "0", "0")
    assert "Coupling and NSN gaps" not in _page(au_client, au_main["href"])


def test_planner_without_upcoming_milestones_is_told_so(app, make_user, login_as):
    make_user("lone.planner", nation="GBR", roles=("planner",))
    home = _page(login_as("lone.planner"), "/")
    assert 'data-testid="home-no-milestones"' in home


# --- overdue remedial actions of my nation --------------------------------------------------
def _check_overdue_actions_of_my_nation(app: Flask, login_as, make_lesson) -> None:
    client = login_as("gb.analyst")
    before, href = home_entries(client)["overdue"]
    assert href.endswith("overdue=1")
    lesson = make_lesson("gb.analyst", "validated", analyst="gb.analyst",
                         title="Radio fill devices not returned after the exercise")
    yesterday = exercise_service.today() - timedelta(days=1)
    tomorrow = exercise_service.today() + timedelta(days=1)

    def add(description: str, due, user_name: str = "gb.analyst") -> None:
        _as(app, user_name, lambda user: lesson_service.add_action(
            user, lesson.public_id, {"description": description, "due_on": due}))

    add("Not yet due", tomorrow)
    assert home_entries(client)["overdue"][0] == before
    add("Collect the fill devices", yesterday)
    add("Write the return procedure", yesterday)
    count, href = home_entries(client)["overdue"]
    assert count == before + 1 == items_listed(client, href)  # one lesson, two actions
    assert "Radio fill devices not returned" in _page(client, href)
    for position in (2, 3):
        _as(app, "gb.analyst", lambda user, p=position: lesson_service.set_action_status(
            user, lesson.public_id, p, "done"))
    assert home_entries(client)["overdue"][0] == before
    # Another nation's overdue lesson, even one GBR may read, is not GBR's to chase.
    other = make_lesson("us.analyst", "validated", analyst="us.analyst",
                        title="US lesson with a late action", releasable_to=["GBR"])
    _as(app, "us.analyst", lambda user: lesson_service.add_action(
        user, other.public_id, {"description": "Late", "due_on": yesterday}))
    assert home_entries(client)["overdue"][0] == before
    assert home_entries(login_as("us.analyst"))["overdue"][0] >= 1


# --- nothing leaks --------------------------------------------------------------------------
def test_counts_never_include_lessons_the_user_may_not_see(app, demo, login_as, make_lesson):
    app.config["SELF_REVIEW_NATIONS"] = ["USA"]  # one analyst per demo nation
    clients = {name: login_as(name) for name in DEMO_USERNAMES}
    before = {name: home_entries(c) for name, c in clients.items()}
    yesterday = exercise_service.today() - timedelta(days=1)
    # A US lesson for US eyes only: validated this week, with an overdue action.
    hidden = make_lesson("us.analyst", "validated", analyst="us.analyst",
                         title="US eyes only", releasable_to=[])
    _as(app, "us.analyst", lambda user: lesson_service.add_action(
        user, hidden.public_id, {"description": "Late", "due_on": yesterday}))
    # A GBR draft returned to its author: only its author sees it.
    returned = make_lesson("gb.planner", "submitted", title="Returned UK draft")
    _as(app, "gb.analyst", lambda user: lesson_service.transition_lesson(
        user, returned.public_id, "draft", "Add the dates."))
    after = {name: home_entries(c) for name, c in clients.items()}
    changed = {(name, key) for name in DEMO_USERNAMES for key in after[name]
               if after[name][key][0] != before[name][key][0]}
    assert changed == {("us.analyst", "validated"), ("us.analyst", "mine"),
                       ("us.analyst", "overdue"), ("us.planner", "overdue"),
                       ("admin", "overdue"), ("gb.planner", "returned"),
                       ("gb.planner", "drafts"), ("gb.planner", "mine")}


def _check_worklist_links_are_the_filters_it_counts_with(app: Flask) -> None:
    """One source per list: every lesson entry's link reads back as the filter it was
    counted with."""
    with app.app_context():
        for user in db.session.scalars(select(User)):
            for section in worklist(user).sections:
                for entry in section.entries:
                    if entry.endpoint == "lessons.index" and not entry.anchor:
                        flt = LessonFilter.from_args(entry.args)
                        assert flt.to_args() == entry.args
                        assert lesson_service.count_lessons(user, flt) == entry.count


def _check_bad_list_filters_are_ignored_not_refused(login_as) -> None:
    client = login_as("gb.analyst")
    for query in ("validated_since=yesterday", "validated_since=2026-13-45", "overdue=yes",
                  "returned=2"):
        response = client.get(f"/lessons?tab=mine&{query}")
        assert response.status_code == 200, query
