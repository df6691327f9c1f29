"""Search in the staff's own words: plain words are ranked, not all required; operators
keep their strict meaning; the page and the API say what was searched, when no lesson
holds every word, and what is wrong with a query. A word only in a lesson the user may
not see changes nothing that user can observe of these new paths."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from lessons.extensions import db
from tests.browser import saved_on_failure
from tests.test_search import hits, total


@pytest.fixture
def people(make_user):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("au.user", "AUS", ("contributor",))


def lesson(make_lesson, title: str, observation: str, **fields):
    """A validated lesson released to FVEY holding only the words given."""
    fields = {"discussion": "", "conclusion": "", "recommendation": "Fix it.",
              "releasable_to": ["FVEY"], "tags": ["crane"], **fields}
    return make_lesson("gb.author", "validated", analyst="gb.an", title=title,
                       observation=observation, **fields).public_id


@pytest.fixture
def api_token(app, people):
    from sqlalchemy import select

    from lessons.models import User
    from lessons.services import tokens

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "au.user"))
        return tokens.create_token(user, "natural language")[1]


@pytest.fixture
def glossary(app, make_user):
    from sqlalchemy import select

    from lessons.models import User
    from lessons.services import glossary as service

    make_user("glossary.admin", "GBR", ("admin",))
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.username == "glossary.admin"))
        service.create_group(admin, ["LNO", "LO", "liaison officer"])


@pytest.fixture
def corpus(people, make_lesson, glossary):
    return {
        "network": lesson(make_lesson, "Partner battalion denied mission network access",
                          "The partner battalion had no accounts on the coalition network "
                          "until the exercise had started.", tags=["mission-network"]),
        "crane": lesson(make_lesson, "Crane brakes slipped in freezing weather",
                        "The crane's brakes slipped when the temperature fell below zero.",
                        tags=["materiel"]),
        "radio": lesson(make_lesson, "HF radio fills late",
                        "Radio crypto fills arrived late for the partner battalion.",
                        tags=["radios"]),
        "fuel": lesson(make_lesson, "Refuelling convoys waited at the border",
                       "The refuelling point had no liaison officer for the convoys.",
                       tags=["logistics"]),
    }


def page(client, q: str, **params) -> str:
    response = client.get("/search", query_string={"q": q, "per_page": 50, **params})
    assert response.status_code == 200
    return response.text


@pytest.fixture
def login_as(login_as, api_token):
    """The test client logged in, carrying the user's API token for ``api``."""
    def _login(username: str):
        client = login_as(username)
        client.api_token = api_token if username == "au.user" else None
        return client
    return _login


def api(client, q: str, status: int = 200, **params) -> dict:
    response = client.get("/api/v1/lessons", query_string={"q": q, **params},
                          headers={"Authorization": f"Bearer {client.api_token}"})
    assert response.status_code == status, response.text
    return response.get_json()


def partial(html: str) -> str:
    found = re.search(r'data-testid="partial-match">([^<]*)<', html)
    return found.group(1) if found else ""


def test_a_description_in_other_words_finds_the_lesson_first(corpus, login_as):
    client = login_as("au.user")
    html = page(client, "partner battalion couldn't get on our network before the exercise")
    assert hits(html)[0] == corpus["network"]
    # Lessons holding only some of the words are found too, after it.
    assert corpus["radio"] in hits(html)
    html = page(client, "crane brakes slipped in the cold")
    assert hits(html)[0] == corpus["crane"]


def test_lessons_holding_more_of_the_words_rank_higher(corpus, login_as):
    order = hits(page(login_as("au.user"), "partner battalion radio fills"))
    assert order[:2] == [corpus["radio"], corpus["network"]]


def test_strict_queries_still_require_every_word(corpus, login_as):
    client = login_as("au.user")
    assert hits(page(client, "partner AND battalion AND radio")) == [corpus["radio"]]
    assert set(hits(page(client, "(partner OR crane) AND battalion"))) == {
        corpus["network"], corpus["radio"]}
    assert hits(page(client, '"crypto fills" battalion')) == [corpus["radio"]]
    assert hits(page(client, "tag:radios battalion network")) == [corpus["radio"]]
    # +word is required, -word excluded; the other words are ranked among the rest.
    assert set(hits(page(client, "+battalion network"))) == {corpus["network"],
                                                             corpus["radio"]}
    assert hits(page(client, "+battalion network"))[0] == corpus["network"]
    assert hits(page(client, "battalion -radio")) == [corpus["network"]]
    assert hits(page(client, "+crane brakes cold")) == [corpus["crane"]]


def test_a_sentences_question_mark_colon_and_parentheses_are_punctuation(corpus, login_as):
    client = login_as("au.user")
    # "usable?" is no wildcard, "(mobile)" no group: the words are ranked as any others.
    assert hits(page(client, "are crane brakes still usable in the cold?"))[0] == corpus["crane"]
    assert hits(page(client, "crane (mobile) brakes slipped"))[0] == corpus["crane"]
    # Nor is a colon after a word that names no field.
    html = page(client, "Problem: our battalion radio fills")
    assert hits(html)[0] == corpus["radio"] and "could not be read" not in html
    # Operators make the parentheses a group again, every word required.
    assert hits(page(client, "(crane OR radio) AND brakes")) == [corpus["crane"]]


def test_the_page_and_the_api_say_when_no_lesson_holds_every_word(corpus, login_as):
    client = login_as("au.user")
    html = page(client, "partner battalion crane brakes")
    assert partial(html) == ("No lesson holds all 4 words; showing lessons that hold "
                             "most of them.")
    assert total(html) == 3
    answer = api(client, "partner battalion crane brakes")
    assert answer["partial_match"] is True and answer["total"] == 3
    assert answer["message"] == partial(html)
    # A lesson holding every word: no notice.
    assert partial(page(client, "crane brakes")) == ""
    assert api(client, "crane brakes")["partial_match"] is False
    # A filter that leaves no lesson holding every word brings it back.
    assert partial(page(client, "partner battalion", tag="mission-network")) == ""
    assert partial(page(client, "radio battalion", tag="mission-network")) != ""


def test_glossary_and_spelling_expansions_are_shown(corpus, login_as):
    client = login_as("au.user")
    html = page(client, "LNO refuelling defence")
    shown = re.search(r'data-testid="expansions".*?</ul>', html, re.S).group(0)
    assert "<strong>LNO</strong> also searched as:" in shown and "liaison officer" in shown
    assert "<strong>defence</strong> also searched as: defense" in shown
    assert hits(html)[0] == corpus["fuel"]
    answer = api(client, "LNO refuelling defence")
    terms = {item["term"]: item["also_searched_as"] for item in answer["expansions"]}
    assert "liaison officer" in terms["LNO"] and terms["defence"] == ["defense"]


def test_an_expanded_phrase_is_highlighted_whole(people, glossary, make_lesson, login_as):
    lesson(make_lesson, "Officer rotas", "Each officer wrote the rota by hand.")
    lesson(make_lesson, "Convoy contacts", "The liaison officer met the convoy.")
    html = re.sub(r'<mark[^>]*>', "<mark>", page(login_as("au.user"), "LNO"))
    assert "<mark>liaison</mark> <mark>officer</mark>" in html
    # The lesson holding "officer" alone is not found, and nothing marks a lone word.
    assert "Each <mark>officer</mark>" not in html and "Each officer" not in html


@pytest.mark.parametrize(("q", "expected"), [
    ("status:foo", "status: foo is not a status"),
    ("nation:XYZ radio", "nation: XYZ is not a nation code"),
    ("kind:bogus", "kind: bogus is not a kind"),
    ("tag:", "tag: needs a value right after the colon"),
    ("(radio OR crane", "A parenthesis or a quotation mark is not closed."),
])
def test_help_for_unknown_field_values_and_bad_syntax(corpus, login_as, q, expected):
    client = login_as("au.user")
    html = page(client, q)
    helped = re.search(r'data-testid="query-help">(.*?)</ul>', html, re.S)
    assert helped and expected in helped.group(1).replace("&#39;", "'"), html
    answer = api(client, q)
    assert any(expected in problem for problem in answer["problems"])


def test_help_offers_the_valid_values_and_the_corrected_query(corpus, login_as):
    client = login_as("au.user")
    answer = api(client, "status:foo")
    assert answer["total"] == 0
    assert any("validated" in problem and "draft" in problem for problem in answer["problems"])
    answer = api(client, "(radio OR crane")
    assert answer["suggestion"] == "(radio OR crane)"
    html = page(client, "(radio OR crane")
    assert 'data-testid="suggestion"' in html and "(radio OR crane)</a>" in html
    # A tag no visible lesson holds: the tags the user may see are offered.
    answer = api(client, "tag:nosuchtag")
    assert any("radios" in problem for problem in answer["problems"])


def test_a_strict_query_that_finds_nothing_offers_its_words_ranked(corpus, login_as):
    client = login_as("au.user")
    html = page(client, "crane AND brakes AND battalion")
    assert total(html) == 0
    assert "crane brakes battalion</a>" in html and "its words alone, ranked" in html
    answer = api(client, "crane AND brakes AND battalion")
    assert answer["suggestion"] == "crane brakes battalion"
    # So is a phrase no lesson holds, among ranked words.
    assert api(client, '"brakes crane" slipped cold')["suggestion"] == "brakes crane slipped cold"
    # Words no lesson the user may see holds: nothing to offer.
    assert api(client, "zebrafinch AND quokka")["suggestion"] == ""


def test_a_query_too_long_is_refused_by_the_api_with_the_rule(corpus, login_as):
    answer = api(login_as("au.user"), "radio " * 100, status=422)
    assert "500" in str(answer)


# --- leak tests: a word only in a hidden lesson ----------------------------------------------

LEAK_QUERIES = ("partner battalion zebrafinch network", "crane brakes zebrafinch",
                "zebrafinch", "zebrafinsh crane", "partner battalion", "+crane zebrafinch",
                "tag:zebra-tag crane", "zebrafinch AND crane")


def _observed(client) -> list:
    """Everything the AUS user sees of the queries: pages (minus per-request tokens)
    and API answers."""
    seen = []
    for q in LEAK_QUERIES:
        html = page(client, q)
        html = re.sub(r'name="csrf_token" value="[^"]*"', "", html)
        html = re.sub(r'<meta name="csrf-token" content="[^"]*"', "", html)
        seen.append(html)
        seen.append(api(client, q))
    return seen


def test_a_word_only_in_a_hidden_lesson_changes_nothing_the_user_sees(corpus, make_lesson,
                                                                      login_as):
    client = login_as("au.user")
    before = _observed(client)
    # Released to GBR only: the AUS user may not see it. It holds every query word (so
    # it would end the "not every word" notice) and a word no visible lesson holds.
    hidden = make_lesson(
        "gb.author", "validated", analyst="gb.an", releasable_to=["GBR"],
        title="Zebrafinch crane brakes partner battalion network",
        observation="Zebrafinch zebrafinch partner battalion network crane brakes.",
        discussion="", conclusion="", recommendation="Fix it.", tags=["zebra-tag"])
    after = _observed(client)
    for q, (old, new) in zip([q for q in LEAK_QUERIES for _ in (0, 1)],
                             zip(before, after, strict=True), strict=True):
        assert old == new, q
    # The British analyst sees it, first, without the notice.
    gb = login_as("gb.an")
    html = page(gb, "crane brakes zebrafinch")
    assert hits(html)[0] == hidden.public_id and partial(html) == ""


def test_ranking_scores_ignore_a_hidden_lessons_words(corpus, make_lesson, app):
    """The scores themselves, not just the order, are the visible collection's."""
    from sqlalchemy import select

    from lessons import search
    from lessons.models import User

    def scores() -> list[tuple[int, float]]:
        with app.test_request_context():
            user = db.session.scalar(select(User).where(User.username == "au.user"))
            return search.explain_scores(user, "partner battalion zebrafinch brakes",
                                         glossary=None)

    before = scores()
    make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["GBR"],
                title="Partner battalion brakes", observation="Zebrafinch battalion.",
                discussion="", conclusion="", recommendation="Fix it.")
    assert scores() == before and before


@pytest.mark.browser
def test_a_natural_language_search_in_the_browser_shows_the_notice(
        corpus, open_as, open_pages, tmp_path):
    reader = open_as("au.user")
    with saved_on_failure(open_pages, tmp_path):
        reader.get_by_role("navigation", name="Main").get_by_role("link", name="Search").click()
        reader.get_by_label(re.compile("^Words")).fill(
            "partner battalion couldn't get on our network before the exercise")
        reader.get_by_role("search").get_by_role("button", name="Search").click()
        expect(reader.get_by_test_id("partial-match")).to_have_text(re.compile(
            r"^No lesson holds all \d+ words; showing lessons that hold most of them\.$"))
        first = reader.locator("ol.results li.result h2 a").first
        expect(first).to_have_text("Partner battalion denied mission network access")
        expect(reader.locator("ol.results mark").first).to_be_visible()
        # Every word held by one lesson: no notice.
        reader.get_by_label(re.compile("^Words")).fill("crane brakes")
        reader.get_by_role("search").get_by_role("button", name="Search").click()
        expect(reader.get_by_test_id("total")).to_contain_text("1 lesson found")
        expect(reader.get_by_test_id("partial-match")).to_have_count(0)


@pytest.mark.parametrize("q", [
    "~radio date:- ", "crane date:+<", "status:^ to {^f-.LNO NOT <defence -date:+",
    "+ - ( ) \" : ?", "year:abc crane", "tag:\"two words\" brakes", "nation:", "-\"",
    "Problem: (crane) brakes?", "crane~ slipped^2 brakes!!!", "title: crane",
])
def test_odd_queries_are_answered_never_a_server_error(corpus, login_as, q):
    client = login_as("au.user")
    assert client.get("/search", query_string={"q": q}).status_code in (200, 422)
    response = client.get("/api/v1/lessons", query_string={"q": q},
                          headers={"Authorization": f"Bearer {client.api_token}"})
    assert response.status_code in (200, 422), response.text
