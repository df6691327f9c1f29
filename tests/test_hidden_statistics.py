"""A lesson hidden from a user changes nothing that user can observe.

Scores, ranks, related lessons, recommendations, suggestions, facet counts, totals and
snippets are all computed over the lessons the user may see, so adding, changing or
removing a lesson the user may not see (a draft of someone else, a lesson not released
to their nation) leaves every answer the user gets byte for byte the same. Before, the
ranking statistics (document frequencies, average lengths, document counts) came from
the whole index: a planner could tell from a recommendation's score whether some hidden
lesson held a word, and a contributor from the order of two of their own drafts.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from lessons import search
from lessons.extensions import db
from lessons.models import Exercise, Lesson, User
from lessons.services import lessons as lesson_service
from lessons.services import tokens
from tests.test_capture import form_data

# The observers: a contributor with drafts of their own, a planner, and an analyst of a
# nation the hidden lessons are not released to.
OBSERVERS = ("au.contributor", "gb.planner", "ca.analyst")

# Own drafts whose order for "bowser nozzle" turns on the two words' document
# frequencies alone: the same length, one word three times and the other once, and a
# third draft holding "nozzle" so that the visible frequencies differ.
OWN_DRAFTS = (
    {"title": "Fuel point drill one",
     "observation": "The bowser nozzle nozzle nozzle jammed at the fuel point.",
     "discussion": "Crews lacked the drill.", "conclusion": "Drill the crews.",
     "recommendation": "Rehearse the drill."},
    {"title": "Fuel point drill two",
     "observation": "The bowser bowser bowser nozzle jammed at the fuel point.",
     "discussion": "Crews lacked the drill.", "conclusion": "Drill the crews.",
     "recommendation": "Rehearse the drill."},
    {"title": "Fuel point drill three",
     "observation": "A nozzle cracked during the cold start of the pump.",
     "discussion": "Spares ran short.", "conclusion": "Stock spares.",
     "recommendation": "Order spares early."},
)

# Hidden lessons in the words the demo lessons, the exercises and the queries use.
HIDDEN_TEXT = {
    "title": "Coalition mission network joining and liaison officers for cross-refuelling",
    "observation": "Partner headquarters could not join the coalition mission network "
                   "before STARTEX; liaison officers carried laptops. Bowser bowser "
                   "bowser couplings did not fit partner vehicles and aircraft at the "
                   "fuel point, so cross-refuelling stopped.",
    "discussion": "Combined fires could not be cleared across national digital fires "
                  "systems. The mission network, the liaison officers and the fuel "
                  "point were each planned late. Accreditation of the gateway lagged.",
    "conclusion": "Join the mission network early and exchange liaison officers.",
    "recommendation": "Plan network joining, liaison and refuelling at the initial "
                      "planning conference.",
    "tags": ["mission-network", "liaison", "fuel", "targeting"],
    "nations": ["AUS", "GBR", "USA", "CAN"],
}
CHANGED_TEXT = {
    "title": "Fires clearance and fuel couplings across the coalition",
    "observation": "Nozzle nozzle couplings and refuelling adaptors differed; the "
                   "coalition mission network dropped the liaison chat every night.",
    "discussion": "Digital fires systems would not exchange targets between nations.",
    "conclusion": "Rehearse combined fires and cross-refuelling together.",
    "recommendation": "Bring spare adaptors, liaison officers and a network engineer.",
    "tags": ["targeting", "fuel", "interoperability"],
}

QUERIES = ("mission network", "liaison officers", "bowser nozzle", "refuelling fuel point",
           '"mission network"', "refuel*", "liasion", "bowsr", "fires -network", "*")
PAGE_QUERIES = ("mission network", "refuel*", "liasion", "bowsr")
CSRF = re.compile(r'<input[^>]*name="csrf_token"[^>]*>|<meta[^>]*csrf[^>]*>')
RELATED = re.compile(r'<section id="related">.*?</section>', re.S)
SIMILAR = re.compile(r'<fieldset class="similar[^"]*" id="similar">.*?</fieldset>', re.S)
LESSON_LINK = re.compile(r'href="/lessons/([a-z0-9]{10})"')


def _user(username: str) -> User:
    return db.session.scalar(select(User).where(User.username == username))


def _html(response) -> str:
    assert response.status_code == 200, response.status_code
    return CSRF.sub("", response.get_data(as_text=True))


def observe(app, client, token: str) -> dict[str, Any]:
    """Every answer behind which ranking statistics could show, as this user gets it."""
    api = {"Authorization": f"Bearer {token}"}
    seen: dict[str, Any] = {}
    for text in QUERIES:
        args = {"q": text, "per_page": 50}
        seen[f"api {text}"] = client.get("/api/v1/lessons", query_string=args,
                                         headers=api).get_data()
        if text in PAGE_QUERIES:  # snippets, suggestions
            seen[f"page {text}"] = _html(client.get("/search", query_string=args))
    seen["filtered"] = client.get("/api/v1/lessons", headers=api, query_string={
        "q": "fuel", "tag": "fuel", "per_page": 50}).get_data()
    seen["newest"] = client.get("/api/v1/lessons", headers=api, query_string={
        "q": "mission network", "sort": "newest", "per_page": 50}).get_data()
    every = client.get("/api/v1/lessons", query_string={"q": "network", "per_page": 8},
                       headers=api).get_json()["items"]
    for item in every:  # a lesson's page: its related lessons
        page = _html(client.get(f"/lessons/{item['id']}"))
        seen[f"related {item['id']}"] = RELATED.findall(page)
    with app.app_context():
        exercises = list(db.session.scalars(select(Exercise.public_id).order_by(Exercise.id)))
    for public_id in exercises:
        seen[f"recommend api {public_id}"] = client.get(
            f"/api/v1/exercises/{public_id}/recommendations", headers=api).get_data()
        response = client.get(f"/exercises/{public_id}/recommendations")
        seen[f"recommend page {public_id}"] = (
            response.status_code, _html(response) if response.status_code == 200 else "")
    for name, fields in (("hidden", HIDDEN_TEXT), ("changed", CHANGED_TEXT)):
        typed = {key: value for key, value in fields.items() if key not in ("tags", "nations")}
        response = client.post("/lessons/new", data=form_data(action="preview", **typed))
        seen[f"similar {name}"] = SIMILAR.findall(_html(response))
    return seen


@pytest.fixture
def world(app, demo, make_lesson, login_as):
    """The demo, the contributor's own drafts, and each observer's client and token."""
    for fields in OWN_DRAFTS:
        make_lesson("au.contributor", "draft", tags=["fuel"], **fields)
    with app.app_context():
        found = {name: tokens.create_token(_user(name), "observer")[1] for name in OBSERVERS}
    return {name: (login_as(name), found[name]) for name in OBSERVERS}


def _observe_all(app, world) -> dict[str, dict[str, Any]]:
    return {name: observe(app, client, token) for name, (client, token) in world.items()}


def _hidden_lessons(app) -> list[str]:
    """A draft of a US analyst (hidden by status) and a validated lesson released to the
    USA only (hidden by release): neither visible to any observer."""
    with app.app_context():
        draft = lesson_service.create_lesson(_user("us.analyst"), {
            **_lesson_fields(), **HIDDEN_TEXT})
        released = lesson_service.create_lesson(_user("us.planner"), {
            **_lesson_fields(), **HIDDEN_TEXT, "releasable_to": []}, submit=True)
        lesson_service.transition_lesson(_user("us.analyst"), released.public_id, "validated")
        return [draft.public_id, released.public_id]


def _lesson_fields() -> dict[str, Any]:
    from tests.conftest import lesson_fields

    return lesson_fields(nations=["USA"], releasable_to=[], source_event="Exercise QUIET")


def _change(app, public_ids: list[str]) -> None:
    with app.app_context():
        for public_id, author in zip(public_ids, ("us.analyst", "us.analyst"), strict=True):
            lesson_service.update_lesson(_user(author), public_id, CHANGED_TEXT)
        search.sync()


def _remove(app, public_ids: list[str]) -> None:
    """Deleted rows leave the index through the change log, as any removal would."""
    with app.app_context():
        for public_id in public_ids:
            lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == public_id))
            search.queue_lesson(lesson)
            db.session.delete(lesson)
        db.session.commit()
        search.after_commit()
        search.sync()


def assert_same(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                step: str) -> None:
    for name in OBSERVERS:
        differing = [key for key in before[name] if before[name][key] != after[name][key]]
        assert not differing, f"{step}: {name} sees a difference in {differing[:8]}"


def test_hidden_lessons_change_nothing_any_observer_sees(app, world):
    baseline = _observe_all(app, world)
    assert _observe_all(app, world) == baseline  # the answers are deterministic
    # The observations mean something: ranked lists, recommendations with scores.
    gb = baseline["gb.planner"]
    assert any(b'"score"' in v for k, v in gb.items() if k.startswith("recommend api"))
    assert any(v for k, v in gb.items() if k.startswith("related "))
    assert any('data-testid="suggestion"' in baseline[name]["page bowsr"]
               for name in OBSERVERS)
    assert "<mark" in gb["page mission network"]  # snippets

    hidden = _hidden_lessons(app)
    with app.app_context():
        search.sync()
    for name, (client, _) in world.items():
        for public_id in hidden:
            assert client.get(f"/lessons/{public_id}").status_code == 404, name
    assert_same(baseline, _observe_all(app, world), "adding hidden lessons")

    _change(app, hidden)
    assert_same(baseline, _observe_all(app, world), "changing hidden lessons")

    _remove(app, hidden)
    assert_same(baseline, _observe_all(app, world), "removing hidden lessons")


def test_the_order_of_own_drafts_does_not_tell_whether_a_hidden_lesson_holds_a_word(
        app, world):
    client, token = world["au.contributor"]

    def order() -> list[str]:
        items = client.get("/api/v1/lessons", query_string={"q": "bowser nozzle"},
                           headers={"Authorization": f"Bearer {token}"}).get_json()["items"]
        return [item["title"] for item in items]

    before = order()
    assert before[:2] == ["Fuel point drill two", "Fuel point drill one"]
    _hidden_lessons(app)  # three "bowser" each: the word is no longer the rarer one
    assert order() == before


# --- the wildcard limit ------------------------------------------------------------------
# Words under one prefix: the observer's own draft holds a few, the hidden lessons many.
OWN_PROBE_WORDS = ("zqaln", "zqbln", "zqcln")
HIDDEN_PROBE_WORDS = tuple(f"zq{a}{b}rn" for a in "defgh" for b in "klmpt")
PROBE_QUERIES = ("zq*", "zq?ln", "title:zq*", "zq* OR zq?ln", "zq* fuel", "zqa* zqb*")


def _probe(client, token: str) -> dict[str, Any]:
    api = {"Authorization": f"Bearer {token}"}
    seen: dict[str, Any] = {}
    for text in PROBE_QUERIES:
        args = {"q": text, "per_page": 50}
        response = client.get("/api/v1/lessons", query_string=args, headers=api)
        seen[f"api {text}"] = (response.status_code, response.get_data())
        response = client.get("/search", query_string=args)
        seen[f"page {text}"] = (response.status_code,
                                CSRF.sub("", response.get_data(as_text=True)))
    return seen


def test_the_wildcard_limit_counts_only_words_the_user_may_see(app, world, make_lesson,
                                                               monkeypatch):
    """Whether a wildcard stands for too many words is decided on the words of lessons
    the user may see: lessons hidden from them, however many words they add under the
    prefix, neither make a search too broad nor change its answer."""
    from lessons.search import limits

    monkeypatch.setattr(limits, "MAX_WORDS_PER_WILDCARD", len(OWN_PROBE_WORDS) + 1)
    monkeypatch.setattr(limits, "MAX_EXPANDED_WORDS", 10 * len(OWN_PROBE_WORDS))
    make_lesson("au.contributor", "draft", title="Zq trial " + " ".join(OWN_PROBE_WORDS),
                observation="Fuel trial: " + " ".join(OWN_PROBE_WORDS))
    with app.app_context():
        search.sync()

    def probe_all() -> dict[str, dict[str, Any]]:
        return {name: _probe(client, token) for name, (client, token) in world.items()}

    baseline = probe_all()
    own = baseline["au.contributor"]
    assert json.loads(own["api zq*"][1])["total"] == 1
    assert {key: body[:300] for key, (status, body) in own.items() if status != 200} == {}

    words = " ".join(HIDDEN_PROBE_WORDS)
    with app.app_context():
        hidden = [
            lesson_service.create_lesson(_user("us.analyst"), {
                **_lesson_fields(), "title": f"Zq {words}", "observation": words}).public_id,
            lesson_service.create_lesson(_user("us.planner"), {
                **_lesson_fields(), "title": f"Zq {words}", "observation": words},
                submit=True).public_id]
        lesson_service.transition_lesson(_user("us.analyst"), hidden[1], "validated")
        search.sync()
    assert_same(baseline, probe_all(), "adding hidden lessons")

    _change(app, hidden)
    assert_same(baseline, probe_all(), "changing hidden lessons")

    _remove(app, hidden)
    assert_same(baseline, probe_all(), "removing hidden lessons")
