"""Every move of the lesson status table through POST /lessons/<id>/transition.

Allowed moves redirect to the lesson page, bump ``version`` and are audited with their
comment; refused ones answer 404 (cannot see), 403 (someone else's move), 409 (no such
move from here) or 422 (a needed comment, reason, evidence, action or field missing),
and change nothing.
"""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import select

from lessons.extensions import db
from lessons.models import AuditRecord, Lesson


# --- helpers ---------------------------------------------------------------------------
@pytest.fixture
def people(make_user):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.other", "GBR", ("contributor",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("us.an", "USA", ("contributor", "analyst"))


def move(client, public_id: str, to: str, note: str = ""):
    return client.post(f"/lessons/{public_id}/transition", data={"to": to, "note": note})


def state(app, public_id: str) -> tuple[str, int]:
    with app.app_context():
        lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == public_id))
        return lesson.status, lesson.version


def last_audit(app, public_id: str) -> tuple[str, str | None, str | None, str, int | None]:
    with app.app_context():
        entry = db.session.scalars(
            select(AuditRecord).join(Lesson, AuditRecord.lesson_id == Lesson.id)
            .where(Lesson.public_id == public_id).order_by(AuditRecord.id.desc())).first()
        return (entry.action, entry.from_status, entry.to_status, entry.comment,
                entry.version)


def history_items(html: str) -> list[str]:
    section = re.search(r'<ol class="history">(.*?)</ol>', html, re.S)
    assert section
    items = re.findall(r"<li>(.*?)</li>", section.group(1), re.S)
    return [unescape(" ".join(re.sub(r"<[^>]+>", " ", item).split())) for item in items]


def transition_errors(html: str, to: str) -> list[str]:
    """Messages shown inside the form of the ``to`` button on the lesson page."""
    form = re.search(rf'<form [^>]*data-to="{to}"[^>]*>(.*?)</form>', html, re.S)
    assert form, f"no {to} button on the page"
    return [unescape(m) for m in re.findall(r'<p class="error">([^<]*)</p>', form.group(1))]


def error_message(html: str) -> str:
    match = re.search(r'<p class="error-message">([^<]*)</p>', html)
    assert match
    return unescape(match.group(1))


def badge(html: str) -> str:
    match = re.search(r'<span class="badge status-([a-z_]+)">', html)
    assert match
    return match.group(1)


def assert_moved(app, client, lesson, to: str, action: str, note: str = "") -> None:
    """The page shows the new status and version; history lists the move and its note."""
    assert state(app, lesson.public_id) == (to, lesson.version + 1)
    assert last_audit(app, lesson.public_id) == (action, lesson.status, to, note,
                                                 lesson.version + 1)
    html = client.get(f"/lessons/{lesson.public_id}").text
    assert badge(html) == to
    assert f"Version {lesson.version + 1}" in html
    entry = f"{action.replace('_', ' ')} ({lesson.status} → {to}) v{lesson.version + 1}"
    assert history_items(html)[-1].endswith(f"{entry} {note}" if note else entry)


# --- submit ----------------------------------------------------------------------------
def test_author_submits_a_draft(app, people, make_lesson, login_as):
    lesson = make_lesson("gb.author", "draft")
    client = login_as("gb.author")
    response = move(client, lesson.public_id, "submitted")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/lessons/{lesson.public_id}")
    assert_moved(app, client, lesson, "submitted", "submitted")


def test_someone_else_cannot_submit_a_draft_they_cannot_see(app, people, make_lesson,
                                                            login_as):
    lesson = make_lesson("gb.author", "draft")
    assert move(login_as("gb.other"), lesson.public_id, "submitted").status_code == 404
    assert state(app, lesson.public_id) == ("draft", 1)


def test_submit_without_required_fields_answers_422_naming_the_field(app, people,
                                                                     make_lesson, login_as):
    lesson = make_lesson("gb.author", "draft", recommendation="")
    response = move(login_as("gb.author"), lesson.public_id, "submitted")
    assert response.status_code == 422
    assert transition_errors(response.text, "submitted") == [
        "Recommendation: Required before the lesson can be submitted."]
    assert state(app, lesson.public_id) == ("draft", 1)


# --- withdraw --------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["draft", "submitted"])
def test_author_withdraws(app, people, make_lesson, login_as, status):
    lesson = make_lesson("gb.author", status)
    client = login_as("gb.author")
    assert move(client, lesson.public_id, "withdrawn").status_code == 302
    assert_moved(app, client, lesson, "withdrawn", "withdrawn")


def test_only_the_author_withdraws_a_submitted_lesson(app, people, make_lesson, login_as):
    lesson = make_lesson("gb.author", "submitted")
    response = move(login_as("gb.an"), lesson.public_id, "withdrawn")
    assert response.status_code == 403
    assert error_message(response.text) == "Only its author can move this lesson to withdrawn."
    assert state(app, lesson.public_id) == ("submitted", 2)


# --- analyst moves that need a note ----------------------------------------------------
NOTED_MOVES = {
    "return_to_author": ("submitted", "draft", "returned",
                         "Please add the unit's own account of the outage.",
                         "Comment for the author is required."),
    "reject": ("submitted", "rejected", "rejected", "Duplicate of an earlier lesson.",
               "Reason is required."),
    "learned_from_validated": ("validated", "learned", "learned",
                               "Exercise TALISMAN SABRE showed accounts ready on day one.",
                               "Evidence is required."),
    "learned_from_action_assigned": ("action_assigned", "learned", "learned",
                                     "The fix worked in the next exercise.",
                                     "Evidence is required."),
}


@pytest.mark.parametrize(("status", "to", "action", "note", "message"),
                         NOTED_MOVES.values(), ids=NOTED_MOVES.keys())
def test_analyst_move_with_its_note_is_audited_with_the_note(
        app, people, make_lesson, login_as, status, to, action, note, message):
    lesson = make_lesson("gb.author", status, analyst="gb.an")
    assert move(login_as("gb.an"), lesson.public_id, to, note).status_code == 302
    # A returned lesson is a draft again: only its author may look at it now.
    viewer = login_as("gb.author" if to == "draft" else "gb.an")
    assert_moved(app, viewer, lesson, to, action, note)


@pytest.mark.parametrize(("status", "to", "action", "note", "message"),
                         NOTED_MOVES.values(), ids=NOTED_MOVES.keys())
def test_analyst_move_without_its_note_answers_422(app, people, make_lesson, login_as,
                                                   status, to, action, note, message):
    lesson = make_lesson("gb.author", status, analyst="gb.an")
    response = move(login_as("gb.an"), lesson.public_id, to, "   ")
    assert response.status_code == 422
    assert transition_errors(response.text, to) == [message]
    assert state(app, lesson.public_id) == (lesson.status, lesson.version)


def test_returning_to_author_sends_the_analyst_to_the_review_list(app, people, make_lesson,
                                                                  login_as):
    lesson = make_lesson("gb.author", "submitted")
    client = login_as("gb.an")
    response = move(client, lesson.public_id, "draft", "Needs the unit's account.")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/lessons?tab=review")
    assert client.get(response.headers["Location"]).status_code == 200


# --- validate, action assigned ---------------------------------------------------------
def test_analyst_validates_a_submitted_lesson(app, people, make_lesson, login_as):
    lesson = make_lesson("gb.author", "submitted")
    client = login_as("gb.an")
    assert move(client, lesson.public_id, "validated").status_code == 302
    assert_moved(app, client, lesson, "validated", "validated")


def test_action_assigned_needs_an_open_action(app, people, make_lesson, login_as):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    response = move(login_as("gb.an"), lesson.public_id, "action_assigned")
    assert response.status_code == 422
    assert transition_errors(response.text, "action_assigned") == [
        "Add at least one open remedial action first."]
    assert state(app, lesson.public_id) == ("validated", lesson.version)


def test_action_assigned_is_refused_when_every_action_is_done(app, people, make_lesson,
                                                              login_as):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    client = login_as("gb.an")
    client.post(f"/lessons/{lesson.public_id}/actions", data={"description": "Fix it"})
    client.post(f"/lessons/{lesson.public_id}/actions/1", data={"status": "done"})
    assert move(client, lesson.public_id, "action_assigned").status_code == 422


def test_action_assigned_succeeds_once_an_open_action_is_added(app, people, make_lesson,
                                                               login_as):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    client = login_as("gb.an")
    response = client.post(f"/lessons/{lesson.public_id}/actions",
                           data={"description": "Add LNO accounts to the IPC checklist."})
    assert response.status_code == 302
    _, version = state(app, lesson.public_id)
    assert move(client, lesson.public_id, "action_assigned").status_code == 302
    assert state(app, lesson.public_id) == ("action_assigned", version + 1)
    html = client.get(f"/lessons/{lesson.public_id}").text
    assert badge(html) == "action_assigned"
    assert history_items(html)[-1].endswith(
        f"action assigned (validated → action_assigned) v{version + 1}")


# --- archive ---------------------------------------------------------------------------
@pytest.mark.parametrize("status",
                         ["submitted", "validated", "action_assigned", "learned", "rejected"])
def test_analyst_archives_with_a_reason(app, people, make_lesson, login_as, status):
    lesson = make_lesson("gb.author", status, analyst="gb.an")
    client = login_as("gb.an")
    response = move(client, lesson.public_id, "archived", "Superseded by doctrine 3-16.")
    assert response.status_code == 302
    assert_moved(app, client, lesson, "archived", "archived", "Superseded by doctrine 3-16.")


@pytest.mark.parametrize("status", ["submitted", "learned"])
def test_archive_without_a_reason_answers_422(app, people, make_lesson, login_as, status):
    lesson = make_lesson("gb.author", status, analyst="gb.an")
    response = move(login_as("gb.an"), lesson.public_id, "archived")
    assert response.status_code == 422
    assert transition_errors(response.text, "archived") == ["Reason is required."]
    assert state(app, lesson.public_id) == (status, lesson.version)


def test_a_withdrawn_lesson_is_the_authors_alone_so_analysts_cannot_archive_it(
        app, people, make_lesson, login_as):
    # The status table allows archiving from any status but draft; the visibility
    # policy (docs/ARCHITECTURE.md, section 4) keeps withdrawn lessons from everyone but the author.
    lesson = make_lesson("gb.author", "withdrawn")
    response = move(login_as("gb.an"), lesson.public_id, "archived", "Tidy up.")
    assert response.status_code == 404
    assert state(app, lesson.public_id) == ("withdrawn", lesson.version)


# --- refused moves ---------------------------------------------------------------------
def _refused(status: str, to: str) -> str:
    return f"The lesson's status is {status}; it cannot be moved to {to}."


REFUSED = {
    "validated_to_submitted": ("validated", "gb.author", "submitted",
                               _refused("validated", "submitted")),
    "draft_to_validated_by_its_author": ("draft", "gb.author", "validated",
                                         _refused("draft", "validated")),
    "learned_to_validated": ("learned", "gb.an", "validated", _refused("learned", "validated")),
    "rejected_to_submitted": ("rejected", "gb.author", "submitted",
                              _refused("rejected", "submitted")),
    "archived_to_learned": ("archived", "gb.an", "learned", _refused("archived", "learned")),
    "archived_to_archived": ("archived", "gb.an", "archived", _refused("archived", "archived")),
    "withdrawn_to_submitted": ("withdrawn", "gb.author", "submitted",
                               _refused("withdrawn", "submitted")),
    "submitted_to_action_assigned": ("submitted", "gb.an", "action_assigned",
                                     _refused("submitted", "action assigned")),
    "unknown_status": ("validated", "gb.an", "banana", "Unknown status 'banana'."),
    "empty_status": ("validated", "gb.an", "", "Unknown status ''."),
}


@pytest.mark.parametrize(("status", "username", "to", "message"), REFUSED.values(),
                         ids=REFUSED.keys())
def test_a_move_the_status_table_lacks_answers_409_and_changes_nothing(
        app, people, make_lesson, login_as, status, username, to, message):
    lesson = make_lesson("gb.author", status, analyst="gb.an")
    response = move(login_as(username), lesson.public_id, to, "Please.")
    assert response.status_code == 409
    assert error_message(response.text) == message
    assert state(app, lesson.public_id) == (lesson.status, lesson.version)


def test_an_analyst_cannot_move_a_draft_they_cannot_see(app, people, make_lesson, login_as):
    lesson = make_lesson("gb.author", "draft", releasable_to=["USA"])
    for username in ("gb.an", "us.an"):
        assert move(login_as(username), lesson.public_id, "validated").status_code == 404
    assert state(app, lesson.public_id) == ("draft", 1)


def test_a_lesson_outside_rel_to_answers_404_for_every_move(app, people, make_lesson,
                                                            login_as):
    lesson = make_lesson("gb.author", "submitted")
    client = login_as("us.an")
    for to in ("validated", "rejected", "archived", "banana"):
        assert move(client, lesson.public_id, to, "Reason.").status_code == 404
    assert state(app, lesson.public_id) == ("submitted", 2)


ANALYST_MOVES = [("submitted", "draft"), ("submitted", "validated"),
                 ("submitted", "rejected"), ("validated", "action_assigned"),
                 ("validated", "learned"), ("validated", "archived")]


@pytest.mark.parametrize(("status", "to"), ANALYST_MOVES)
def test_analyst_of_another_nation_who_can_view_gets_403(app, people, make_lesson,
                                                         login_as, status, to):
    lesson = make_lesson("gb.author", status, analyst="gb.an", releasable_to=["USA"])
    response = move(login_as("us.an"), lesson.public_id, to, "From Washington.")
    assert response.status_code == 403
    assert error_message(response.text) == (
        f"Only an analyst of GBR can move this lesson to {to.replace('_', ' ')}.")
    assert state(app, lesson.public_id) == (lesson.status, lesson.version)


@pytest.mark.parametrize(("status", "to"), ANALYST_MOVES)
def test_a_contributor_of_the_originator_nation_gets_403_for_analyst_moves(
        app, people, make_lesson, login_as, status, to):
    lesson = make_lesson("gb.author", status, analyst="gb.an")
    response = move(login_as("gb.author"), lesson.public_id, to, "My own lesson.")
    assert response.status_code == 403
    assert state(app, lesson.public_id) == (lesson.status, lesson.version)


def test_the_page_offers_only_the_moves_the_user_may_make(people, make_lesson, login_as):
    lesson = make_lesson("gb.author", "submitted", releasable_to=["USA"])

    def offered(username: str) -> list[str]:
        html = login_as(username).get(f"/lessons/{lesson.public_id}").text
        return re.findall(r'<form [^>]*class="transition" data-to="([a-z_]+)"', html)

    assert offered("gb.an") == ["draft", "validated", "rejected", "archived"]
    assert offered("gb.author") == ["withdrawn"]
    assert offered("us.an") == []
