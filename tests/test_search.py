"""The search page: ranking, counts, pages and snippets, only over what the user may see."""

from __future__ import annotations

import json
import re

import pytest

HIT = re.compile(r'<h2><a href="/lessons/([a-z0-9]{10})">')


def hits(html: str) -> list[str]:
    return HIT.findall(html)


def total(html: str) -> int:
    return int(re.search(r'data-testid="total">(\d+) lesson', html).group(1))


@pytest.fixture
def people(make_user):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("us.an", "USA", ("contributor", "analyst"))
    make_user("au.user", "AUS", ("contributor",))


# (status, REL TO) of six lessons all containing the word "interoperability".
MATRIX = [("validated", ["FVEY"]), ("validated", ["USA"]), ("submitted", []),
          ("draft", ["FVEY"]), ("rejected", ["FVEY"]), ("archived", ["AUS"])]
EXPECTED = {  # viewer -> indexes into MATRIX it may find
    "gb.author": {0, 1, 2, 3, 4, 5},
    "gb.an": {0, 1, 2, 4, 5},
    "us.an": {0, 1},
    "au.user": {0, 5},
}


@pytest.mark.parametrize("viewer", sorted(EXPECTED))
def test_results_and_counts_hold_only_what_the_user_may_see(people, make_lesson, login_as,
                                                           viewer):
    ids = [make_lesson("gb.author", status, analyst="gb.an", releasable_to=rel,
                       title=f"Interoperability gap {n}").public_id
           for n, (status, rel) in enumerate(MATRIX)]
    html = login_as(viewer).get("/search?q=interoperability").text
    expected = {ids[n] for n in EXPECTED[viewer]}
    assert set(hits(html)) == expected
    assert total(html) == len(expected)


def test_download_holds_exactly_the_visible_results(people, make_lesson, login_as):
    seen = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["AUS"],
                       title="Ammunition charge tables differ")
    make_lesson("gb.author", "validated", analyst="gb.an", title="Ammunition lot hidden")
    make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["AUS"],
                title="Unrelated radio lesson", observation="Radios.", discussion="",
                conclusion="", recommendation="Fix radios.")
    response = login_as("au.user").get("/search/export?q=ammunition")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    records = [json.loads(line) for line in response.text.splitlines()]
    assert [r["external_id"] for r in records] == [f"MUS-{seen.public_id}"]


def test_title_matches_rank_above_body_matches(people, make_lesson, login_as):
    body = make_lesson("gb.author", "draft", title="Fuel handling at the FARP",
                       observation="The bowser was late.")
    title = make_lesson("gb.author", "draft", title="Bowser couplings did not fit",
                        observation="Couplings differed between nations.")
    assert hits(login_as("gb.author").get("/search?q=bowser").text) == [
        title.public_id, body.public_id]


def test_words_are_stemmed(people, make_lesson, login_as):
    lesson = make_lesson("gb.author", "draft", title="Helicopters could not refuel",
                         observation="Nozzles differed.")
    client = login_as("gb.author")
    assert hits(client.get("/search?q=refuelling").text) == [lesson.public_id]
    assert hits(client.get("/search?q=nozzle").text) == [lesson.public_id]


def test_and_or_not_and_phrases(people, make_lesson, login_as):
    radio = make_lesson("gb.author", "draft", title="Radio crypto keys late",
                        observation="Keys arrived late.")
    fuel = make_lesson("gb.author", "draft", title="Fuel keys late",
                       observation="Fuel arrived late.")
    client = login_as("gb.author")
    assert set(hits(client.get("/search?q=radio OR fuel").text)) == {
        radio.public_id, fuel.public_id}
    assert hits(client.get("/search?q=keys NOT radio").text) == [fuel.public_id]
    assert hits(client.get("/search?q=keys AND radio").text) == [radio.public_id]
    # Plain words are ranked, not all required: the lesson holding both comes first.
    assert hits(client.get("/search?q=keys radio").text) == [radio.public_id, fuel.public_id]
    assert hits(client.get('/search?q="crypto keys"').text) == [radio.public_id]
    assert hits(client.get('/search?q="keys crypto"').text) == []


def test_an_unreadable_query_falls_back_to_words_with_a_notice(people, make_lesson,
                                                             login_as):
    lesson = make_lesson("gb.author", "draft", title="Radio crypto keys late")
    response = login_as("gb.author").get('/search?q=radio AND (crypto OR "')
    assert response.status_code == 200
    assert lesson.public_id in hits(response.text)


def test_snippets_highlight_the_words_from_the_current_text_escaped(app, people,
                                                                    make_lesson, login_as):
    lesson = make_lesson("gb.author", "draft", title="Tactical chat",
                         observation="The <script>alert(1)</script> chat server refused "
                                     "partner accounts for two weeks.")
    html = login_as("gb.author").get("/search?q=partner").text
    assert re.search(r"<mark[^>]*>partner</mark>", html)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert lesson.public_id in hits(html)


def test_pagination(app, people, make_lesson, login_as):
    for n in range(23):
        make_lesson("gb.author", "draft", title=f"Liaison gap number {n}")
    client = login_as("gb.author")
    first, second = client.get("/search?q=liaison").text, client.get(
        "/search?q=liaison&page=2").text
    assert total(first) == total(second) == 23
    assert len(hits(first)) == 20 and len(hits(second)) == 3
    assert not set(hits(first)) & set(hits(second))
    assert "Page 1 of 2" in first and 'rel="next"' in first
    assert hits(client.get("/search?q=liaison&page=99").text) == []


def test_empty_query_shows_the_form_only(people, login_as):
    response = login_as("gb.author").get("/search?q=")
    assert response.status_code == 200
    assert 'data-testid="total"' not in response.text


def test_an_overlong_query_is_cut_not_an_error(people, login_as):
    assert login_as("gb.author").get("/search?q=" + "radio " * 500).status_code == 200


def test_search_needs_login(client):
    assert client.get("/search?q=x").status_code == 302
    assert client.get("/search/export?q=x").status_code == 302
