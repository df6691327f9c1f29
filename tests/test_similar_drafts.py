"""A short draft ("check for similar lessons" with a title, or a line of observation) and
a short exercise objective are ranked as the search page ranks plain words
(``lessons.search.similar``): glossary equivalents count, and a lesson holding more of
the words ranks first. Hidden lessons change nothing the writer or the planner sees, on
this path as on the key-term one.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from lessons import search
from lessons.extensions import db
from lessons.models import Lesson, User
from lessons.search import similar
from lessons.services import lessons as lesson_service
from tests.test_exercises import exercise_form, exercise_id_from, recommended_ids, text_of
from tests.test_related import preview, similar_listed

CSRF = re.compile(r'<input[^>]*name="csrf_token"[^>]*>|<meta[^>]*csrf[^>]*>')
SIMILAR = re.compile(r'<fieldset class="similar[^"]*" id="similar">.*?</fieldset>', re.S)
RELATED = re.compile(r'<section id="related">.*?</section>', re.S)
EMPTY = {"observation": "", "discussion": "", "conclusion": "", "recommendation": ""}

# The lesson a writer means: liaison officers (the draft says "LNOs") without radios.
MEANT = {
    "title": "Liaison officers reached the brigade without radios",
    "observation": "The partner liaison officers arrived at brigade headquarters with no "
                   "radios and no laptops, so they could not pass traffic home.",
    "discussion": "Their equipment was shipped separately and held at the port.",
    "conclusion": "Officers sent forward need their own communications.",
    "recommendation": "Issue kit to every officer before moving forward.",
}
# A lesson holding the draft's other words, more often: key terms alone rank it first.
RADIOS_LATE = {
    "title": "Brigade radios arrived late",
    "observation": "Brigade radios arrived late; the brigade radios arrived after the "
                   "brigade had moved and brigade staff had no radios for two days.",
    "discussion": "The radios arrived by sea.",
    "conclusion": "Radios must arrive before the brigade moves.",
    "recommendation": "Ship brigade radios by air.",
}
KITCHENS = {
    "title": "Field kitchens ran out of cooking gas",
    "observation": "Gas cylinders for the field kitchens were empty on day three.",
    "discussion": "Resupply was ordered late.", "conclusion": "Stocks were not watched.",
    "recommendation": "Count cylinders daily.",
}
DRAFT = "LNOs arrived at brigade without radios"


@pytest.fixture
def people(make_user):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.other", "GBR", ("contributor",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("us.user", "USA", ("contributor",))
    make_user("glossary.admin", "GBR", ("admin",))
    make_user("gb.planner", "GBR", ("contributor", "planner"))


@pytest.fixture
def glossary(app, people):
    from lessons.services import glossary as service

    with app.app_context():
        admin = db.session.scalar(select(User).where(User.username == "glossary.admin"))
        service.create_group(admin, ["LNO", "LO", "liaison officer"])


def validated(make_lesson, fields: dict[str, str], rel: list[str] | None = None):
    return make_lesson("gb.author", "validated", analyst="gb.an",
                       releasable_to=rel or [], **fields)


def fieldset(html: str) -> list[str]:
    return SIMILAR.findall(CSRF.sub("", html))


def test_a_title_alone_finds_the_lesson_meant_through_the_glossary(
        people, glossary, make_lesson, login_as):
    meant = validated(make_lesson, MEANT)
    late = validated(make_lesson, RADIOS_LATE)
    validated(make_lesson, KITCHENS)
    html = preview(login_as("gb.other"), title=DRAFT, **EMPTY).text
    # "LNOs" is searched as "liaison officer" too: the lesson holding every word is
    # first, the one sharing "brigade radios arrived" next, kitchens nowhere.
    assert similar_listed(html) == [meant.public_id, late.public_id]
    assert "2 similar lessons found" in html


def test_the_observation_alone_is_the_same_draft(people, glossary, make_lesson, login_as):
    meant = validated(make_lesson, MEANT)
    validated(make_lesson, RADIOS_LATE)
    client = login_as("gb.other")
    by_title = similar_listed(preview(client, title=DRAFT, **EMPTY).text)
    by_observation = similar_listed(preview(client, title="", **{
        **EMPTY, "observation": DRAFT}).text)
    assert by_title[0] == meant.public_id
    assert by_observation == by_title


def test_a_draft_sharing_some_words_finds_the_lesson(people, make_lesson, login_as):
    """No glossary: two of the draft's five words are the lesson's, none in a row."""
    meant = validated(make_lesson, MEANT)
    validated(make_lesson, KITCHENS)
    html = preview(login_as("gb.other"), title="laptops missing for officers at the port",
                   **EMPTY).text
    assert similar_listed(html) == [meant.public_id]


def test_a_long_draft_is_still_ranked_by_key_terms(people, glossary, make_lesson, login_as,
                                                   monkeypatch):
    """Past ``SHORT_WORDS`` words the draft goes the key-term way (no glossary there):
    the same title then ranks the lesson repeating its other words first."""
    meant = validated(make_lesson, MEANT)
    late = validated(make_lesson, RADIOS_LATE)
    monkeypatch.setattr(similar, "SHORT_WORDS", 3)
    html = preview(login_as("gb.other"), title=DRAFT, **EMPTY).text
    assert similar_listed(html) == [late.public_id, meant.public_id]


def test_operators_and_fields_in_a_draft_are_words(people, make_lesson, login_as):
    meant = validated(make_lesson, MEANT)
    response = preview(login_as("gb.other"), title='NOT radios OR "laptops status:draft -port',
                       **EMPTY)
    assert response.status_code == 200
    assert similar_listed(response.text) == [meant.public_id]


def test_a_draft_of_stop_words_or_punctuation_finds_nothing(people, make_lesson, login_as):
    validated(make_lesson, MEANT)
    for title in ("the of and", "-- ?? !!"):
        html = preview(login_as("gb.other"), title=title, **EMPTY).text
        assert similar_listed(html) == [], title
        assert "0 similar lessons found" in html


# --- hidden lessons change nothing on the short path ------------------------------------
HIDDEN_TEXT = {**MEANT, "title": "LNOs without radios at brigade arrived late",
               "observation": "LNO LNO liaison officers arrived at brigade without radios; "
                              "radios radios arrived late."}
CHANGED_TEXT = {"title": "Brigade radios and laptops", "observation":
                "Radios, laptops and liaison officers for every brigade."}
DRAFTS = (DRAFT, "radios late", "laptops for liaison officers", "brigade")


def _user(name: str) -> User:
    return db.session.scalar(select(User).where(User.username == name))


def observe(client, short) -> dict[str, Any]:
    seen = {}
    for text in DRAFTS:
        seen[f"title {text}"] = fieldset(preview(client, title=text, **EMPTY).text)
        seen[f"observation {text}"] = fieldset(preview(client, title="", **{
            **EMPTY, "observation": text}).text)
    seen["related"] = RELATED.findall(client.get(f"/lessons/{short.public_id}").text)
    return seen


def _hidden(app) -> list[str]:
    """A draft of another GBR writer (hidden by status) and a validated lesson released
    to the USA only (hidden by release), both with the drafts' words."""
    from tests.conftest import lesson_fields

    with app.app_context():
        draft = lesson_service.create_lesson(_user("gb.other"), {
            **lesson_fields(), **HIDDEN_TEXT})
        released = lesson_service.create_lesson(_user("us.user"), {
            **lesson_fields(nations=["USA"], releasable_to=[]), **HIDDEN_TEXT}, submit=True)
        return [draft.public_id, released.public_id]


def test_hidden_lessons_change_nothing_a_short_draft_finds(app, people, glossary,
                                                           make_lesson, login_as):
    validated(make_lesson, MEANT)
    validated(make_lesson, RADIOS_LATE)
    validated(make_lesson, KITCHENS)
    # A lesson short enough to take the short path on its own page ("related").
    short = make_lesson("gb.author", "draft", **{**EMPTY, "title": "Brigade radios",
                                                 "observation": "LNOs lacked radios."})
    make_lesson("gb.author", "draft", **CHANGED_TEXT)  # the writer's own draft: visible
    client = login_as("gb.author")
    before = observe(client, short)
    assert before["title " + DRAFT] and before["related"]
    assert observe(client, short) == before  # deterministic

    hidden = _hidden(app)
    with app.app_context():
        search.sync()
        for public_id, author in zip(hidden, ("gb.other", "us.user"), strict=True):
            # In the index, where the statistics would see them.
            lesson_id = db.session.scalar(select(Lesson.id).where(
                Lesson.public_id == public_id))
            assert lesson_id in search.matching_ids(_user(author), "brigade radios")
    assert client.get(f"/lessons/{hidden[0]}").status_code == 404
    assert client.get(f"/lessons/{hidden[1]}").status_code == 404
    assert observe(client, short) == before, "adding hidden lessons"

    with app.app_context():
        lesson_service.update_lesson(_user("gb.other"), hidden[0], CHANGED_TEXT)
        search.sync()
    assert observe(client, short) == before, "changing a hidden lesson"

    with app.app_context():
        for public_id in hidden:
            lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == public_id))
            search.queue_lesson(lesson)
            db.session.delete(lesson)
        db.session.commit()
        search.after_commit()
        search.sync()
    assert observe(client, short) == before, "removing hidden lessons"


def test_a_word_only_a_hidden_lesson_holds_finds_nothing(people, make_lesson, login_as):
    make_lesson("gb.other", "draft", **{**EMPTY, "title": "Zanzibarite spill",
                                        "observation": "Zanzibarite spilled."})
    kitchens = validated(make_lesson, KITCHENS, ["USA"])
    for viewer in ("gb.author", "us.user"):
        html = preview(login_as(viewer), title="zanzibarite spill in the kitchens",
                       **EMPTY).text
        assert similar_listed(html) == [kitchens.public_id], viewer
        assert "Zanzibarite" not in "".join(fieldset(html)), viewer
        html = preview(login_as(viewer), title="zanzibarite spill", **EMPTY).text
        assert similar_listed(html) == [], viewer
        assert "0 similar lessons found" in html


# --- exercise recommendations: a short objective ----------------------------------------
def exercise(client, objective: str) -> str:
    response = client.post("/exercises/new", data=exercise_form(**{
        "description": "A command post rehearsal.", "tags": "",
        "objectives-0-text": objective, "objectives-1-text": ""}))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return exercise_id_from(response.headers["Location"])


def test_an_objective_in_glossary_words_recommends_the_lesson_meant(
        people, glossary, make_lesson, login_as):
    meant = validated(make_lesson, MEANT, ["USA", "AUS"])
    late = validated(make_lesson, RADIOS_LATE, ["USA", "AUS"])
    validated(make_lesson, KITCHENS, ["USA", "AUS"])
    client = login_as("gb.planner")
    public_id = exercise(client, DRAFT)
    html = client.get(f"/exercises/{public_id}/recommendations").get_data(as_text=True)
    assert recommended_ids(html)[:2] == [meant.public_id, late.public_id]
    item = re.search(rf'data-lesson="{meant.public_id}">(.*?)</li>', html, re.S).group(1)
    assert "matches objective 1" in text_of(item).lower()


def test_hidden_lessons_change_no_recommendation_for_a_short_objective(
        app, people, glossary, make_lesson, login_as):
    validated(make_lesson, MEANT, ["USA", "AUS"])
    validated(make_lesson, RADIOS_LATE, ["USA", "AUS"])
    validated(make_lesson, KITCHENS, ["USA", "AUS"])
    client = login_as("gb.planner")
    public_id = exercise(client, DRAFT)

    def seen() -> str:
        response = client.get(f"/exercises/{public_id}/recommendations")
        assert response.status_code == 200
        return CSRF.sub("", response.get_data(as_text=True))

    seen()  # "Exercise created." shows once
    before = seen()
    assert len(recommended_ids(before)) == 2
    # Submitted (recommendable) and released to the USA only; and a GBR writer's draft.
    hidden = [make_lesson("us.user", "submitted", releasable_to=[], **HIDDEN_TEXT),
              make_lesson("gb.other", "draft", **HIDDEN_TEXT)]
    assert all(login_as("gb.planner").get(f"/lessons/{lesson.public_id}").status_code == 404
               for lesson in hidden)
    assert seen() == before


@pytest.mark.parametrize("path", ["short", "long"])
def test_a_withdrawn_lesson_is_never_offered_as_similar(people, make_lesson, login_as, path):
    """Its author can still open their withdrawn lesson, but it is no lesson to link a new
    one to: the similar-lessons step leaves it out, on both rankings."""
    withdrawn = make_lesson("gb.other", "withdrawn", **MEANT)
    meant = validated(make_lesson, MEANT)
    fields = ({"title": DRAFT, **EMPTY} if path == "short"
              else {"title": MEANT["title"], **{k: MEANT[k] for k in EMPTY}})
    client = login_as("gb.other")
    assert client.get(f"/lessons/{withdrawn.public_id}").status_code == 200
    assert similar_listed(preview(client, **fields).text) == [meant.public_id]
