"""CSV beside JSON Lines: export and import from the command line and the analysts'
upload page (preview, then confirm), losslessly for awkward text, under the policy."""

from __future__ import annotations

import csv
import io
import json
import re
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lessons.extensions import db
from lessons.models import Lesson, StagedImport
from lessons.services import spreadsheet
from lessons.services.exchange import lesson_record
from tests.test_exchange import record

AWKWARD = {
    "external_id": "JLLIS-CSV-1",
    "title": 'Radios, "crypto" and the partner net',
    "observation": "Line one, with a comma.\nLine two with \"quotes\".\n\nLine four: Ünïcödé, "
                   "日本語, Ελληνικά, emoji 📻.",
    "discussion": "=SUM(A1:A9) would run in a spreadsheet",
    "conclusion": "'=already quoted looking",
    "recommendation": "-5 dB margin; +3 at night; @channel",
    "tags": ["radio", "crypto; keys", "net"],
}


@pytest.fixture
def people(make_user):
    make_user("gb.op", "GBR", ("contributor", "analyst", "admin"))
    make_user("gb.author", "GBR", ("contributor",))
    make_user("us.an", "USA", ("contributor", "analyst"))


def write_jsonl(path: Path, *items: dict) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), "utf-8")
    return path


def stored(app) -> list[dict]:
    with app.app_context():
        return [lesson_record(lesson) for lesson in db.session.scalars(
            select(Lesson).order_by(Lesson.external_id))]


def test_csv_round_trip_keeps_commas_quotes_newlines_and_non_ascii(app, runner, people,
                                                                    tmp_path):
    items = [record(**{**AWKWARD, "tags": ["radio", "net"]}),
             record(external_id="JLLIS-CSV-2", title="Plain", actions=[],
                    tags=[], nations=[], domains=[])]
    assert runner.invoke(args=["lessons", "import", str(write_jsonl(tmp_path / "in.jsonl",
                                                                     *items)),
                               "--as", "gb.op", "--as-migration"]).exit_code == 0
    before = stored(app)
    out = tmp_path / "out.csv"
    result = runner.invoke(args=["lessons", "export", str(out)])
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM for spreadsheets
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert list(rows[0]) == list(spreadsheet.COLUMNS)
    first = next(r for r in rows if r["external_id"] == "JLLIS-CSV-1")
    assert first["title"] == AWKWARD["title"] and first["tags"] == "net;radio"
    assert first["discussion"] == "'=SUM(A1:A9) would run in a spreadsheet"
    assert first["conclusion"] == "''=already quoted looking"
    result = runner.invoke(args=["lessons", "import", str(out), "--as", "gb.op", "--as-migration"])
    assert result.exit_code == 0, result.output
    assert "0 new, 0 updated, 2 unchanged" in result.output
    assert stored(app) == before


def test_csv_import_into_an_empty_database_recreates_the_lessons(app, runner, people,
                                                                 tmp_path):
    rows = [spreadsheet.header_line(), spreadsheet.row_line(record(**AWKWARD))]
    path = tmp_path / "lessons.csv"
    path.write_bytes("".join(rows).encode("utf-8"))
    result = runner.invoke(args=["lessons", "import", str(path), "--as", "gb.op", "--as-migration"])
    assert result.exit_code == 0, result.output
    (lesson,) = stored(app)
    for key in ("title", "observation", "discussion", "conclusion", "recommendation"):
        assert lesson[key] == AWKWARD[key], key
    # ";" separates list values, so a tag written with one becomes two tags.
    assert sorted(lesson["tags"]) == ["crypto", "keys", "net", "radio"]
    assert lesson["actions"][0]["description"] == "Publish the account process"


def test_bad_csv_rows_are_reported_by_line_and_nothing_is_stored(app, runner, people,
                                                                 tmp_path):
    good = spreadsheet.row_line(record(external_id="OK-1"))
    bad = spreadsheet.row_line(record(external_id="BAD-1", kind="rumour", observed_on="soon"))
    path = tmp_path / "mixed.csv"
    path.write_text(spreadsheet.header_line() + good + bad + "a,b\n", "utf-8")
    result = runner.invoke(args=["lessons", "import", str(path), "--as", "gb.op", "--as-migration"])
    assert result.exit_code == 1
    assert "line 3: kind" in result.output and "line 3: observed_on" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Lesson)) == 0


def test_csv_import_takes_a_field_map(app, runner, people, tmp_path):
    path = tmp_path / "foreign.csv"
    path.write_text("Subject,Obs,Recs,Keywords\nLate keys,Keys came late,Order early,"
                    "crypto;keys\n", "utf-8")
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"rename": {"Subject": "title", "Obs": "observation",
                                              "Recs": "recommendation", "Keywords": "tags"}}))
    result = runner.invoke(args=["lessons", "import", str(path), "--as", "gb.op", "--as-migration",
                                 "--map", str(mapping)])
    assert result.exit_code == 0, result.output
    (lesson,) = stored(app)
    assert lesson["title"] == "Late keys" and lesson["tags"] == ["crypto", "keys"]


# --- the upload page ---------------------------------------------------------------------
def upload(client, content: str, filename: str = "lessons.csv"):
    return client.post("/lessons/import", data={
        "file": (io.BytesIO(content.encode("utf-8")), filename), "format": ""},
        content_type="multipart/form-data")


def preview_rows(html: str) -> dict[int, tuple[str, str]]:
    rows = re.findall(r'<tr class="outcome-(\w+)" data-line="(\d+)">'
                      r'.*?<td data-label="Why">([^<]*)</td></tr>', html, re.S)
    return {int(line): (outcome, unescape(why)) for outcome, line, why in rows}


def external_id_of(app, public_id: str) -> str:
    with app.app_context():
        return db.session.scalar(select(Lesson.external_id).where(
            Lesson.public_id == public_id))


def test_the_upload_page_previews_then_imports_on_confirmation(app, people, login_as,
                                                               make_lesson):
    existing = make_lesson("gb.author", "submitted")
    existing_external = external_id_of(app, existing.public_id)
    content = (spreadsheet.header_line()
               # submitted: the importer may not validate a lesson they write themselves
               + spreadsheet.row_line(record(external_id="gb.op:NEW-1", originator_nation="",
                                             status="submitted"))
               + spreadsheet.row_line(record(external_id=existing_external,
                                             originator_nation="", title="Retitled"))
               + spreadsheet.row_line(record(external_id="BAD-1", kind="rumour",
                                             originator_nation="")))
    client = login_as("gb.op")
    response = upload(client, content)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    rows = preview_rows(html)
    assert rows[2][0] == "created" and rows[3][0] == "updated"
    assert rows[4][0] == "rejected" and "kind: must be one of" in rows[4][1]
    with app.app_context():  # a preview stores nothing
        assert db.session.scalar(select(func.count()).select_from(Lesson)) == 1
        assert db.session.scalar(select(Lesson.title)) != "Retitled"
    token = re.search(r'action="/lessons/import/([\w-]+)"', html)[1]
    # Confirming while a line is rejected stores nothing unless asked to skip it.
    assert client.post(f"/lessons/import/{token}").status_code == 422
    response = client.post(f"/lessons/import/{token}", data={"skip_invalid": "y"})
    assert response.status_code == 302
    with app.app_context():
        titles = sorted(db.session.scalars(select(Lesson.title)))
        assert titles == sorted([record()["title"], "Retitled"])
        assert db.session.scalar(select(func.count()).select_from(StagedImport)) == 0
    assert client.post(f"/lessons/import/{token}", data={"skip_invalid": "y"}
                       ).status_code == 404


def test_an_analyst_imports_only_their_own_nations_lessons(app, people, login_as,
                                                           make_lesson):
    theirs = make_lesson("us.an", "submitted")
    external = external_id_of(app, theirs.public_id)
    content = (spreadsheet.header_line()
               + spreadsheet.row_line(record(external_id="X-1", originator_nation="USA"))
               + spreadsheet.row_line(record(external_id=external, originator_nation="")))
    rows = preview_rows(upload(login_as("gb.op"), content).get_data(as_text=True))
    assert rows[2] == ("rejected", "originator_nation: you may import lessons of GBR only")
    assert rows[3] == ("rejected", "external_id: names no lesson you may update (a new "
                                   "lesson's external_id must be empty or begin with gb.op:)")


def test_only_analysts_reach_the_upload_page(app, people, login_as):
    client = login_as("gb.author")
    assert client.get("/lessons/import").status_code == 403
    assert upload(client, spreadsheet.header_line()).status_code == 403


def test_an_unreadable_upload_is_refused_with_a_message(app, people, login_as):
    client = login_as("gb.op")
    response = client.post("/lessons/import", data={
        "file": (io.BytesIO(b"\xff\xfe\x00bad"), "x.csv")}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "Not UTF-8 text" in response.get_data(as_text=True)
    response = client.post("/lessons/import", data={
        "file": (io.BytesIO(b"title\nA\x00B\n"), "x.csv")}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "NUL characters" in response.get_data(as_text=True)
    response = client.post("/lessons/import", data={}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "Choose a file to upload." in response.get_data(as_text=True)


def test_the_search_download_as_csv_holds_only_what_the_user_may_see(app, people, login_as,
                                                                     make_lesson):
    make_lesson("gb.author", "submitted", title="Visible to GBR")
    make_lesson("us.an", "submitted", title="USA eyes only")
    response = login_as("gb.op").get("/search/export?q=*&format=csv")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert [row["title"] for row in rows] == ["Visible to GBR"]
