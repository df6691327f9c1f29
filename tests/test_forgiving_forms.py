"""Forms that forgive: a draft needs only its title, Enter saves a draft, refusals list
every problem at the top with a link to its field, required fields say so, and the
workaround fields are grouped for workarounds. Through HTTP, as a browser posts."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import select

from lessons.extensions import db
from lessons.models import Lesson, User
from lessons.services import tokens


@pytest.fixture
def people(make_user):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("us.author", "USA", ("contributor",))
    make_user("gb.admin", "GBR", ("admin", "planner"))


def stored(app, title: str) -> Lesson | None:
    with app.app_context():
        lesson = db.session.scalar(select(Lesson).where(Lesson.title == title))
        if lesson is not None:
            db.session.expunge(lesson)
        return lesson


def summary(html: str) -> str:
    """The error summary box (there is one at most)."""
    boxes = re.findall(r'(<div class="error-summary[^>]*>.*?</div>)', html, re.S)
    assert len(boxes) == 1, boxes
    return boxes[0]


def summary_links(html: str) -> dict[str, str]:
    return {href: unescape(text) for href, text in
            re.findall(r'<a href="#([^"]+)">([^<]*)</a>', summary(html))}


def label_of(html: str, field_id: str) -> str:
    match = re.search(rf'<label for="{field_id}">(.*?)</label>', html, re.S)
    assert match, field_id
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def tag_of(html: str, field_id: str) -> str:
    match = re.search(rf'<(?:input|textarea|select)[^>]*\bid="{field_id}"[^>]*>', html)
    assert match, field_id
    return match.group(0)


# --- drafts need only a title ------------------------------------------------------------
def test_a_draft_with_only_a_title_is_saved(app, people, login_as):
    response = login_as("gb.author").post("/lessons/new", data={
        "title": "Radios would not talk", "action": "save", "kind": "lesson",
        "classification": "UNCLASSIFIED"})
    assert response.status_code == 302
    lesson = stored(app, "Radios would not talk")
    assert lesson is not None and lesson.status == "draft" and lesson.observation == ""


def test_a_post_without_action_is_a_draft_too(app, people, login_as):
    """What Enter in Title posts (the hidden first button is the save)."""
    response = login_as("gb.author").post("/lessons/new", data={
        "title": "Enter pressed", "classification": "UNCLASSIFIED"})
    assert response.status_code == 302
    assert stored(app, "Enter pressed").status == "draft"


def test_submitting_still_needs_the_fields_with_a_clear_message(app, people, login_as):
    response = login_as("gb.author").post("/lessons/new", data={
        "title": "Half a lesson", "action": "submit", "kind": "lesson",
        "classification": "UNCLASSIFIED"})
    assert response.status_code == 422
    assert stored(app, "Half a lesson") is None
    links = summary_links(response.text)
    assert links["observation"] == "Observation: Required before the lesson can be submitted."
    assert links["recommendation"] == ("Recommendation: Required before the lesson can be "
                                       "submitted.")
    assert "Nothing was saved." in response.text


def test_a_draft_without_a_title_is_refused_with_the_summary(app, people, login_as):
    response = login_as("gb.author").post("/lessons/new", data={
        "title": " ", "observation": "Something", "action": "save",
        "classification": "UNCLASSIFIED"})
    assert response.status_code == 422
    assert summary_links(response.text) == {"title": "Title: Required."}


def test_a_draft_edited_down_to_its_title_saves_and_cannot_then_be_submitted(
        app, people, login_as, make_lesson):
    lesson = make_lesson("gb.author")
    client = login_as("gb.author")
    page = client.get(f"/lessons/{lesson.public_id}/edit").text
    version = re.search(r'name="version"[^>]*value="(\d+)"', page) or re.search(
        r'value="(\d+)"[^>]*name="version"', page)
    response = client.post(f"/lessons/{lesson.public_id}/edit", data={
        "title": "Only a title now", "kind": "lesson", "classification": "UNCLASSIFIED",
        "observation": "", "recommendation": "", "version": version.group(1)})
    assert response.status_code == 302
    moved = client.post(f"/lessons/{lesson.public_id}/transition", data={"to": "submitted"})
    assert moved.status_code == 422
    assert "Required before the lesson can be submitted." in moved.text
    assert stored(app, "Only a title now").status == "draft"


# --- the error summary -------------------------------------------------------------------
def test_the_summary_is_an_alert_that_takes_focus_and_links_to_each_field(
        app, people, login_as):
    response = login_as("gb.author").post("/lessons/new", data={
        "title": "T" * 301, "action": "submit", "kind": "workaround",
        "classification": "UNCLASSIFIED"})
    assert response.status_code == 422
    box = summary(response.text)
    assert 'role="alert"' in box and 'tabindex="-1"' in box
    assert "data-focus-on-load" in box
    links = summary_links(response.text)
    assert set(links) == {"title", "observation", "recommendation", "friction", "workaround"}
    for field_id in links:  # every link lands on a field of the page
        assert tag_of(response.text, field_id)
    assert (response.text.index('class="error-summary')
            < response.text.index('class="lesson-form"'))


def test_a_page_without_errors_has_no_summary(people, login_as):
    assert 'class="error-summary' not in login_as("gb.author").get("/lessons/new").text


def test_the_exercise_form_has_the_summary_too(people, login_as):
    response = login_as("gb.admin").post("/exercises/new", data={"name": ""})
    assert response.status_code == 422
    assert "name" in summary_links(response.text)


# --- required fields marked --------------------------------------------------------------
def test_required_fields_are_marked_in_words(people, login_as):
    page = login_as("gb.author").get("/lessons/new").text
    assert label_of(page, "title") == "Title (required)"
    assert " required" in tag_of(page, "title")
    for field_id, name in (("observation", "Observation"),
                           ("recommendation", "Recommendation")):
        assert label_of(page, field_id) == f"{name} (required to submit)"
        assert "required" not in tag_of(page, field_id).replace(f'id="{field_id}"', "")
    assert label_of(page, "discussion") == "Discussion"


# --- Enter and leaving -------------------------------------------------------------------
def test_the_first_button_of_the_form_saves_a_draft(people, login_as):
    page = login_as("gb.author").get("/lessons/new").text
    form = page[page.index('class="lesson-form"'):]
    first = re.search(r"<button[^>]*>", form).group(0)
    assert 'name="action"' in first and 'value="save"' in first
    assert 'type="submit"' in first


def test_the_lesson_form_warns_before_leaving_and_loads_its_script_from_self(
        people, login_as):
    client = login_as("gb.author")
    page = client.get("/lessons/new").text
    assert re.search(r'<form[^>]*data-warn-unsaved', page)
    script = re.search(r'<script src="(/static/js/forms\.js)" defer></script>', page)
    assert script
    body = client.get(script.group(1))
    assert body.status_code == 200 and b"beforeunload" in body.get_data()
    body.close()


# --- workaround fields -------------------------------------------------------------------
def test_workaround_fields_are_grouped_in_a_labelled_fieldset(people, login_as):
    page = login_as("gb.author").get("/lessons/new").text
    match = re.search(r'<fieldset class="workaround-fields"[^>]*>\s*<legend>([^<]*)</legend>'
                      r'(.*?)</fieldset>', page, re.S)
    assert match
    assert "workaround" in match.group(1).lower()
    for key in ("friction", "workaround", "limits", "permanence"):
        assert f'id="{key}"' in match.group(2)
    assert "data-shown-for-kind=\"workaround\"" in match.group(0)


# --- the API ------------------------------------------------------------------------------
def api_token(app, username: str) -> str:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        return tokens.create_token(user, "script")[1]


def test_the_api_saves_a_draft_with_only_a_title_and_submits_only_a_whole_lesson(
        app, people, client):
    headers = {"Authorization": f"Bearer {api_token(app, 'gb.author')}"}
    created = client.post("/api/v1/lessons", json={"title": "API draft"}, headers=headers)
    assert created.status_code == 201, created.json
    assert created.json["status"] == "draft" and created.json["observation"] == ""
    refused = client.post("/api/v1/lessons", json={"title": "API half", "submit": True},
                          headers=headers)
    assert refused.status_code == 422
    assert "observation" in str(refused.json)
    assert stored(app, "API half") is None


# --- releasability ------------------------------------------------------------------------
def test_the_edit_form_of_another_nations_hidden_draft_is_not_found(
        app, people, login_as, make_lesson):
    lesson = make_lesson("gb.author", title="Hidden from the USA")
    client = login_as("us.author")
    assert client.get(f"/lessons/{lesson.public_id}/edit").status_code == 404
    response = client.post(f"/lessons/{lesson.public_id}/edit", data={"title": ""})
    assert response.status_code == 404
    assert "Hidden from the USA" not in response.text


def test_the_admin_new_user_form_has_the_summary_too(people, login_as):
    response = login_as("gb.admin").post("/admin/users/new", data={"username": ""})
    assert response.status_code == 422
    assert "username" in summary_links(response.text)


def test_the_openapi_document_says_a_draft_needs_only_a_title(app, people, client):
    headers = {"Authorization": f"Bearer {api_token(app, 'gb.author')}"}
    document = client.get("/api/v1/openapi.json", headers=headers).json
    created = document["components"]["schemas"]["LessonCreate"]
    assert created["required"] == ["title"]
    assert "A draft needs only a title" in created["properties"]["submit"]["description"]


def test_linking_to_a_hidden_lesson_is_summarised_without_naming_it(
        app, people, login_as, make_lesson):
    hidden = make_lesson("us.author", "submitted", title="Only for American eyes")
    response = login_as("gb.author").post("/lessons/new", data={
        "title": "Mine", "action": "save", "classification": "UNCLASSIFIED",
        "link_to": hidden.public_id})
    assert response.status_code == 422
    links = summary_links(response.text)
    assert set(links) == {"similar"}  # the fieldset the ticks are in
    assert 'id="similar"' in response.text
    assert "Only for American eyes" not in response.text
    assert stored(app, "Mine") is None


def test_the_edit_form_saves_on_enter_too_and_marks_what_the_status_needs(
        people, login_as, make_lesson, make_user):
    make_user("gb.an", "GBR", ("analyst",))
    draft = make_lesson("gb.author")
    page = login_as("gb.author").get(f"/lessons/{draft.public_id}/edit").text
    form = page[page.index('class="lesson-form"'):]
    first = re.search(r"<button[^>]*>([^<]*)</button>", form)
    assert 'type="submit"' in first.group(0) and first.group(1) == "Save changes"
    assert label_of(page, "observation") == "Observation (required to submit)"
    submitted = make_lesson("gb.author", "submitted")
    page = login_as("gb.an").get(f"/lessons/{submitted.public_id}/edit").text
    assert label_of(page, "observation") == "Observation (required)"  # past draft: every save
