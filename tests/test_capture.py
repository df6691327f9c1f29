"""Capturing and editing lessons through the HTML forms, and managing remedial actions.

Everything goes through the test client (CSRF is off in the testing config); the
database is read afterwards to check what was, or was not, stored.
"""

from __future__ import annotations

import re
from datetime import date
from html import unescape
from typing import Any

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from lessons.extensions import db
from lessons.models import AuditRecord, Lesson, RemedialAction

FVEY_MARKING = "UNCLASSIFIED // REL TO AUS, CAN, GBR, NZL, USA"

CONTRACT_KEYS = (
    "title", "observation", "discussion", "conclusion", "recommendation", "kind",
    "friction", "workaround", "limits", "permanence", "source_event", "observed_on",
    "location", "unit", "domains", "functions", "tags", "nations", "classification",
    "releasable_to",
)


# --- helpers ---------------------------------------------------------------------------
def form_data(**overrides: Any) -> dict[str, Any]:
    """What a browser posts for the default ``lesson_fields`` (lists as repeated names).

    ``releasable_to`` and ``nations`` carry the always-present "other codes" text box.
    """
    data: dict[str, Any] = {
        "title": "Partner LNOs could not reach the coalition chat",
        "observation": "The AUS liaison officers had no account on the division chat server.",
        "discussion": "Accounts needed a national clearance check that took two weeks.",
        "conclusion": "Liaison access must be arranged before the exercise starts.",
        "recommendation": "Request partner accounts at the initial planning conference.",
        "kind": "lesson",
        "friction": "",
        "workaround": "",
        "limits": "",
        "permanence": "",
        "source_event": "Exercise SOUTHERN JACKAL 2025",
        "observed_on": "2025-07-14",
        "location": "Shoalwater Bay Training Area",
        "unit": "1 Brigade HQ",
        "domains": ["training", "policy"],
        "functions": ["command_control"],
        "tags": "liaison, mission-network",
        "nations": ["AUS", "GBR", ""],
        "classification": "UNCLASSIFIED",
        "releasable_to": [""],
    }
    data.update(overrides)
    return data


def stored(app, public_id: str) -> dict[str, Any]:
    """The stored lesson's contract values plus status, version and actions."""
    with app.app_context():
        lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == public_id))
        assert lesson is not None
        values = {key: getattr(lesson, key) for key in CONTRACT_KEYS if key != "tags"}
        values.update(tags=lesson.tags, status=lesson.status, version=lesson.version,
                      originator_nation=lesson.originator_nation,
                      domains=list(lesson.domains), functions=list(lesson.functions),
                      nations=list(lesson.nations), releasable_to=list(lesson.releasable_to),
                      actions=[a.to_contract() for a in lesson.actions])
        return values


def lesson_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Lesson)) or 0


def audit_actions(app, public_id: str) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(
            select(AuditRecord.action).join(Lesson, AuditRecord.lesson_id == Lesson.id)
            .where(Lesson.public_id == public_id).order_by(AuditRecord.id)))


def public_id_from(location: str) -> str:
    match = re.fullmatch(r"(?:http://localhost)?/lessons/([A-Za-z0-9_-]+)", location)
    assert match, location
    return match.group(1)


def field_errors(html: str, field: str) -> list[str]:
    """Messages shown next to ``field`` (the paragraphs in its ``<field>-error`` block,
    which the page has once at most, as element ids must be unique)."""
    blocks = re.findall(rf'<div class="errors" id="{field}-error">(.*?)</div>', html, re.S)
    assert len(blocks) <= 1, f"{field}-error appears {len(blocks)} times"
    return [unescape(m) for block in blocks
            for m in re.findall(r'<p class="error">([^<]*)</p>', block)]


def marking(html: str, where: str) -> str:
    match = re.search(rf'data-testid="marking-{where}">([^<]*)</p>', html)
    assert match, f"no marking-{where}"
    return match.group(1)


def history_items(html: str) -> list[str]:
    section = re.search(r'<ol class="history">(.*?)</ol>', html, re.S)
    assert section
    items = re.findall(r"<li>(.*?)</li>", section.group(1), re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", item).split()) for item in items]


@pytest.fixture
def people(make_user):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("us.an", "USA", ("contributor", "analyst"))


# --- the new-lesson form ---------------------------------------------------------------
def test_new_lesson_form_renders_with_contract_key_field_names(people, login_as):
    response = login_as("gb.author").get("/lessons/new")
    assert response.status_code == 200
    for key in CONTRACT_KEYS:
        assert f'name="{key}"' in response.text, key
    assert 'name="action" value="save"' in response.text
    assert 'name="action" value="submit"' in response.text


def test_save_draft_creates_a_draft_and_redirects_to_its_page(app, people, login_as):
    client = login_as("gb.author")
    response = client.post("/lessons/new", data=form_data(action="save"))
    assert response.status_code == 302
    public_id = public_id_from(response.headers["Location"])
    lesson = stored(app, public_id)
    assert (lesson["status"], lesson["version"]) == ("draft", 1)
    page = client.get(f"/lessons/{public_id}")
    assert page.status_code == 200
    assert "Draft saved." in page.text
    assert '<span class="badge status-draft">Draft</span>' in page.text


def test_submit_button_creates_and_submits_at_once(app, people, login_as):
    client = login_as("gb.author")
    response = client.post("/lessons/new", data=form_data(action="submit"))
    assert response.status_code == 302
    public_id = public_id_from(response.headers["Location"])
    assert stored(app, public_id)["status"] == "submitted"
    assert audit_actions(app, public_id) == ["created", "submitted"]
    assert "Lesson submitted for review." in client.get(f"/lessons/{public_id}").text


def test_every_field_is_stored_under_its_contract_key(app, people, login_as):
    data = form_data(
        kind="workaround", friction="No shared crypto between the nets.",
        workaround="Liaison runners carried the overlays.", limits="Only within 10 km.",
        permanence="interim", domains=["materiel", "training"],
        functions=["command_control", "sustainment"], tags="radio, crypto",
        nations=["AUS", "USA", "FRA"], releasable_to=["USA", ""],
    )
    response = login_as("gb.author").post("/lessons/new", data=data)
    lesson = stored(app, public_id_from(response.headers["Location"]))
    expected = {key: data[key] for key in (
        "title", "observation", "discussion", "conclusion", "recommendation", "kind",
        "friction", "workaround", "limits", "permanence", "source_event", "location",
        "unit", "classification")}
    assert {key: lesson[key] for key in expected} == expected
    assert lesson["observed_on"] == date(2025, 7, 14)
    assert lesson["domains"] == ["materiel", "training"]
    assert lesson["functions"] == ["command_control", "sustainment"]
    assert lesson["tags"] == ["crypto", "radio"]
    assert lesson["nations"] == ["AUS", "FRA", "USA"]
    assert lesson["releasable_to"] == ["GBR", "USA"]
    assert lesson["originator_nation"] == "GBR"


def test_rel_to_defaults_to_the_originator_alone(app, people, login_as):
    client = login_as("gb.author")
    response = client.post("/lessons/new", data=form_data(releasable_to=[""]))
    public_id = public_id_from(response.headers["Location"])
    assert stored(app, public_id)["releasable_to"] == ["GBR"]
    assert marking(client.get(f"/lessons/{public_id}").text, "top") == (
        "UNCLASSIFIED // REL TO GBR")


def test_fvey_expands_and_the_marking_shows_at_top_and_bottom(app, people, login_as):
    client = login_as("gb.author")
    response = client.post("/lessons/new", data=form_data(releasable_to=["FVEY", ""]))
    public_id = public_id_from(response.headers["Location"])
    assert stored(app, public_id)["releasable_to"] == ["AUS", "CAN", "GBR", "NZL", "USA"]
    html = client.get(f"/lessons/{public_id}").text
    assert marking(html, "top") == FVEY_MARKING
    assert marking(html, "bottom") == FVEY_MARKING


def test_typed_other_codes_merge_with_checked_boxes(app, people, login_as):
    response = login_as("gb.author").post(
        "/lessons/new", data=form_data(releasable_to=["USA", "fra, DEU ,usa"]))
    assert stored(app, public_id_from(response.headers["Location"]))["releasable_to"] == [
        "DEU", "FRA", "GBR", "USA"]


def test_unknown_nation_code_is_refused_next_to_the_field(app, people, login_as):
    response = login_as("gb.author").post(
        "/lessons/new", data=form_data(releasable_to=["USA", "XYZ"]))
    assert response.status_code == 422
    assert field_errors(response.text, "releasable_to") == ["Unknown nation or group: XYZ."]
    assert 'id="releasable_to-other" value="XYZ"' in response.text
    assert lesson_count(app) == 0


def test_tags_are_lower_cased_trimmed_and_deduplicated(app, people, login_as):
    response = login_as("gb.author").post("/lessons/new", data=form_data(
        tags="  Liaison , mission-network,LIAISON,  Night   Ops ,, night ops"))
    lesson = stored(app, public_id_from(response.headers["Location"]))
    assert lesson["tags"] == ["liaison", "mission-network", "night ops"]


INVALID = {
    "title_over_300_characters": (
        {"title": "T" * 301}, "save", "title", "At most 300 characters (this has 301)."),
    "text_field_over_50000_characters": (
        {"discussion": "d" * 50_001}, "save", "discussion",
        "At most 50,000 characters (this has 50,001)."),
    "missing_title": ({"title": "  "}, "save", "title", "Required."),
    # A draft needs only its title; the observation is asked for on submitting.
    "submit_without_observation": ({"observation": ""}, "submit", "observation",
                                   "Required before the lesson can be submitted."),
    "submit_without_recommendation": (
        {"recommendation": ""}, "submit", "recommendation",
        "Required before the lesson can be submitted."),
    "workaround_field_on_a_lesson": (
        {"friction": "Different crypto"}, "save", "friction",
        "Only a workaround has this field; set kind to workaround."),
    "workaround_submitted_without_friction": (
        {"kind": "workaround", "workaround": "Runners"}, "submit", "friction",
        "Required for a workaround before it can be submitted."),
    "workaround_submitted_without_workaround": (
        {"kind": "workaround", "friction": "Different crypto"}, "submit", "workaround",
        "Required for a workaround before it can be submitted."),
    "invalid_date": ({"observed_on": "2025-02-30"}, "save", "observed_on",
                     "Not a valid date value."),
    "unknown_domain_slug": ({"domains": ["training", "astrology"]}, "save", "domains",
                            "'astrology' is not a valid choice for this field."),
}


@pytest.mark.parametrize(("overrides", "action", "field", "message"), INVALID.values(),
                         ids=INVALID.keys())
def test_invalid_input_answers_422_with_the_message_next_to_the_field(
        app, people, login_as, overrides, action, field, message):
    response = login_as("gb.author").post("/lessons/new",
                                          data=form_data(action=action, **overrides))
    assert response.status_code == 422
    assert field_errors(response.text, field) == [message]
    assert "Nothing was saved." in response.text


@pytest.mark.parametrize(("overrides", "action", "field", "message"), INVALID.values(),
                         ids=INVALID.keys())
def test_invalid_input_keeps_what_the_user_typed(people, login_as, overrides, action,
                                                 field, message):
    data = form_data(action=action, source_event="Exercise <TALISMAN> SABRE's end",
                     **overrides)
    html = login_as("gb.author").post("/lessons/new", data=data).text
    for key in ("title", "observation", "source_event", "friction", "observed_on"):
        if data[key].strip():
            assert str(escape(data[key])) in html, key
    checked = re.findall(r'<input checked id="domains-\d+" name="domains" type="checkbox" '
                         r'value="([a-z_]+)">', html)
    assert checked == [d for d in ("training", "policy") if d in data["domains"]]
    assert 'id="tags" maxlength="2000" name="tags" type="text" ' \
           'value="liaison, mission-network"' in html


@pytest.mark.parametrize(("overrides", "action", "field", "message"), INVALID.values(),
                         ids=INVALID.keys())
def test_invalid_input_stores_nothing(app, people, login_as, overrides, action, field,
                                      message):
    login_as("gb.author").post("/lessons/new", data=form_data(action=action, **overrides))
    assert lesson_count(app) == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditRecord)
                                 .where(AuditRecord.lesson_id.is_not(None))) == 0


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_user_without_the_contributor_role_cannot_open_the_new_lesson_form(
        app, make_user, login_as, method):
    make_user("gb.planner", "GBR", ("planner",))
    response = getattr(login_as("gb.planner"), method)("/lessons/new", data=form_data())
    assert response.status_code == 403
    assert lesson_count(app) == 0


# --- editing ---------------------------------------------------------------------------
def test_author_edits_own_draft_and_history_names_the_changed_fields(
        app, people, make_lesson, login_as):
    lesson = make_lesson("gb.author", "draft")
    client = login_as("gb.author")
    assert client.get(f"/lessons/{lesson.public_id}/edit").status_code == 200
    response = client.post(f"/lessons/{lesson.public_id}/edit", data=form_data(
        title="LNOs lacked chat accounts", tags="liaison, chat", version="1"))
    assert response.status_code == 302
    after = stored(app, lesson.public_id)
    assert (after["title"], after["tags"], after["version"]) == (
        "LNOs lacked chat accounts", ["chat", "liaison"], 2)
    assert audit_actions(app, lesson.public_id) == ["created", "edited"]
    html = client.get(f"/lessons/{lesson.public_id}").text
    assert "Version 2" in html
    assert any(item.endswith("edited : title, tags v2") for item in history_items(html))


def test_an_edit_that_changes_nothing_does_not_bump_the_version(app, people, make_lesson,
                                                                  login_as):
    lesson = make_lesson("gb.author", "draft")
    response = login_as("gb.author").post(f"/lessons/{lesson.public_id}/edit",
                                          data=form_data(version="1"))
    assert response.status_code == 302
    assert stored(app, lesson.public_id)["version"] == 1
    assert audit_actions(app, lesson.public_id) == ["created"]


def test_invalid_edit_answers_422_and_stores_nothing(app, people, make_lesson, login_as):
    lesson = make_lesson("gb.author", "draft")
    response = login_as("gb.author").post(f"/lessons/{lesson.public_id}/edit",
                                          data=form_data(title="", discussion="Changed",
                                                         version="1"))
    assert response.status_code == 422
    assert field_errors(response.text, "title") == ["Required."]
    after = stored(app, lesson.public_id)
    assert (after["version"], after["discussion"]) == (
        1, "Accounts needed a national clearance check that took two weeks.")


@pytest.mark.parametrize("method", ["get", "post"])
def test_author_cannot_edit_after_submitting(app, people, make_lesson, login_as, method):
    lesson = make_lesson("gb.author", "submitted")
    response = getattr(login_as("gb.author"), method)(f"/lessons/{lesson.public_id}/edit",
                                                      data=form_data(title="Sneaky"))
    assert response.status_code == 403
    assert stored(app, lesson.public_id)["title"] != "Sneaky"


@pytest.mark.parametrize("status", ["submitted", "validated"])
def test_originator_analyst_widens_rel_to_of_a_reviewed_lesson(app, people, make_lesson,
                                                                login_as, status):
    lesson = make_lesson("gb.author", status, analyst="gb.an", releasable_to=["USA"])
    client = login_as("gb.an")
    response = client.post(f"/lessons/{lesson.public_id}/edit",
                           data=form_data(releasable_to=["FVEY", ""],
                                          version=str(lesson.version)))
    assert response.status_code == 302
    after = stored(app, lesson.public_id)
    assert after["releasable_to"] == ["AUS", "CAN", "GBR", "NZL", "USA"]
    assert (after["status"], after["version"]) == (status, lesson.version + 1)
    assert marking(client.get(f"/lessons/{lesson.public_id}").text, "bottom") == FVEY_MARKING


@pytest.mark.parametrize("status", ["submitted", "validated"])
def test_originator_analyst_narrows_rel_to_and_the_other_nation_loses_sight(
        app, people, make_lesson, login_as, status):
    lesson = make_lesson("gb.author", status, analyst="gb.an", releasable_to=["USA"])
    us_analyst = login_as("us.an")
    assert us_analyst.get(f"/lessons/{lesson.public_id}").status_code == 200
    response = login_as("gb.an").post(f"/lessons/{lesson.public_id}/edit",
                                      data=form_data(releasable_to=[""],
                                                     version=str(lesson.version)))
    assert response.status_code == 302
    assert stored(app, lesson.public_id)["releasable_to"] == ["GBR"]
    assert us_analyst.get(f"/lessons/{lesson.public_id}").status_code == 404
    history = history_items(login_as("gb.an").get(f"/lessons/{lesson.public_id}").text)
    assert any("edited : releasable_to" in item for item in history)


@pytest.mark.parametrize(("releasable_to", "expected"), [([], 404), (["USA"], 403)],
                         ids=["cannot_view_404", "can_view_403"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_analyst_of_another_nation_cannot_edit(app, people, make_lesson, login_as,
                                               releasable_to, expected, method):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an",
                         releasable_to=releasable_to)
    response = getattr(login_as("us.an"), method)(f"/lessons/{lesson.public_id}/edit",
                                                  data=form_data(title="From Washington"))
    assert response.status_code == expected
    assert stored(app, lesson.public_id)["version"] == lesson.version


@pytest.mark.parametrize("username", ["gb.author", "gb.an"])
def test_an_archived_lesson_cannot_be_edited_by_anyone(app, people, make_lesson, login_as,
                                                       username):
    lesson = make_lesson("gb.author", "archived", analyst="gb.an")
    client = login_as(username)
    assert client.get(f"/lessons/{lesson.public_id}/edit").status_code == 403
    response = client.post(f"/lessons/{lesson.public_id}/edit",
                           data=form_data(title="Rewritten history"))
    assert response.status_code == 403
    assert stored(app, lesson.public_id)["version"] == lesson.version


# --- remedial actions ------------------------------------------------------------------
ACTION = {"description": "Add partner accounts to the IPC checklist.",
          "owner_org": "J6 Coalition Networks", "owner_nation": "AUS",
          "due_on": "2026-03-31", "status": "open"}


def test_originator_analyst_adds_a_remedial_action(app, people, make_lesson, login_as):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    client = login_as("gb.an")
    response = client.post(f"/lessons/{lesson.public_id}/actions", data=ACTION)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/lessons/{lesson.public_id}#actions")
    after = stored(app, lesson.public_id)
    assert after["actions"] == [{**ACTION, "status": "open"}]
    assert after["version"] == lesson.version + 1
    html = client.get(f"/lessons/{lesson.public_id}").text
    assert "J6 Coalition Networks (AUS)" in html
    assert any("action added" in item and ACTION["description"] in item
               for item in history_items(html))


def test_an_action_without_description_answers_422_and_stores_nothing(
        app, people, make_lesson, login_as):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    response = login_as("gb.an").post(f"/lessons/{lesson.public_id}/actions",
                                      data={**ACTION, "description": " "})
    assert response.status_code == 422
    assert field_errors(response.text, "description") == ["Required."]
    assert "J6 Coalition Networks" in response.text  # what was typed is kept
    assert stored(app, lesson.public_id)["actions"] == []


def test_an_action_with_an_unknown_owner_nation_answers_422(app, people, make_lesson,
                                                             login_as):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    response = login_as("gb.an").post(f"/lessons/{lesson.public_id}/actions",
                                      data={**ACTION, "owner_nation": "XYZ"})
    assert response.status_code == 422
    assert field_errors(response.text, "owner_nation") == ["Unknown nation: XYZ."]
    assert stored(app, lesson.public_id)["actions"] == []


def test_originator_analyst_marks_an_action_done(app, people, make_lesson, login_as):
    lesson = make_lesson("gb.author", "action_assigned", analyst="gb.an")
    client = login_as("gb.an")
    response = client.post(f"/lessons/{lesson.public_id}/actions/1", data={"status": "done"})
    assert response.status_code == 302
    after = stored(app, lesson.public_id)
    assert [a["status"] for a in after["actions"]] == ["done"]
    assert after["version"] == lesson.version + 1
    assert any("action updated" in item and "Action 1 marked done." in item
               for item in history_items(client.get(f"/lessons/{lesson.public_id}").text))


def test_marking_an_unknown_action_answers_404(people, make_lesson, login_as):
    lesson = make_lesson("gb.author", "action_assigned", analyst="gb.an")
    response = login_as("gb.an").post(f"/lessons/{lesson.public_id}/actions/9",
                                      data={"status": "done"})
    assert response.status_code == 404


@pytest.mark.parametrize("username", ["gb.author", "us.an"],
                         ids=["author_contributor", "analyst_of_another_nation"])
def test_a_non_originator_analyst_cannot_manage_actions(app, people, make_lesson, login_as,
                                                        username):
    lesson = make_lesson("gb.author", "action_assigned", analyst="gb.an",
                         releasable_to=["USA"])
    client = login_as(username)
    assert client.post(f"/lessons/{lesson.public_id}/actions",
                       data=ACTION).status_code == 403
    assert client.post(f"/lessons/{lesson.public_id}/actions/1",
                       data={"status": "done"}).status_code == 403
    assert [a["status"] for a in stored(app, lesson.public_id)["actions"]] == ["open"]


def test_a_drafts_actions_cannot_be_managed_even_by_an_analyst_author(app, make_user,
                                                                       make_lesson, login_as):
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    lesson = make_lesson("gb.an", "draft")
    client = login_as("gb.an")
    assert client.post(f"/lessons/{lesson.public_id}/actions", data=ACTION).status_code == 403
    assert "Add a remedial action" not in client.get(f"/lessons/{lesson.public_id}").text
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RemedialAction)) == 0


def test_a_second_save_over_a_newer_version_shows_both_and_keeps_what_was_typed(
        app, make_user, make_lesson, login_as):
    """Two analysts open the same lesson; the first saves; the second's save is refused
    with 409, shows what the first saved, keeps the second's text, and stores nothing.
    Saving again from that page is deliberate and goes through."""
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.an1", "GBR", ("analyst",))
    make_user("gb.an2", "GBR", ("analyst",))
    lesson = make_lesson("gb.author", "submitted")
    first, second = login_as("gb.an1"), login_as("gb.an2")
    path = f"/lessons/{lesson.public_id}/edit"
    form_first = re.search(r'name="version" type="hidden" value="(\d+)"',
                           first.get(path).get_data(as_text=True))
    form_second = re.search(r'name="version" type="hidden" value="(\d+)"',
                            second.get(path).get_data(as_text=True))
    assert form_first and form_second and form_first[1] == form_second[1]
    loaded = form_first[1]
    assert first.post(path, data=form_data(version=loaded,
                                           conclusion="First analyst's conclusion.")
                      ).status_code == 302
    response = second.post(path, data=form_data(version=loaded,
                                                conclusion="Second analyst's conclusion."))
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    conflict = unescape(re.search(r'<section class="conflict.*?</section>', html, re.S)[0])
    assert "First analyst's conclusion." in conflict and "Conclusion" in conflict
    assert "Second analyst's conclusion." in unescape(html)  # still in the form
    with app.app_context():
        stored = db.session.scalar(select(Lesson).where(Lesson.public_id == lesson.public_id))
        assert stored.conclusion == "First analyst's conclusion."
        newer = str(stored.version)
    assert f'name="version" type="hidden" value="{newer}"' in html
    assert second.post(path, data=form_data(version=newer, conclusion="Merged conclusion.")
                       ).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Lesson.conclusion).where(
            Lesson.public_id == lesson.public_id)) == "Merged conclusion."
