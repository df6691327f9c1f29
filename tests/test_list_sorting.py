"""Sortable lists: /lessons (every tab) and /exercises sort by their columns, with the sort
in the URL. Each key in both directions, the sort kept by paging, tab and filter links,
aria-sort on the sorted heading, unknown values ignored (never a 500), and nothing hidden
listed whatever the order. Driven through HTTP as users would."""

from __future__ import annotations

import re
from datetime import date
from html import unescape

import pytest

from tests.test_exercises import day, exercise_form, exercise_id_from


def _tbody(html: str) -> str:
    match = re.search(r"<tbody>(.*?)</tbody>", html, re.S)
    return match.group(1) if match else ""


def _titles(html: str) -> list[str]:
    """The lesson titles of the table, in the order shown."""
    return [unescape(t) for t in
            re.findall(r'href="/lessons/[a-z0-9]{10}"[^>]*>([^<]+)</a>', _tbody(html))]


def _names(html: str) -> list[str]:
    return [unescape(t) for t in
            re.findall(r'href="/exercises/[a-z0-9]{10}"[^>]*>([^<]+)</a>', _tbody(html))]


def _aria_sorts(html: str) -> dict[str, str]:
    """``{sort key: aria-sort}`` of every heading that carries aria-sort."""
    return dict((key, value) for value, key in re.findall(
        r'<th scope="col" aria-sort="(ascending|descending)"><a class="sort-link" '
        r'href="[^"]*" data-sort="([a-z]+)"', html))


def _heading_href(html: str, key: str) -> str:
    match = re.search(rf'<a class="sort-link" href="([^"]*)" data-sort="{key}"', html)
    assert match, key
    return unescape(match.group(1))


def _sort_values(html: str) -> list[str]:
    """Every ``sort=`` value the page's links carry."""
    return re.findall(r'(?:\?|&amp;)sort=([^&"]*)', html)


def _get(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.get_data(as_text=True)


# --- lessons ---------------------------------------------------------------------------------
@pytest.fixture
def lessons(make_user, make_lesson):
    """Five lessons us.an may see (distinct titles, observed dates, statuses, nations),
    made in this order, and one GBR-only lesson they may not see."""
    for nation in ("GBR", "USA", "AUS", "CAN"):
        code = nation[:2].lower()
        make_user(f"{code}.author", nation, ("contributor",))
        make_user(f"{code}.an", nation, ("contributor", "analyst"))
    fvey = {"releasable_to": ["FVEY"]}
    make_lesson("gb.author", "validated", analyst="gb.an", title="Bravo relay",
                observed_on=date(2025, 3, 1), **fvey)
    make_lesson("us.author", "submitted", title="alpha net", observed_on=date(2024, 6, 1),
                **fvey)
    make_lesson("au.author", "archived", analyst="au.an", title="Charlie datum",
                observed_on=date(2023, 1, 15), **fvey)
    make_lesson("ca.author", "learned", analyst="ca.an", title="Delta fuel",
                observed_on=date(2025, 11, 30), **fvey)
    make_lesson("us.author", "submitted", title="Echo spares", observed_on=date(2022, 5, 5),
                **fvey)
    make_lesson("gb.author", "validated", analyst="gb.an", title="Hidden GBR eyes only",
                observed_on=date(2025, 7, 14), releasable_to=[])


# Ascending order of each key for us.an's "All" tab; descending is the exact reverse (ties
# break on the id in the same direction).
ASCENDING = {
    # case does not matter: "alpha" before "Bravo"
    "title": ["alpha net", "Bravo relay", "Charlie datum", "Delta fuel", "Echo spares"],
    # workflow order, not alphabetical; the two submitted ones by age
    "status": ["alpha net", "Echo spares", "Bravo relay", "Delta fuel", "Charlie datum"],
    # the nation code the Originator column shows
    "originator": ["Charlie datum", "Delta fuel", "Bravo relay", "alpha net", "Echo spares"],
    "observed": ["Echo spares", "Charlie datum", "alpha net", "Bravo relay", "Delta fuel"],
    # last change: the order they were made in
    "updated": ["Bravo relay", "alpha net", "Charlie datum", "Delta fuel", "Echo spares"],
}


@pytest.mark.parametrize("key", sorted(ASCENDING))
def test_each_lesson_column_sorts_both_ways(lessons, login_as, key):
    client = login_as("us.an")
    up = _get(client, f"/lessons?tab=all&sort={key}")
    down = _get(client, f"/lessons?tab=all&sort=-{key}")
    assert _titles(up) == ASCENDING[key]
    assert _titles(down) == ASCENDING[key][::-1]
    assert _aria_sorts(up) == {key: "ascending"}
    assert _aria_sorts(down) == {key: "descending"}
    assert '<span class="sort-arrow" aria-hidden="true"> \u2191</span>' in up
    assert '<span class="sort-arrow" aria-hidden="true"> \u2193</span>' in down


def test_the_default_order_is_newest_change_first_and_says_so(lessons, login_as):
    html = _get(login_as("us.an"), "/lessons")
    assert _titles(html) == ASCENDING["updated"][::-1]
    assert _aria_sorts(html) == {"updated": "descending"}
    # the Sort by control shows the order in force
    assert '<option value="-updated" selected>' in html


def test_a_heading_sorts_its_column_then_reverses_it(lessons, login_as):
    client = login_as("us.an")
    html = _get(client, "/lessons?tab=all&status=submitted")
    # a first click: titles A to Z, dates newest first; the filter is kept
    assert _heading_href(html, "title") == "/lessons?tab=all&status=submitted&sort=title"
    assert _heading_href(html, "observed") == "/lessons?tab=all&status=submitted&sort=-observed"
    sorted_html = _get(client, _heading_href(html, "title"))
    assert _titles(sorted_html) == ["alpha net", "Echo spares"]
    reverse = _heading_href(sorted_html, "title")
    assert reverse == "/lessons?tab=all&status=submitted&sort=-title"
    assert _titles(_get(client, reverse)) == ["Echo spares", "alpha net"]


def test_the_observed_column_shows_the_date_and_undated_lessons_sort_last(
        lessons, login_as, make_lesson):
    make_lesson("gb.author", "draft", title="Undated draft", observed_on=None)
    client = login_as("gb.author")
    html = _get(client, "/lessons?tab=mine&sort=observed")
    assert _titles(html) == ["Bravo relay", "Hidden GBR eyes only", "Undated draft"]
    assert _titles(_get(client, "/lessons?tab=mine&sort=-observed")) == [
        "Hidden GBR eyes only", "Bravo relay", "Undated draft"]
    assert re.search(r"<td[^>]*>2025-03-01</td>", html)
    assert re.search(r"<td[^>]*>Not given</td>", html)


def test_the_review_tab_sorts_its_queue(lessons, login_as):
    client = login_as("us.an")
    assert _titles(_get(client, "/lessons?tab=review")) == ["Echo spares", "alpha net"]
    assert _titles(_get(client, "/lessons?tab=review&sort=title")) == [
        "alpha net", "Echo spares"]
    assert _titles(_get(client, "/lessons?tab=review&sort=observed")) == [
        "Echo spares", "alpha net"]


def test_paging_keeps_the_sort_and_never_repeats_or_skips(app, lessons, login_as):
    app.config["LESSONS_PER_PAGE"] = 2
    client = login_as("us.an")
    url, seen = "/lessons?tab=all&sort=-status", []
    while url:
        html = _get(client, url)
        seen += _titles(html)
        found = re.search(r'<a rel="next" href="([^"]+)"', html)
        url = unescape(found.group(1)) if found else ""
        if url:
            assert "sort=-status" in url
            assert "tab=all" in url
    assert seen == ASCENDING["status"][::-1]


def test_tab_filter_and_narrowing_links_keep_the_sort(lessons, login_as):
    client = login_as("us.an")
    html = _get(client, "/lessons?tab=all&sort=originator")
    for tab in ("mine", "review", "all"):
        assert f'href="/lessons?tab={tab}&amp;sort=originator"' in html
    # the filter form sends the sort with the other filters
    assert '<option value="originator" selected>' in html
    narrowed = _get(client, "/lessons?tab=mine&returned=1&sort=originator")
    assert 'href="/lessons?tab=mine&amp;sort=originator">Show the whole list' in narrowed
    # a filter chosen in the form arrives with the sort and keeps it in the headings
    filtered = _get(client, "/lessons?tab=all&status=submitted&kind=&sort=-originator")
    assert _titles(filtered) == ["Echo spares", "alpha net"]
    assert _heading_href(filtered, "originator") == (
        "/lessons?tab=all&status=submitted&sort=originator")


@pytest.mark.parametrize("bad", [
    "bogus", "--title", "-", "title;drop", "TITLE", "title " * 400, "-" + "x" * 5000,
    "kind", "id", "updated_at",
])
def test_an_unknown_sort_is_ignored_not_refused(lessons, login_as, bad):
    client = login_as("us.an")
    response = client.get("/lessons", query_string={"tab": "all", "sort": bad})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert _titles(html) == ASCENDING["updated"][::-1]
    assert _aria_sorts(html) == {"updated": "descending"}
    # every link names a real sort; the bad value goes nowhere
    valid = {*ASCENDING, *(f"-{key}" for key in ASCENDING)}
    assert set(_sort_values(html)) <= valid


@pytest.mark.parametrize("sort", ["", *sorted(ASCENDING), *(f"-{k}" for k in ASCENDING)])
def test_hidden_lessons_never_appear_whatever_the_order(lessons, login_as, sort):
    client = login_as("us.an")
    for tab in ("all", "review", "mine"):
        html = _get(client, f"/lessons?tab={tab}&sort={sort}")
        assert "Hidden GBR eyes only" not in html
    assert len(_titles(_get(client, f"/lessons?tab=all&sort={sort}"))) == 5


# --- exercises -------------------------------------------------------------------------------
@pytest.fixture
def exercises(make_user, login_as):
    """Three upcoming and one past exercise gb.planner sees; one only France sees."""
    make_user("gb.planner", "GBR", ("contributor", "planner"))
    make_user("fr.planner", "FRA", ("planner",))
    planner = login_as("gb.planner")

    def create(client, **overrides) -> str:
        response = client.post("/exercises/new", data=exercise_form(**overrides))
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]
        return exercise_id_from(response.headers["Location"])

    create(planner, name="Exercise KILO", type="cpx", lead_nation="GBR",
           starts_on=day(60), ends_on=day(70))
    create(planner, name="exercise alpha", type="ftx", lead_nation="USA",
           starts_on=day(10), ends_on=day(90))
    create(planner, name="Exercise MIKE", type="cax", lead_nation="AUS",
           starts_on=day(30), ends_on=day(35))
    create(planner, name="Exercise OLD", type="staff_exercise", starts_on=day(-40),
           ends_on=day(-30))
    create(login_as("fr.planner"), name="Exercise FRENCH ONLY", lead_nation="FRA",
           nations=["FRA"], starts_on=day(20), ends_on=day(25))
    return planner


UPCOMING = {
    "starts": ["exercise alpha", "Exercise MIKE", "Exercise KILO"],
    "ends": ["Exercise MIKE", "Exercise KILO", "exercise alpha"],
    "name": ["exercise alpha", "Exercise KILO", "Exercise MIKE"],
    # by the label shown: Command post, Computer-assisted, Field training
    "type": ["Exercise KILO", "Exercise MIKE", "exercise alpha"],
    "lead": ["Exercise MIKE", "Exercise KILO", "exercise alpha"],  # AUS, GBR, USA
}


@pytest.mark.parametrize("key", sorted(UPCOMING))
def test_each_exercise_column_sorts_both_ways(exercises, key):
    up = _get(exercises, f"/exercises?when=upcoming&sort={key}")
    down = _get(exercises, f"/exercises?when=upcoming&sort=-{key}")
    assert _names(up) == UPCOMING[key]
    assert _names(down) == UPCOMING[key][::-1]
    assert _aria_sorts(up) == {key: "ascending"}
    assert _aria_sorts(down) == {key: "descending"}


def test_exercise_tabs_keep_their_default_order_and_say_which_it_is(exercises):
    upcoming = _get(exercises, "/exercises")
    assert _names(upcoming) == UPCOMING["starts"]
    assert _aria_sorts(upcoming) == {"starts": "ascending"}
    assert _aria_sorts(_get(exercises, "/exercises?when=past")) == {"ends": "descending"}
    every = _get(exercises, "/exercises?when=all")
    assert _names(every) == ["Exercise KILO", "Exercise MIKE", "exercise alpha",
                             "Exercise OLD"]
    assert _aria_sorts(every) == {"starts": "descending"}


def test_exercise_headings_tabs_and_sort_control_keep_when_and_sort(exercises):
    html = _get(exercises, "/exercises?when=all&sort=name")
    assert _heading_href(html, "name") == "/exercises?when=all&sort=-name"
    assert _heading_href(html, "lead") == "/exercises?when=all&sort=lead"
    assert 'href="/exercises?when=past&amp;sort=name"' in html
    # the Sort by form: the tab as a hidden field, the current order selected
    assert '<input type="hidden" name="when" value="all">' in html
    assert '<option value="name" selected>' in html
    assert "Exercise FRENCH ONLY" not in html


@pytest.mark.parametrize("bad", ["bogus", "-", "--name", "name" * 1000])
def test_an_unknown_exercise_sort_is_ignored(exercises, bad):
    response = exercises.get("/exercises", query_string={"when": "upcoming", "sort": bad})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert _names(html) == UPCOMING["starts"]
    assert set(_sort_values(html)) <= {*UPCOMING, *(f"-{key}" for key in UPCOMING)}


@pytest.mark.parametrize("sort", [*UPCOMING, *(f"-{k}" for k in UPCOMING)])
def test_exercises_of_other_nations_never_appear_whatever_the_order(exercises, sort):
    for when in ("upcoming", "all"):
        assert "FRENCH ONLY" not in _get(exercises, f"/exercises?when={when}&sort={sort}")
