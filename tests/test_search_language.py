"""Search that staffs trust: the query language, facets, sort and page sizes, "did you
mean", coalition spelling and the glossary, each checked through the search page and
against the policy (nothing hidden leaks through counts, facets or suggestions)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

import pytest
from sqlalchemy import select

from lessons import policy, search
from lessons.extensions import db
from lessons.models import Lesson, User
from lessons.search.documents import lesson_date
from lessons.search.glossary import Glossary
from tests.test_search import hits, total


@pytest.fixture
def people(make_user):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("au.user", "AUS", ("contributor",))
    make_user("us.user", "USA", ("contributor",))


@pytest.fixture
def corpus(people, make_lesson):
    """Five validated lessons with distinct fields; ids by short name."""
    def make_lesson_(*args, **fields):
        # Replace the fixture's default text so only the words given here are indexed.
        fields = {"discussion": "", "conclusion": "", "recommendation": "Fix it.", **fields}
        return make_lesson(*args, **fields)

    made = {
        "radio": make_lesson_("gb.author", "validated", analyst="gb.an", releasable_to=["FVEY"],
                             title="HF radio crypto fills did not match", kind="workaround",
                             observation="Partner HF radios could not load the crypto fill.",
                             friction="Different fill devices.", workaround="Swap radios.",
                             limits="Only for one week.", permanence="interim",
                             tags=["radios", "crypto"], domains=["materiel"],
                             functions=["command_control"], nations=["AUS", "GBR"],
                             unit="3 Commando Brigade", source_event="Exercise TALISMAN SABRE 2023",
                             observed_on=date(2023, 7, 20)),
        "fuel": make_lesson_("gb.author", "validated", analyst="gb.an", releasable_to=["FVEY"],
                            title="Refuelling convoys waited at the border",
                            observation="The refuelling point had no partner liaison officer "
                                        "for the US convoys.",
                            tags=["logistics"], domains=["organization"],
                            functions=["sustainment"], nations=["USA", "GBR"],
                            unit="101 Logistic Brigade", source_event="Exercise DYNAMIC FRONT",
                            observed_on=date(2021, 3, 2)),
        "defence": make_lesson_("gb.author", "validated", analyst="gb.an", releasable_to=["FVEY"],
                               title="Air defence centre manoeuvre plan was not shared",
                               observation="The organisation of the defence programme hid it.",
                               tags=["air-defence"], domains=["doctrine"],
                               functions=["protection"], nations=["GBR"],
                               observed_on=date(2024, 11, 5)),
        "medevac": make_lesson_("gb.author", "validated", analyst="gb.an", releasable_to=["FVEY"],
                               title="Casualty evacuation by partner helicopters",
                               observation="CASEVAC requests went to the wrong net.",
                               tags=["medical"], domains=["training"], functions=["sustainment"],
                               nations=["AUS"], observed_on=date(2022, 5, 1)),
        "hidden": make_lesson_("gb.author", "validated", analyst="gb.an", releasable_to=[],
                              title="Quartermaster zebrafinch ledger for British eyes",
                              observation="The zebrafinch ledger radios were British only.",
                              tags=["secret-tag"], domains=["facilities"],
                              functions=["intelligence"], nations=["NZL"],
                              observed_on=date(2019, 1, 1)),
    }
    return {name: lesson.public_id for name, lesson in made.items()}


def found(client, query: str, **params) -> set[str]:
    response = client.get("/search", query_string={"q": query, "per_page": 50, **params})
    assert response.status_code == 200
    return set(hits(response.text))


QUERY_CASES = [
    ("tag:radios", {"radio"}),
    ("kind:workaround", {"radio"}),
    ("status:validated", {"radio", "fuel", "defence", "medevac"}),
    ("domain:organization", {"fuel"}),
    ("function:sustainment", {"fuel", "medevac"}),
    ("nation:aus", {"radio", "medevac"}),
    ("nation:USA AND function:sustainment", {"fuel"}),
    ("originator:GBR tag:logistics", {"fuel"}),
    ("unit:commando", {"radio"}),
    ('source_event:"talisman sabre"', {"radio"}),
    ("event:dynamic", {"fuel"}),
    ("year:2022", {"medevac"}),
    ("date:2023", {"radio"}),
    ("date:[2021-01-01 to 2022-12-31]", {"fuel", "medevac"}),
    ("date:>2024", {"defence"}),
    ("radio*", {"radio"}),
    ("refuel*", {"fuel"}),
    ("title:convoys", {"fuel"}),
    ("crypto OR convoys", {"radio", "fuel"}),
    ("partner NOT helicopters", {"radio", "fuel"}),
    ('"crypto fill"', {"radio"}),
    ('"fill crypto"', set()),
    ("(crypto OR casualty) AND partner", {"radio", "medevac"}),
    ("US", {"fuel"}),
    ("US AND partner", {"fuel"}),
    ("+US partner", {"fuel"}),  # a required word, then ranked words
    ("partner -helicopters", {"radio", "fuel"}),
    ("US partner", {"radio", "fuel", "medevac"}),  # plain words: any of them, ranked
]


def test_query_language(corpus, login_as):
    client = login_as("au.user")
    wrong = {query: sorted(name for name, public_id in corpus.items()
                           if public_id in found(client, query))
             for query, expected in QUERY_CASES
             if found(client, query) != {corpus[name] for name in expected}}
    assert not wrong


def test_field_names_outside_the_language_are_plain_words(corpus, login_as):
    # releasable_to / author_id are index fields for the policy, not for users.
    client = login_as("au.user")
    assert found(client, "releasable_to:gbr") == set()
    assert found(client, "author_id:1") == set()


def test_an_unreadable_query_falls_back_to_its_words_with_a_notice(corpus, login_as):
    response = login_as("au.user").get("/search?q=date:[garbage to crypto")
    assert response.status_code == 200
    assert "could not be read as written" in response.text
    assert corpus["radio"] in hits(response.text)


@pytest.mark.parametrize("query", ["defense maneuver center", "defence manoeuvre centre",
                                   "organization program", "organisation programme"])
def test_british_and_american_spellings_find_each_other(corpus, login_as, query):
    assert found(login_as("au.user"), query) == {corpus["defence"]}


def test_highlights_mark_the_other_spelling(corpus, login_as):
    html = login_as("au.user").get("/search?q=defense").text
    assert re.search(r"<mark[^>]*>defence</mark>", html)


def test_glossary_expands_both_ways(app, corpus):
    glossary = Glossary([["LNO", "LO", "liaison officer"],
                         ["MEDEVAC", "CASEVAC", "aeromedical evacuation"]])
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "au.user"))

        def ids(text: str) -> set[str]:
            page = search.search_lessons(user, text, per_page=50, glossary=glossary)
            return {hit.lesson.public_id for hit in page.hits}

        assert ids("LNO") == {corpus["fuel"]}
        assert ids('"liaison officer"') == {corpus["fuel"]}
        assert ids("liaison officer") == {corpus["fuel"]}
        assert ids("MEDEVAC") == {corpus["medevac"]}
        assert ids("CASEVAC") == {corpus["medevac"]}
        assert ids("LNO border") == {corpus["fuel"]}
        assert ids("NOT LNO") == {corpus[n] for n in ("radio", "defence", "medevac")}
        # Without the glossary the acronym finds nothing: the expansion did the work.
        page = search.search_lessons(user, "LNO", glossary=Glossary([]))
        assert page.total == 0


FACET_SOURCES = {
    "kind": lambda lesson: [lesson.kind],
    "status": lambda lesson: [lesson.status],
    "domain": lambda lesson: list(lesson.domains),
    "function": lambda lesson: list(lesson.functions),
    "nation": lambda lesson: [n.lower() for n in lesson.nations],
    "originator": lambda lesson: [lesson.originator_nation.lower()],
    "tag": lambda lesson: list(lesson.tags),
    "year": lambda lesson: [str(lesson_date(lesson).year)],
}


def test_the_admins_glossary_applies_to_the_next_search_without_a_reindex(corpus, app,
                                                                        login_as):
    from lessons.services import glossary as service

    client = login_as("au.user")
    assert found(client, "helo") == set()
    with app.app_context():
        admin = service_admin()
        service.create_group(admin, ["helo", "helicopters"])
    assert found(client, "helo") == {corpus["medevac"]}


def service_admin() -> User:
    from lessons.services.users import create_user

    return create_user("glossary.admin", nation="GBR", roles=("admin",), password="demo",
                       weak_password_ok=True)


def test_facet_counts_equal_a_database_count_for_every_demo_user(app, demo):
    with app.app_context():
        users = list(db.session.scalars(select(User)))
        assert len(users) >= 5
        for user in users:
            visible = list(db.session.scalars(
                select(Lesson).where(policy.visible_lessons(user))))
            page = search.search_lessons(user, "*", per_page=10)
            assert page.total == len(visible), user.username
            facets = {f.name: {v.value: v.count for v in f.values} for f in page.facets}
            for name, values_of in FACET_SOURCES.items():
                expected = Counter(v for lesson in visible for v in values_of(lesson))
                if name == "tag":  # the top 20 are shown
                    shown = facets[name]
                    assert len(shown) == min(20, len(expected))
                    assert all(expected[v] == n for v, n in shown.items()), user.username
                    assert min(shown.values(), default=0) >= max(
                        (n for v, n in expected.items() if v not in shown), default=0)
                else:
                    assert facets[name] == dict(expected), (user.username, name)


def test_facet_counts_follow_the_words_and_the_filters(app, demo):
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "gb.planner"))
        words = search.search_lessons(user, "network", per_page=50)
        assert words.total > 2
        kinds = {v.value: v.count for f in words.facets if f.name == "kind" for v in f.values}
        assert sum(kinds.values()) == words.total
        kind, count = next(iter(kinds.items()))
        narrowed = search.search_lessons(user, "network", per_page=50, filters={"kind": [kind]})
        assert narrowed.total == count
        assert {h.lesson.kind for h in narrowed.hits} == {kind}
        # A one-value facet keeps its other choices visible (they widen, not narrow).
        kinds_after = {v.value for f in narrowed.facets if f.name == "kind" for v in f.values}
        assert kinds_after == set(kinds)


def test_facet_links_narrow_and_chips_remove(corpus, login_as):
    client = login_as("au.user")
    html = client.get("/search?q=partner").text
    assert total(html) == 3
    link = re.search(r'href="(/search\?[^"]*function=sustainment[^"]*)"', html).group(1)
    narrowed = client.get(link.replace("&amp;", "&")).text
    assert set(hits(narrowed)) == {corpus["fuel"], corpus["medevac"]}
    assert "Remove filter Function: Sustainment" in narrowed
    chip = re.search(r'<a class="chip" href="([^"]+)"', narrowed).group(1)
    assert total(client.get(chip.replace("&amp;", "&")).text) == 3
    # The URL keeps the state: filters survive paging and a new sort.
    both = client.get("/search?q=partner&function=sustainment&nation=aus").text
    assert set(hits(both)) == {corpus["medevac"]}


def test_unknown_or_oversized_filters_are_ignored_not_errors(corpus, login_as):
    client = login_as("au.user")
    response = client.get("/search", query_string={"q": "partner", "colour": "red",
                                                   "tag": "x" * 500, "per_page": 7,
                                                   "sort": "sideways", "page": "abc"})
    assert response.status_code == 200
    assert total(response.text) == 3


def test_sort_newest_and_page_sizes(app, people, make_lesson, login_as):
    for year in range(2001, 2026):
        make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["FVEY"],
                    title=f"Bridging lesson {year}", observed_on=date(year, 1, 1))
    client = login_as("au.user")
    newest = client.get("/search?q=bridging&sort=newest&per_page=10").text
    assert len(hits(newest)) == 10 and total(newest) == 25
    assert re.findall(r"Bridging lesson (\d{4})", newest)[:3] == ["2025", "2024", "2023"]
    page3 = client.get("/search?q=bridging&sort=newest&per_page=10&page=3").text
    assert re.findall(r"Bridging lesson (\d{4})", page3) == [str(y) for y in range(2005, 2000, -1)]
    assert len(hits(client.get("/search?q=bridging&per_page=20").text)) == 20
    assert len(hits(client.get("/search?q=bridging&per_page=50").text)) == 25
    assert len(hits(client.get("/search?q=bridging&per_page=1000").text)) == 20  # default


def test_did_you_mean_offers_a_correction_that_finds_lessons(corpus, login_as):
    html = login_as("au.user").get("/search?q=refueling+AND+convys").text
    assert total(html) == 0
    suggestion = re.search(r'data-testid="suggestion">Did you mean\s*<a href="[^"]+">([^<]+)<',
                           html)
    assert suggestion and suggestion.group(1) == "refueling AND convoys"
    # Ranked words find the lesson by its one known word; the correction is offered as
    # it finds lessons holding every word.
    html = login_as("au.user").get("/search?q=refueling+convys").text
    assert total(html) == 1
    suggestion = re.search(r'data-testid="suggestion">Did you mean\s*<a href="[^"]+">([^<]+)<',
                           html)
    assert suggestion and suggestion.group(1) == "refueling convoys"


def test_did_you_mean_is_not_offered_when_nothing_better_exists(corpus, login_as):
    html = login_as("au.user").get("/search?q=qqqqqq").text
    assert 'data-testid="suggestion"' not in html


def test_nothing_hidden_leaks_through_counts_facets_or_suggestions(corpus, login_as):
    client = login_as("au.user")
    # The word exists only in a lesson released to GBR alone.
    html = client.get("/search?q=zebrafinch").text
    assert total(html) == 0 and not hits(html)
    html = client.get("/search?q=zebrafinsh").text
    assert 'data-testid="suggestion"' not in html and "zebrafinch" not in html
    # Facets over everything the AUS user may see carry none of its values.
    html = client.get("/search?q=*").text
    assert total(html) == 4
    facets = re.search(r'<aside class="facets".*?</aside>', html, re.S).group(0)
    assert "Sustainment" in facets and "2023" in facets
    for value in ("secret-tag", "facilities", "Intelligence", "nzl", "NZL", "2019"):
        assert value not in facets, value
    assert "zebrafinch" not in html and "secret-tag" not in html
    # Filtering on a hidden lesson's values finds nothing and counts nothing.
    assert found(client, "*", tag="secret-tag") == set()
    assert found(client, "tag:secret-tag OR nation:nzl") == set()
    # The British analyst sees it, and is offered the correction.
    gb = login_as("gb.an")
    assert found(gb, "zebrafinch") == {corpus["hidden"]}
    assert ">zebrafinch<" in gb.get("/search?q=zebrafinsh").text
