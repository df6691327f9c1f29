"""Imports follow the access policy and the status table: the upload page (preview, then
confirm) and `flask lessons import` may update only lessons the importer may edit through
the forms, move a status only along moves the importer could make on the lesson page,
and answer the same for a hidden lesson and one that does not exist. Only an administrator
imports a migration, with statuses and originators taken as is."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from lessons.extensions import db
from lessons.models import AuditRecord, Lesson
from tests.test_exchange import record
from tests.test_spreadsheet import preview_rows

REFUSED = ("external_id: names no lesson you may update (a new lesson's external_id must be "
           "empty or begin with au.analyst:)")


def line(**overrides) -> str:
    """One AUS lesson in the exchange format (an AUS analyst's own nation)."""
    return json.dumps(record(**{"originator_nation": "AUS", "nations": ["AUS"],
                                "releasable_to": ["AUS"], "actions": [],
                                "status": "submitted", **overrides})) + "\n"


def upload(client, content: str, **data):
    return client.post("/lessons/import", data={
        "file": (io.BytesIO(content.encode("utf-8")), "lessons.jsonl"), "format": "", **data},
        content_type="multipart/form-data")


def rows(html: str) -> dict[int, tuple[str, str]]:
    return preview_rows(html)


def token_of(html: str) -> str | None:
    match = re.search(r'action="/lessons/import/([\w-]+)"', html)
    return match[1] if match else None


def preview_and_confirm(client, content: str) -> tuple[dict, int, dict]:
    """The preview's rows, then confirming (all or nothing): its status and, when
    refused, its rows. A file with nothing storable has no confirm button: the same
    confirmation is posted to the staged token found in the database."""
    response = upload(client, content)
    assert response.status_code == 200, response.status_code
    html = response.get_data(as_text=True)
    token = token_of(html) or latest_token(client)
    confirmed = client.post(f"/lessons/import/{token}")
    after = rows(confirmed.get_data(as_text=True)) if confirmed.status_code == 422 else {}
    return rows(html), confirmed.status_code, after


def latest_token(client) -> str:
    from lessons.models import StagedImport

    with client.application.app_context():
        return db.session.scalars(select(StagedImport.token).order_by(
            StagedImport.id.desc())).first()


def lesson_titled(app, start: str) -> Lesson:
    with app.app_context():
        lesson = db.session.scalar(select(Lesson).where(Lesson.title.startswith(start)))
        db.session.expunge(lesson)
        return lesson


def state(app, public_id: str) -> tuple:
    with app.app_context():
        lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == public_id))
        return (lesson.status, lesson.title, lesson.version, sorted(lesson.releasable_to))


DRAFT = "Reservists filled night liaison shifts"  # au.contributor's draft, AUS only
SUBMITTED = "No NZ liaison officer at brigade"  # au.contributor's, submitted, FVEY


# --- the attacks ---------------------------------------------------------------------------
def test_an_analyst_cannot_publish_someone_elses_draft(app, demo, login_as):
    draft = lesson_titled(app, DRAFT)
    before = state(app, draft.public_id)
    attack = line(external_id=f"MUS-{draft.public_id}", title=draft.title,
                  status="validated", releasable_to=["FVEY"])
    preview, confirmed, after = preview_and_confirm(login_as("au.analyst"), attack)
    assert preview == {1: ("rejected", REFUSED)}
    assert confirmed == 422 and after == preview
    assert state(app, draft.public_id) == before == ("draft", draft.title, 1, ["AUS"])
    assert login_as("ca.analyst").get(f"/lessons/{draft.public_id}").status_code == 404


def test_an_archived_lesson_cannot_be_reopened(app, demo, login_as, make_lesson):
    archived = make_lesson("au.contributor", "archived", analyst="au.analyst")
    before = state(app, archived.public_id)
    for status in ("validated", "submitted", "draft"):
        preview, confirmed, _ = preview_and_confirm(login_as("au.analyst"), line(
            external_id=f"MUS-{archived.public_id}", status=status))
        assert preview == {1: ("rejected", REFUSED)} and confirmed == 422
    assert state(app, archived.public_id) == before and before[0] == "archived"


def test_a_withdrawn_lesson_cannot_be_revived(app, demo, login_as, make_lesson):
    theirs = make_lesson("au.contributor", "withdrawn", releasable_to=["AUS"])
    preview, confirmed, _ = preview_and_confirm(login_as("au.analyst"), line(
        external_id=f"MUS-{theirs.public_id}", status="submitted"))
    assert preview == {1: ("rejected", REFUSED)} and confirmed == 422
    assert state(app, theirs.public_id)[0] == "withdrawn"
    # Its author's own withdrawn lesson is theirs to see, and still cannot come back.
    own = make_lesson("au.analyst", "withdrawn", releasable_to=["AUS"])
    preview, confirmed, _ = preview_and_confirm(login_as("au.analyst"), line(
        external_id=f"MUS-{own.public_id}", status="submitted"))
    assert preview[1][0] == "rejected" and "status: withdrawn to submitted" in preview[1][1]
    assert confirmed == 422 and state(app, own.public_id)[0] == "withdrawn"


def test_a_hidden_lesson_and_a_missing_one_get_the_same_answer(app, demo, login_as, runner,
                                                               tmp_path):
    draft = lesson_titled(app, DRAFT)
    # A lesson migrated from another system, not released to Australia.
    migrated = tmp_path / "us.jsonl"
    migrated.write_text(json.dumps(record(external_id="JLLIS-7", originator_nation="USA",
                                          releasable_to=["USA"], nations=["USA"])) + "\n")
    result = runner.invoke(args=["lessons", "import", str(migrated), "--as", "admin",
                                 "--as-migration"])
    assert result.exit_code == 0, result.output
    answers = {}
    for name, external_id in [("hidden draft", f"MUS-{draft.public_id}"),
                              ("no such lesson", "MUS-" + "Z" * len(draft.public_id)),
                              ("hidden foreign", "JLLIS-7"),
                              ("no such foreign", "JLLIS-8"),
                              ("someone else's namespace", "au.contributor:JLLIS-9")]:
        answers[name] = preview_and_confirm(login_as("au.analyst"), line(
            external_id=external_id, title=draft.title))
    assert len({json.dumps(a) for a in answers.values()}) == 1, answers
    assert answers["hidden draft"] == ({1: ("rejected", REFUSED)}, 422, {1: ("rejected",
                                                                             REFUSED)})
    # The importer's own namespace takes new lessons.
    preview, confirmed, _ = preview_and_confirm(login_as("au.analyst"), line(
        external_id="au.analyst:JLLIS-8"))
    assert preview == {1: ("created", "")} and confirmed == 302


# --- what an analyst may do ----------------------------------------------------------------
def test_an_analyst_updates_and_validates_a_submitted_lesson_of_their_nation(app, demo,
                                                                             login_as):
    lesson = lesson_titled(app, SUBMITTED)
    client = login_as("au.analyst")
    preview, confirmed, _ = preview_and_confirm(client, line(
        external_id=f"MUS-{lesson.public_id}", title="NZ liaison gap at brigade",
        releasable_to=["FVEY"]))
    assert preview == {1: ("updated", "")} and confirmed == 302
    assert state(app, lesson.public_id)[:2] == ("submitted", "NZ liaison gap at brigade")
    preview, confirmed, _ = preview_and_confirm(client, line(
        external_id=f"MUS-{lesson.public_id}", title="NZ liaison gap at brigade",
        releasable_to=["FVEY"], status="validated"))
    assert preview == {1: ("updated", "")} and confirmed == 302
    assert state(app, lesson.public_id)[0] == "validated"
    with app.app_context():
        entry = db.session.scalars(select(AuditRecord).where(
            AuditRecord.lesson_id == lesson.id).order_by(AuditRecord.id.desc())).first()
        assert (entry.action, entry.from_status, entry.to_status) == (
            "imported", "submitted", "validated")
        assert entry.actor.username == "au.analyst" and "migration" not in entry.comment


@pytest.mark.parametrize("start,to", [
    ("submitted", "learned"),  # needs evidence, which a file does not carry
    ("submitted", "draft"),  # a return needs a comment for the author
    ("submitted", "archived"),  # needs a reason
    ("validated", "submitted"),  # no such move
    ("learned", "validated"),  # no such move
])
def test_an_illegal_status_jump_is_refused(app, demo, login_as, make_lesson, start, to):
    lesson = make_lesson("au.contributor", start, analyst="au.analyst",
                         releasable_to=["AUS"])
    before = state(app, lesson.public_id)
    preview, confirmed, _ = preview_and_confirm(login_as("au.analyst"), line(
        external_id=f"MUS-{lesson.public_id}", status=to))
    assert preview[1][0] == "rejected"
    assert preview[1][1].startswith(f"status: {start.replace('_', ' ')} to {to} ")
    assert confirmed == 422 and state(app, lesson.public_id) == before


@pytest.mark.parametrize("status,outcome", [
    # validated: the importer wrote the new lesson, and nobody validates their own.
    ("draft", "created"), ("submitted", "created"), ("validated", "rejected"),
    ("withdrawn", "created"), ("learned", "rejected"), ("archived", "rejected"),
    ("rejected", "rejected"), ("action_assigned", "rejected"),
])
def test_a_new_lesson_starts_as_a_draft_and_moves_only_as_the_importer_could(
        app, demo, login_as, status, outcome):
    preview, _, _ = preview_and_confirm(login_as("au.analyst"), line(
        external_id="au.analyst:NEW-1", status=status))
    assert preview[1][0] == outcome, preview
    if status == "action_assigned":
        assert "needs an open action" in preview[1][1]
    elif outcome == "rejected":
        assert preview[1][1].startswith(f"status: draft to {status} ")
    with app.app_context():
        lesson = db.session.scalar(select(Lesson).where(
            Lesson.external_id == "au.analyst:NEW-1"))
        assert (lesson.status if lesson else "rejected") == (
            status if outcome == "created" else "rejected")


def test_a_new_lesson_with_an_open_action_may_be_action_assigned(app, demo, login_as):
    app.config["SELF_REVIEW_NATIONS"] = ["AUS"]  # its one analyst validates their own
    action = {"description": "Roster reservists", "owner_org": "1 Bde", "owner_nation": "AUS",
              "due_on": None, "status": "open"}
    preview, confirmed, _ = preview_and_confirm(login_as("au.analyst"), line(
        external_id="au.analyst:NEW-2", status="action_assigned", actions=[action]))
    assert preview == {1: ("created", "")} and confirmed == 302


# --- the command line ------------------------------------------------------------------------
def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(lines), "utf-8")
    return path


def test_the_cli_applies_the_web_rules_for_the_as_user(app, demo, runner, tmp_path):
    draft = lesson_titled(app, DRAFT)
    result = runner.invoke(args=["lessons", "import", str(write(tmp_path, line(
        external_id=f"MUS-{draft.public_id}", status="validated", releasable_to=["FVEY"]))),
        "--as", "au.analyst"])
    assert result.exit_code == 1
    assert f"error: line 1: {REFUSED}" in result.output
    assert state(app, draft.public_id)[0] == "draft"
    # A user who may not import through the web may not through the command line.
    result = runner.invoke(args=["lessons", "import", str(write(tmp_path, line())),
                                 "--as", "au.contributor"])
    assert result.exit_code == 2 and "Only analysts import lessons" in result.output


def test_a_migration_takes_statuses_as_is_and_is_audited_as_one(app, demo, runner, tmp_path,
                                                               make_lesson):
    archived = make_lesson("au.contributor", "archived", analyst="au.analyst")
    draft = lesson_titled(app, DRAFT)
    path = write(tmp_path, line(external_id=f"MUS-{archived.public_id}", status="validated"),
                 line(external_id="OLD-SYSTEM-1", status="learned", originator_nation="CAN",
                      releasable_to=["CAN"], nations=["CAN"]))
    result = runner.invoke(args=["lessons", "import", str(path), "--as-migration",
                                 "--as", "admin"])
    assert result.exit_code == 0, result.output
    assert "Imported 1 new, 1 updated" in result.output
    assert state(app, archived.public_id)[0] == "validated"
    with app.app_context():
        new = db.session.scalar(select(Lesson).where(Lesson.external_id == "OLD-SYSTEM-1"))
        assert (new.status, new.originator_nation) == ("learned", "CAN")
        comments = db.session.scalars(select(AuditRecord.comment).where(
            AuditRecord.action == "imported")).all()
        assert len(comments) == 2 and all(c.startswith("migration") for c in comments)
    # Refused for anyone but an administrator, and nothing is stored.
    for user in ("au.analyst", "au.contributor"):
        result = runner.invoke(args=["lessons", "import", str(write(tmp_path, line(
            external_id=f"MUS-{draft.public_id}", status="validated"))),
            "--as-migration", "--as", user])
        assert result.exit_code == 2
        assert "Only an administrator imports a migration" in result.output
    assert state(app, draft.public_id)[0] == "draft"


# --- a migration from the upload page --------------------------------------------------------
def test_an_administrator_imports_a_migration_from_the_upload_page(app, demo, login_as,
                                                                  make_lesson):
    archived = make_lesson("au.contributor", "archived", analyst="au.analyst")
    admin = login_as("admin")
    page = admin.get("/lessons/import")
    assert page.status_code == 200 and 'name="as_migration"' in page.get_data(as_text=True)
    content = line(external_id=f"MUS-{archived.public_id}", status="validated")
    # Without the migration box an administrator who is no analyst imports nothing.
    assert upload(admin, content).status_code == 422
    response = upload(admin, content, as_migration="y")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and rows(html) == {1: ("updated", "")}
    assert re.search(r'<input[^>]*name="as_migration"[^>]*value="y"', html)
    confirmed = admin.post(f"/lessons/import/{token_of(html)}", data={"as_migration": "y"})
    assert confirmed.status_code == 302
    assert state(app, archived.public_id)[0] == "validated"
    with app.app_context():
        entry = db.session.scalars(select(AuditRecord).where(
            AuditRecord.action == "imported")).one()
        assert entry.comment.startswith("migration") and entry.actor.username == "admin"


def test_an_analyst_cannot_ask_for_a_migration(app, demo, login_as, make_lesson):
    archived = make_lesson("au.contributor", "archived", analyst="au.analyst")
    analyst = login_as("au.analyst")
    assert 'name="as_migration"' not in analyst.get("/lessons/import").get_data(as_text=True)
    content = line(external_id=f"MUS-{archived.public_id}", status="validated")
    assert upload(analyst, content, as_migration="y").status_code == 403
    html = upload(analyst, content).get_data(as_text=True)
    token = token_of(html) or latest_token(analyst)
    assert analyst.post(f"/lessons/import/{token}",
                        data={"as_migration": "y", "skip_invalid": "y"}).status_code == 403
    assert state(app, archived.public_id)[0] == "archived"
