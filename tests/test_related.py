"""Related lessons on a lesson's page, "similar lessons already exist" while writing one,
and the links a contributor makes between lessons: ranked by shared words, and never
showing (or counting) a lesson the viewer may not see.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from lessons.extensions import db
from lessons.models import AuditRecord, Lesson, LessonLink
from tests.test_capture import form_data, public_id_from

LESSON_LINK = re.compile(r'href="/lessons/([a-z0-9]{10})"')

# Text about bowser couplings, and a near-identical variant: a lesson hidden from the
# viewer gets the variant, so it would rank first if anything let it through.
COUPLINGS = {
    "title": "Bowser nozzle couplings did not fit partner helicopters",
    "observation": "The bowser nozzle couplings of the GBR tankers did not fit the "
                   "refuelling adaptors of the partner helicopters.",
    "discussion": "Each nation buys its own nozzle couplings and adaptors.",
    "conclusion": "Coupling adaptors must be checked before a combined refuelling.",
    "recommendation": "Carry spare coupling adaptors for every partner airframe.",
}
COUPLINGS_TWIN = {
    "title": "Bowser nozzle couplings would not fit the partner helicopters",
    "observation": "GBR bowser nozzle couplings did not fit the refuelling adaptors of "
                   "partner helicopters at the forward arming and refuelling point.",
    "discussion": "Nozzle couplings and adaptors are bought nationally.",
    "conclusion": "Coupling adaptors need checking before any combined refuelling.",
    "recommendation": "Carry spare coupling adaptors for each partner airframe.",
}
RADIOS = {
    "title": "HF radios could not hold the partner net",
    "observation": "The HF radio net with partner battalions dropped every night.",
    "discussion": "Antenna drills differed between the nations.",
    "conclusion": "Radio drills must be rehearsed together.",
    "recommendation": "Run a combined communications rehearsal before deploying.",
}


def text(**fields: str) -> dict[str, Any]:
    """Lesson text overrides (every O-D-C-R part, so the default text shares nothing)."""
    return dict(fields)


def section(html: str, name: str) -> str:
    match = re.search(rf'<section id="{name}">(.*?)</section>', html, re.S)
    assert match, f"no {name} section"
    return match.group(1)


def listed(html: str, name: str) -> list[str]:
    """Public ids of the lessons a page section lists, in order, once each."""
    return list(dict.fromkeys(LESSON_LINK.findall(section(html, name))))


def similar_listed(html: str) -> list[str]:
    """Public ids offered as "link to this lesson" on the new-lesson form."""
    return re.findall(r'name="link_to" value="([a-z0-9]{10})"', html)


def count(app, model: type) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def links(app) -> set[tuple[str, str]]:
    with app.app_context():
        rows = db.session.execute(select(LessonLink.lesson_id, LessonLink.linked_lesson_id))
        ids = {lesson.id: lesson.public_id for lesson in db.session.scalars(select(Lesson))}
        return {(ids[a], ids[b]) for a, b in rows}


def audit_actions(app, public_id: str) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(
            select(AuditRecord.action).join(Lesson, AuditRecord.lesson_id == Lesson.id)
            .where(Lesson.public_id == public_id).order_by(AuditRecord.id)))


def preview(client, **fields: Any):
    return client.post("/lessons/new", data=form_data(action="preview", **fields))


@pytest.fixture
def people(make_user):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.other", "GBR", ("contributor",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("us.user", "USA", ("contributor",))


def validated(make_lesson, fields: dict[str, str], rel: list[str] | None = None):
    return make_lesson("gb.author", "validated", analyst="gb.an",
                       releasable_to=rel or [], **fields)


# --- related lessons on a lesson's page ------------------------------------------------
def test_related_lessons_rank_the_lesson_sharing_distinctive_words_first(
        people, make_lesson, login_as):
    lesson = validated(make_lesson, COUPLINGS)
    twin = validated(make_lesson, COUPLINGS_TWIN)
    generic = validated(make_lesson, text(
        title="Partner helicopters arrived late", observation="The partner helicopters "
        "arrived two days late for the exercise.", discussion="Shipping was delayed.",
        conclusion="Plan slack.", recommendation="Book shipping earlier."))
    validated(make_lesson, RADIOS)
    related = listed(login_as("gb.an").get(f"/lessons/{lesson.public_id}").text, "related")
    assert related[0] == twin.public_id
    assert generic.public_id in related
    assert lesson.public_id not in related


def test_a_lesson_with_nothing_in_common_shows_no_related_lessons(people, make_lesson,
                                                                  login_as):
    lesson = validated(make_lesson, COUPLINGS)
    validated(make_lesson, text(
        title="Field kitchens ran out of cooking gas",
        observation="Gas cylinders for the field kitchens were empty on day three.",
        discussion="Resupply was ordered late.", conclusion="Stocks were not watched.",
        recommendation="Count cylinders daily."))
    html = login_as("gb.an").get(f"/lessons/{lesson.public_id}").text
    assert listed(html, "related") == []
    assert "None found." in section(html, "related")


# Hidden from the viewer: (how the hidden twin is made, the viewer, REL TO of the rest).
HIDDEN = {
    "rel_to_another_nation": ("validated_gbr_only", "us.user", ["USA"]),
    "draft_of_another_user": ("draft_of_gb_other", "gb.author", []),
}


def hidden_twin(make_lesson, how: str):
    if how == "validated_gbr_only":
        return make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=[],
                           **COUPLINGS_TWIN)
    return make_lesson("gb.other", "draft", **COUPLINGS_TWIN)


@pytest.mark.parametrize("case", sorted(HIDDEN))
def test_related_lessons_never_include_a_lesson_the_viewer_may_not_see(
        people, make_lesson, login_as, case):
    how, viewer, rel = HIDDEN[case]
    lesson = validated(make_lesson, COUPLINGS, rel)
    seen = validated(make_lesson, text(
        title="Nozzle adaptors for partner helicopters",
        observation="Partner helicopters needed refuelling adaptors for our nozzles.",
        discussion="", conclusion="", recommendation="Stock adaptors."), rel)
    hidden = hidden_twin(make_lesson, how)
    html = login_as(viewer).get(f"/lessons/{lesson.public_id}").text
    assert listed(html, "related") == [seen.public_id]
    assert hidden.public_id not in html
    assert COUPLINGS_TWIN["title"] not in html


@pytest.mark.parametrize("case", sorted(HIDDEN))
def test_the_preview_never_offers_a_lesson_the_writer_may_not_see(
        app, people, make_lesson, login_as, case):
    how, viewer, rel = HIDDEN[case]
    seen = validated(make_lesson, COUPLINGS, rel)
    hidden = hidden_twin(make_lesson, how)
    before = count(app, Lesson)
    html = preview(login_as(viewer), **COUPLINGS_TWIN).text
    assert similar_listed(html) == [seen.public_id]
    assert hidden.public_id not in html
    assert "1 similar lesson found" in html
    assert count(app, Lesson) == before


def test_a_word_only_a_hidden_lesson_holds_finds_nothing_in_the_preview(
        people, make_lesson, login_as):
    make_lesson("gb.other", "draft", **text(
        title="Quadrilateral zanzibarite handling", observation="Zanzibarite spilled.",
        discussion="", conclusion="", recommendation=""))
    validated(make_lesson, RADIOS)
    html = preview(login_as("gb.author"), title="Zanzibarite", observation="zanzibarite",
                   discussion="", conclusion="", recommendation="").text
    assert similar_listed(html) == []
    assert "0 similar lessons found" in html


# --- "similar lessons already exist" while writing -------------------------------------
def test_preview_lists_the_closest_lessons_first_and_stores_nothing(app, people,
                                                                    make_lesson, login_as):
    radios = validated(make_lesson, RADIOS)
    couplings = validated(make_lesson, COUPLINGS)
    client = login_as("gb.other")  # logging in is itself on the record
    before = (count(app, Lesson), count(app, LessonLink), count(app, AuditRecord))
    response = preview(client, **COUPLINGS_TWIN)
    assert response.status_code == 200
    assert similar_listed(response.text)[0] == couplings.public_id
    assert radios.public_id not in similar_listed(response.text)[:1]
    # The form comes back filled in, with nothing saved.
    assert f'value="{COUPLINGS_TWIN["title"]}"' in response.text
    assert "Nothing was saved" not in response.text
    assert (count(app, Lesson), count(app, LessonLink), count(app, AuditRecord)) == before


def test_preview_keeps_the_lessons_already_ticked(people, make_lesson, login_as):
    radios = validated(make_lesson, RADIOS)
    validated(make_lesson, COUPLINGS)
    html = preview(login_as("gb.other"), link_to=[radios.public_id], **COUPLINGS_TWIN).text
    assert radios.public_id in similar_listed(html)
    assert re.search(rf'value="{radios.public_id}" checked', html)


def test_save_and_submit_buttons_still_save_without_a_preview(app, people, login_as):
    client = login_as("gb.author")
    for action, status in (("save", "draft"), ("submit", "submitted")):
        response = client.post("/lessons/new", data=form_data(action=action))
        assert response.status_code == 302
        with app.app_context():
            lesson = db.session.scalar(select(Lesson).where(
                Lesson.public_id == public_id_from(response.headers["Location"])))
            assert lesson.status == status


@pytest.mark.parametrize("action", ["save", "submit"])
def test_saving_with_link_to_creates_the_link_and_both_pages_show_it(
        app, people, make_lesson, login_as, action):
    existing = validated(make_lesson, COUPLINGS)
    client = login_as("gb.other")
    response = client.post("/lessons/new", data=form_data(
        action=action, link_to=[existing.public_id], **COUPLINGS_TWIN))
    assert response.status_code == 302
    new = public_id_from(response.headers["Location"])
    assert links(app) == {(new, existing.public_id)}
    assert audit_actions(app, new)[:2] == ["created", "linked"]
    assert listed(client.get(f"/lessons/{new}").text, "links") == [existing.public_id]
    assert listed(client.get(f"/lessons/{existing.public_id}").text, "links") == [new]


def test_a_link_shows_only_to_viewers_who_may_see_both_lessons(app, people, make_lesson,
                                                              login_as):
    existing = validated(make_lesson, COUPLINGS, ["USA"])
    response = login_as("gb.other").post("/lessons/new", data=form_data(
        action="save", link_to=[existing.public_id], **COUPLINGS_TWIN))
    draft = public_id_from(response.headers["Location"])
    for viewer in ("us.user", "gb.author", "gb.an"):
        html = login_as(viewer).get(f"/lessons/{existing.public_id}").text
        assert listed(html, "links") == [], viewer
        assert draft not in html, viewer


@pytest.mark.parametrize("target", ["hidden", "unknown"])
def test_saving_with_a_link_to_a_lesson_not_visible_is_refused_and_stores_nothing(
        app, people, make_lesson, login_as, target):
    hidden = make_lesson("gb.author", "validated", analyst="gb.an", **COUPLINGS)
    seen = validated(make_lesson, RADIOS, ["USA"])
    ref = hidden.public_id if target == "hidden" else "zzzzzzzzzz"
    client = login_as("us.user")  # logging in is itself on the record
    before = (count(app, Lesson), count(app, AuditRecord))
    response = client.post("/lessons/new", data=form_data(
        action="save", link_to=[seen.public_id, ref], **COUPLINGS_TWIN))
    assert response.status_code == 422
    assert "not available to you" in response.text
    assert hidden.public_id not in response.text
    # The visible choice stays ticked for the next try.
    assert re.search(rf'value="{seen.public_id}" checked', response.text)
    assert (count(app, Lesson), count(app, AuditRecord)) == before
    assert links(app) == set()


def test_saving_with_too_many_links_is_refused(app, people, make_lesson, login_as):
    ids = [f"x{n:09d}" for n in range(11)]
    response = login_as("gb.author").post("/lessons/new", data=form_data(link_to=ids))
    assert response.status_code == 422
    assert "at most 10" in response.text
    assert count(app, Lesson) == 0


# --- linking and unlinking from a lesson's page ----------------------------------------
def test_the_author_of_a_draft_links_and_unlinks_it_from_its_page(app, people, make_lesson,
                                                                  login_as):
    other = validated(make_lesson, RADIOS)
    draft = make_lesson("gb.author", "draft", **COUPLINGS)
    client = login_as("gb.author")
    path = f"/lessons/{draft.public_id}"
    response = client.post(f"{path}/links", data={"other": f"MUS-{other.public_id}"})
    assert response.status_code == 302
    assert links(app) == {(draft.public_id, other.public_id)}
    html = client.get(path).text
    assert listed(html, "links") == [other.public_id]
    assert listed(client.get(f"/lessons/{other.public_id}").text, "links") == [
        draft.public_id]
    response = client.post(f"{path}/links/{other.public_id}/delete")
    assert response.status_code == 302
    assert links(app) == set()
    assert audit_actions(app, draft.public_id)[-2:] == ["linked", "unlinked"]


def test_a_related_lesson_is_linked_with_its_link_button(app, people, make_lesson, login_as):
    twin = validated(make_lesson, COUPLINGS_TWIN)
    draft = make_lesson("gb.author", "draft", **COUPLINGS)
    client = login_as("gb.author")
    html = client.get(f"/lessons/{draft.public_id}").text
    assert f'name="other" value="{twin.public_id}"' in section(html, "related")
    client.post(f"/lessons/{draft.public_id}/links", data={"other": twin.public_id})
    html = client.get(f"/lessons/{draft.public_id}").text
    assert "(linked)" in section(html, "related")


def test_linking_the_other_way_round_keeps_one_link(app, people, make_lesson, login_as):
    first = make_lesson("gb.an", "submitted", **COUPLINGS)
    second = make_lesson("gb.an", "submitted", **RADIOS)
    client = login_as("gb.an")
    client.post(f"/lessons/{first.public_id}/links", data={"other": second.public_id})
    client.post(f"/lessons/{second.public_id}/links", data={"other": first.public_id})
    assert links(app) == {(first.public_id, second.public_id)}
    # Either side's editor can remove it.
    client.post(f"/lessons/{second.public_id}/links/{first.public_id}/delete")
    assert links(app) == set()


def test_a_lesson_cannot_be_linked_to_itself(app, people, make_lesson, login_as):
    draft = make_lesson("gb.author", "draft", **COUPLINGS)
    response = login_as("gb.author").post(f"/lessons/{draft.public_id}/links",
                                          data={"other": draft.public_id})
    assert response.status_code == 422
    assert links(app) == set()


@pytest.mark.parametrize("target", ["hidden", "unknown"])
def test_linking_to_a_lesson_not_visible_answers_404_and_stores_nothing(
        app, people, make_lesson, login_as, target):
    hidden = make_lesson("gb.other", "draft", **COUPLINGS_TWIN)
    draft = make_lesson("gb.author", "draft", **COUPLINGS)
    ref = hidden.public_id if target == "hidden" else "zzzzzzzzzz"
    client = login_as("gb.author")  # logging in is itself on the record
    before = count(app, AuditRecord)
    response = client.post(f"/lessons/{draft.public_id}/links",
                                          data={"other": ref})
    assert response.status_code == 404
    assert links(app) == set()
    assert count(app, AuditRecord) == before


def test_a_viewer_who_may_not_edit_gets_no_link_forms_and_is_refused(app, people,
                                                                      make_lesson, login_as):
    lesson = validated(make_lesson, COUPLINGS)
    other = validated(make_lesson, RADIOS)
    client = login_as("gb.other")
    html = client.get(f"/lessons/{lesson.public_id}").text
    assert "/links" not in html
    response = client.post(f"/lessons/{lesson.public_id}/links",
                           data={"other": other.public_id})
    assert response.status_code == 403
    assert links(app) == set()


def test_history_names_a_linked_lesson_only_to_viewers_who_may_see_it(
        app, people, make_lesson, login_as):
    hidden = make_lesson("gb.an", "submitted", **RADIOS)  # REL TO GBR only
    lesson = make_lesson("gb.an", "submitted", releasable_to=["USA"], **COUPLINGS)
    login_as("gb.an").post(f"/lessons/{lesson.public_id}/links",
                           data={"other": hidden.public_id})
    assert links(app) == {(lesson.public_id, hidden.public_id)}
    html = login_as("us.user").get(f"/lessons/{lesson.public_id}").text
    assert hidden.public_id not in html
    assert "linked" not in section(html, "history")
    assert hidden.public_id in section(login_as("gb.author").get(
        f"/lessons/{lesson.public_id}").text, "history")


def test_the_link_limit_counts_only_links_the_editor_can_see(app, people, make_lesson,
                                                            login_as, monkeypatch):
    from lessons.models import User
    from lessons.services import lessons as service

    monkeypatch.setattr(service, "LINKS_MAX", 1)
    draft = make_lesson("gb.author", "draft", **COUPLINGS)
    hidden = make_lesson("us.user", "draft", **COUPLINGS_TWIN)
    with app.app_context():  # a link made earlier from a lesson gb.author cannot see
        ids = {lesson.public_id: lesson.id for lesson in db.session.scalars(select(Lesson))}
        us_user = db.session.scalar(select(User).where(User.username == "us.user"))
        db.session.add(LessonLink(lesson_id=ids[hidden.public_id],
                                  linked_lesson_id=ids[draft.public_id],
                                  created_by_id=us_user.id))
        db.session.commit()
    third = validated(make_lesson, RADIOS)
    author = login_as("gb.author")
    assert author.post(f"/lessons/{draft.public_id}/links",
                       data={"other": third.public_id}).status_code == 302
    fourth = validated(make_lesson, {**RADIOS, "title": "HF antennas were too short"})
    response = author.post(f"/lessons/{draft.public_id}/links",
                           data={"other": fourth.public_id})
    assert response.status_code == 422
    assert "at most 1 links" in response.text
    assert len(links(app)) == 2


def test_a_withdrawn_lesson_cannot_be_linked_to(app, people, make_lesson, login_as):
    """Its author still reads it, but neither a new lesson's ticked links nor the link
    form of a lesson page may point at it; nothing is stored."""
    withdrawn = make_lesson("gb.other", "withdrawn", **COUPLINGS)
    draft = make_lesson("gb.other", "draft", **RADIOS)
    client = login_as("gb.other")
    before = (count(app, Lesson), count(app, AuditRecord))
    response = client.post("/lessons/new", data=form_data(
        action="save", link_to=[withdrawn.public_id], **COUPLINGS_TWIN))
    assert response.status_code == 422
    assert "withdrawn" in response.text
    assert (count(app, Lesson), count(app, AuditRecord)) == before
    response = client.post(f"/lessons/{draft.public_id}/links",
                           data={"other": withdrawn.public_id}, follow_redirects=True)
    assert "A withdrawn lesson cannot be linked to." in response.text
    assert links(app) == set()
