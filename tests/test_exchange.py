"""The JSON Lines exchange format: `flask lessons import` and `flask lessons export`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lessons import search
from lessons.extensions import db
from lessons.models import AuditRecord, Lesson, User

ROOT = Path(__file__).resolve().parent.parent
# The shared data folder sits beside the checkout; a clone elsewhere (CI) names it with
# MUSTER_SHARED_DATA, or finds the workplace's copy.
_DATA_DIRS = [Path(os.environ["MUSTER_SHARED_DATA"])] if os.environ.get("MUSTER_SHARED_DATA") \
    else [ROOT.parent / "shared" / "data", Path("/work/shared/data")]
NASA = next((d / "nasa_llis.jsonl" for d in _DATA_DIRS if (d / "nasa_llis.jsonl").exists()),
            _DATA_DIRS[0] / "nasa_llis.jsonl")


def record(**overrides) -> dict:
    data = {
        "external_id": "JLLIS-0001",
        "title": "Coalition chat unreachable for partner LNOs",
        "observation": "Partner liaison officers had no accounts on the chat server.",
        "discussion": "Accounts took two weeks.",
        "conclusion": "Access must be arranged early.",
        "recommendation": "Request accounts at the initial planning conference.",
        "kind": "workaround",
        "friction": "No partner accounts",
        "workaround": "Runners carried printed updates",
        "limits": "Slow; nothing after dark",
        "permanence": "interim",
        "source_event": "Exercise SOUTHERN JACKAL 2025",
        "observed_on": "2025-07-14",
        "location": "Shoalwater Bay",
        "unit": "1 Brigade HQ",
        "domains": ["policy", "training"],
        "functions": ["command_control"],
        "tags": ["liaison", "mission-network"],
        "nations": ["AUS", "GBR"],
        "originator_nation": "GBR",
        "classification": "UNCLASSIFIED",
        "releasable_to": ["AUS", "GBR"],
        "status": "validated",
        "actions": [{"description": "Publish the account process", "owner_org": "HQ 1 Div",
                     "owner_nation": "GBR", "due_on": "2026-03-01", "status": "open"}],
    }
    data.update(overrides)
    return data


def write_lines(path: Path, *items) -> Path:
    path.write_text("".join((item if isinstance(item, str) else json.dumps(item)) + "\n"
                            for item in items), "utf-8")
    return path


@pytest.fixture
def importer(make_user):
    make_user("gb.op", "GBR", ("contributor", "analyst", "admin"))
    make_user("au.user", "AUS")


def run_import(runner, path: Path, *extra: str):
    """An operator's migration: these tests are about the format, not the importer's
    rights (tests/test_import_policy.py)."""
    return runner.invoke(args=["lessons", "import", str(path), "--as", "gb.op",
                               "--as-migration", *extra])


def count(app, model=Lesson) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_import_stores_every_field_and_indexes_it(app, runner, importer, tmp_path):
    result = run_import(runner, write_lines(tmp_path / "in.jsonl", record()))
    assert result.exit_code == 0, result.output
    assert "Imported 1 new, 0 updated, 0 unchanged; 0 line(s) rejected." in result.output
    with app.app_context():
        lesson = db.session.scalar(select(Lesson))
        assert lesson.external_id == "JLLIS-0001" and lesson.status == "validated"
        assert lesson.releasable_to == ["AUS", "GBR"] and lesson.tags == [
            "liaison", "mission-network"]
        assert lesson.actions[0].owner_nation == "GBR"
        assert lesson.author.username == "gb.op"
        audit = db.session.scalars(select(AuditRecord.action).where(
            AuditRecord.lesson_id == lesson.id)).all()
        assert audit == ["imported"]
        au = db.session.scalar(select(User).where(User.username == "au.user"))
        assert search.matching_ids(au, "runners") == [lesson.id]
        assert search.check().clean


@pytest.mark.parametrize("bad_line,field,reason", [
    ("{not json", "(line)", "invalid JSON"),
    ("[1, 2]", "(line)", "must be a JSON object"),
    (json.dumps(record(nations=["GBR", "XYZ"])), "nations", "Unknown nation or group: XYZ"),
    (json.dumps(record(originator_nation="XYZ")), "originator_nation", "unknown nation"),
    (json.dumps(record(domains=["logistics"])), "domains", "Unknown: logistics"),
    (json.dumps(record(kind="anecdote")), "kind", "must be one of"),
    (json.dumps(record(title="")), "title", "Required"),
    (json.dumps(record(observation=None)), "observation", "Required"),
    (json.dumps(record(recommendation="")), "recommendation", "Required before"),
    (json.dumps(record(title="x" * 301)), "title", "At most 300 characters"),
    (json.dumps(record(observation="o" * 50_001)), "observation", "At most 50,000"),
    (json.dumps(record(observed_on="14/07/2025")), "observed_on", "is not a date"),
    (json.dumps(record(tags="liaison")), "tags", "must be a JSON array of strings"),
    (json.dumps(record(status="approved")), "status", "must be one of"),
    (json.dumps(record(colour="green")), "colour", "unknown field"),
    (json.dumps(record(actions=[{"description": ""}])), "actions[1].description", "Required"),
])
def test_a_bad_line_between_good_ones_stores_nothing(app, runner, importer, tmp_path,
                                                     bad_line, field, reason):
    path = write_lines(tmp_path / "in.jsonl", record(external_id="A-1"), bad_line,
                       record(external_id="A-3"))
    result = run_import(runner, path)
    assert result.exit_code == 1
    assert f"error: line 2: {field}: " in result.output
    assert reason in result.output
    assert "Nothing imported: 1 line(s) rejected" in result.output
    assert count(app) == 0
    with app.app_context():
        _, ix = search.store().open()
        assert ix.doc_count() == 0


def test_every_bad_line_is_reported(runner, importer, tmp_path):
    path = write_lines(tmp_path / "in.jsonl", record(title=""), record(external_id="B",
                       kind="x", observed_on="yesterday"), record(external_id="C"))
    result = run_import(runner, path)
    assert "line 1: title" in result.output
    assert "line 2: kind" in result.output and "line 2: observed_on" in result.output
    assert "line 3" not in result.output


def test_skip_invalid_stores_the_good_lines_and_reports_the_rest(app, runner, importer,
                                                                 tmp_path):
    path = write_lines(tmp_path / "in.jsonl", record(external_id="A-1"), "{oops",
                       record(external_id="A-3", title=""), record(external_id="A-4"))
    result = run_import(runner, path, "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "Imported 2 new" in result.output and "2 line(s) rejected" in result.output
    assert "line 2: (line): invalid JSON" in result.output
    assert "line 3: title: Required." in result.output
    assert count(app) == 2


def test_reimport_updates_the_same_lesson_as_a_new_version(app, runner, importer, tmp_path):
    run_import(runner, write_lines(tmp_path / "a.jsonl", record()))
    result = run_import(runner, write_lines(tmp_path / "b.jsonl",
                                            record(title="Chat access arranged too late")))
    assert "Imported 0 new, 1 updated" in result.output
    with app.app_context():
        lesson = db.session.scalar(select(Lesson))
        assert lesson.title == "Chat access arranged too late" and lesson.version == 2
        history = db.session.scalars(select(AuditRecord).where(
            AuditRecord.lesson_id == lesson.id).order_by(AuditRecord.id)).all()
        assert [h.action for h in history] == ["imported", "imported"]
        assert history[1].changes == ["title"]
    assert count(app) == 1


def test_reimporting_the_same_file_changes_nothing(app, runner, importer, tmp_path):
    path = write_lines(tmp_path / "in.jsonl", record(), record(external_id="X-2"))
    run_import(runner, path)
    result = run_import(runner, path)
    assert "Imported 0 new, 0 updated, 2 unchanged" in result.output
    assert count(app) == 2
    with app.app_context():
        assert set(db.session.scalars(select(Lesson.version))) == {1}


def test_duplicate_external_ids_in_one_file_are_refused(runner, importer, tmp_path):
    result = run_import(runner, write_lines(tmp_path / "in.jsonl", record(), record()))
    assert "line 2: external_id: repeats line 1" in result.output


def test_export_then_import_is_lossless(app, runner, importer, tmp_path, make_lesson):
    run_import(runner, write_lines(tmp_path / "in.jsonl", record(),
                                   record(external_id="X-2", kind="lesson", friction="",
                                          workaround="", limits="", permanence="",
                                          observed_on=None, actions=[], status="draft")))
    make_lesson("gb.op", "draft", title="Born in Muster", releasable_to=["FVEY"])
    first = tmp_path / "first.jsonl"
    assert runner.invoke(args=["lessons", "export", str(first)]).exit_code == 0
    exported = [json.loads(line) for line in first.read_text("utf-8").splitlines()]
    assert len(exported) == 3
    assert exported[2]["external_id"].startswith("MUS-")
    with app.app_context():
        from tests.conftest import clear_data

        clear_data()  # an empty system (reference data stays)
    runner.invoke(args=["users", "create", "gb.op", "--nation", "GBR", "--roles", "admin",
                        "--password-stdin"], input="long enough pw\n")
    result = run_import(runner, first)
    assert result.exit_code == 0, result.output
    second = tmp_path / "second.jsonl"
    runner.invoke(args=["lessons", "export", str(second)])
    assert second.read_text("utf-8") == first.read_text("utf-8")


def test_export_as_a_user_holds_only_what_they_may_see(runner, importer, tmp_path):
    run_import(runner, write_lines(tmp_path / "in.jsonl", record(external_id="SEEN"),
                                   record(external_id="HIDDEN", releasable_to=["GBR"])))
    out = tmp_path / "au.jsonl"
    result = runner.invoke(args=["lessons", "export", str(out), "--as", "au.user"])
    assert result.exit_code == 0
    assert [json.loads(x)["external_id"] for x in out.read_text().splitlines()] == ["SEEN"]


def test_import_needs_an_existing_user(runner, tmp_path):
    result = runner.invoke(args=["lessons", "import", str(write_lines(
        tmp_path / "in.jsonl", record())), "--as", "ghost"])
    assert result.exit_code == 2 and "no active user 'ghost'" in result.output


def test_map_renames_joins_and_sets_defaults(app, runner, importer, tmp_path):
    field_map = tmp_path / "map.json"
    field_map.write_text(json.dumps({
        "rename": {"headline": "title", "ref": "external_id", "when": "observed_on"},
        "join": {"observation": ["what", "why"]},
        "defaults": {"kind": "lesson", "releasable_to": ["FVEY"], "originator_nation": "AUS"},
        "ignore_unknown": True,
    }))
    path = write_lines(tmp_path / "in.jsonl", {
        "ref": "F-1", "headline": "Fuel nozzle mismatch", "what": "Nozzles differed.",
        "why": "Different standards.", "when": "2024-02-03", "colour": "ignored"})
    result = run_import(runner, path, "--map", str(field_map))
    assert result.exit_code == 0, result.output
    with app.app_context():
        lesson = db.session.scalar(select(Lesson))
        assert lesson.external_id == "F-1" and lesson.title == "Fuel nozzle mismatch"
        assert lesson.observation == "Nozzles differed.\n\nDifferent standards."
        assert lesson.originator_nation == "AUS" and lesson.status == "draft"
        assert lesson.releasable_to == ["AUS", "CAN", "GBR", "NZL", "USA"]


def test_a_malformed_map_is_refused_clearly(runner, importer, tmp_path):
    field_map = tmp_path / "map.json"
    field_map.write_text(json.dumps({"rename": {"x": "colour"}}))
    result = run_import(runner, write_lines(tmp_path / "in.jsonl", record()),
                        "--map", str(field_map))
    assert result.exit_code == 2
    assert "map targets unknown contract keys: colour" in result.output


@pytest.mark.skipif(not NASA.exists(), reason=f"{NASA} is not present on this machine")
def test_nasa_llis_records_import_with_the_shipped_map(app, runner, importer):
    result = run_import(runner, NASA, "--map", str(ROOT / "maps" / "nasa-llis.json"),
                        "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "Imported 1071 new, 0 updated, 0 unchanged; 1 line(s) rejected." in result.output
    assert "error: line 452: title: Required." in result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "gb.op"))
        ids = search.matching_ids(user, "inverter mounting screws torque")
        titles = db.session.scalars(select(Lesson.title).where(Lesson.id.in_(ids))).all()
        assert ("Implementation of Procedural Controls in Additional Procedures Beyond the "
                "Procedure Under Investigation and Correction") in titles
        lesson = db.session.scalar(select(Lesson).where(Lesson.external_id == "llis-1"))
        assert lesson.observed_on.isoformat() == "1991-04-09" and lesson.unit == "JSC"
        assert search.check().clean


def test_without_as_the_one_active_admin_submits(app, runner, make_user, tmp_path):
    path = write_lines(tmp_path / "in.jsonl", record())
    result = runner.invoke(args=["lessons", "import", str(path)])
    assert result.exit_code == 2 and "--as USERNAME" in result.output
    assert "active admins: none" in result.output and count(app) == 0
    make_user("ops.admin", "CAN", ("admin",))
    result = runner.invoke(args=["lessons", "import", str(path)])
    assert result.exit_code == 2 and "Only analysts import lessons" in result.output
    result = runner.invoke(args=["lessons", "import", str(path), "--as-migration"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        lesson = db.session.scalar(select(Lesson))
        assert lesson.author.username == "ops.admin"
    make_user("second.admin", "GBR", ("admin",))
    result = runner.invoke(args=["lessons", "import", str(path), "--as-migration"])
    assert result.exit_code == 2 and "ops.admin, second.admin" in result.output


def test_a_nul_character_is_reported_not_stored(app, runner, importer, tmp_path):
    path = tmp_path / "nul.jsonl"
    path.write_text(json.dumps(record(title="Bad\u0000title")) + "\n", "utf-8")
    result = run_import(runner, path)
    assert result.exit_code == 1
    assert "line 1: title: holds a NUL character" in result.output
    assert count(app) == 0


def test_an_unpaired_surrogate_is_reported_not_stored(app, runner, importer, tmp_path):
    """JSON may escape half a surrogate pair; no UTF-8 database column can hold it."""
    path = tmp_path / "surrogate.jsonl"
    path.write_text(json.dumps(record(tags=["liaison", "half \ud800 a pair"])) + "\n", "utf-8")
    result = run_import(runner, path)
    assert result.exit_code == 1
    assert "line 1: tags: holds a NUL character or an unpaired surrogate" in result.output
    assert count(app) == 0
