"""Readable spreadsheets: search results and read-ahead packets as .xlsx, downloaded
through HTTP and opened with openpyxl as a staff's spreadsheet program would; and the
packet CSV's workaround columns."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import UTC, date, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from lessons.extensions import db
from lessons.models import AuditRecord, Exercise, User
from lessons.services import workbooks
from tests import test_exercises as exercises

people = exercises.people
create = exercises.create

HEADERS = ["Title", "Kind", "Status", "Observed", "Originator", "REL TO", "Observation",
           "Discussion", "Recommendation", "Friction", "What was done", "Limits",
           "Permanence", "Remedial actions", "Link"]
HEADING_ROW = 6
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

WORKAROUND = {
    "title": "Mission network chat relayed through the LNO laptop",
    "kind": "workaround",
    "friction": "Partner LNOs had no account on the mission network chat.",
    "workaround": "The GBR LNO relayed messages from his own laptop.",
    "limits": "One laptop, one operator; nothing after 2200.",
    "permanence": "interim",
    "observation": "AUS liaison officers could not join the mission network chat.",
    "discussion": "Accounts needed a national clearance check.",
    "recommendation": "Request partner accounts at the initial planning conference.",
}
FORMULAS = {
    "title": '=HYPERLINK("http://example.invalid","mission network")',
    "observation": "+44 20 7946 0000 was the only mission network number",
    "discussion": "-5 dB margin on the mission network link",
    "recommendation": "@channel check the mission network plan",
}


@pytest.fixture
def world(app, people, make_user, make_lesson, login_as):
    """Lessons by gb.author, validated by gb.an, all about the mission network: a
    workaround, one with remedial actions (one with owner and due date) and very long
    discussion, one whose text looks like formulas, all releasable to USA; and one
    RESTRICTED lesson GBR alone may see."""
    app.config["CLASSIFICATIONS"] = ["UNCLASSIFIED", "RESTRICTED"]
    make_user("au.reader", "AUS", ("contributor",))
    workaround = make_lesson("gb.author", "validated", analyst="gb.an",
                             releasable_to=["USA", "AUS"], **WORKAROUND)
    actions = make_lesson("gb.author", "action_assigned", analyst="gb.an",
                          releasable_to=["USA", "AUS"],
                          title="Mission network accounts were late",
                          discussion="Long. " * 7_000)
    with app.app_context():
        from lessons.services import lessons as lesson_service

        analyst = db.session.scalar(select(User).where(User.username == "gb.an"))
        lesson_service.add_action(analyst, actions.public_id, {
            "description": "Train the G6 cell on partner accounts", "owner_org": "1 Div G6",
            "owner_nation": "GBR", "due_on": date(2027, 1, 31)})
    formulas = make_lesson("gb.author", "validated", analyst="gb.an",
                           releasable_to=["USA"], **FORMULAS)
    hidden = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=[],
                         classification="RESTRICTED",
                         title="GBR eyes only: mission network keys")
    return {"workaround": workaround.public_id, "actions": actions.public_id,
            "formulas": formulas.public_id, "hidden": hidden.public_id}


def opened(response):
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == XLSX
    book = load_workbook(io.BytesIO(response.get_data()))
    return book.active


def table(ws, width: int = len(HEADERS)) -> list[list]:
    """The lesson rows under the column headings, up to the gap before the last marking."""
    rows = []
    for row in ws.iter_rows(min_row=HEADING_ROW + 1, max_col=width):
        if all(cell.value is None for cell in row):
            break
        rows.append(list(row))
    return rows


def filename(response) -> str:
    match = re.fullmatch(r'attachment; filename="([^"]+)"',
                         response.headers["Content-Disposition"])
    assert match, response.headers["Content-Disposition"]
    return match.group(1)


def export_audits(app) -> list[tuple[str, str, int | None]]:
    with app.app_context():
        return [(r.actor.username, r.comment, r.exercise_id) for r in db.session.scalars(
            select(AuditRecord).where(AuditRecord.action == "export")
            .order_by(AuditRecord.id))]


def assert_fresh(line: str, who: str) -> None:
    match = re.fullmatch(rf"Downloaded by {re.escape(who)} on (\S+) at (\d\d:\d\d) UTC", line)
    assert match, line
    when = datetime.strptime(f"{match.group(1)} {match.group(2)}", "%Y-%m-%d %H:%M")
    now = datetime.now(UTC).replace(tzinfo=None)
    assert now - timedelta(minutes=5) <= when <= now


# --- search results -------------------------------------------------------------------------
def test_search_workbook_has_its_heading_block_columns_and_one_row_a_visible_lesson(
        app, world, login_as):
    response = login_as("us.planner").get("/search/export?q=mission+network&format=xlsx")
    ws = opened(response)
    assert ws["A1"].value == "UNCLASSIFIED // REL TO GBR, USA"
    assert ws["A2"].value == "Search results for \u201cmission network\u201d"
    assert_fresh(ws["A3"].value, "us.planner (USA)")
    assert ws["A4"].value == "3 lessons"
    assert [c.value for c in ws[HEADING_ROW]][:len(HEADERS)] == HEADERS
    assert ws.freeze_panes == f"A{HEADING_ROW + 1}"
    assert ws.auto_filter.ref == f"A{HEADING_ROW}:O{HEADING_ROW + 3}"
    assert ws.column_dimensions["A"].width >= 30
    assert ws.column_dimensions["G"].width >= 40
    rows = table(ws)
    assert len(rows) == 3
    by_title = {row[0].value: row for row in rows}
    assert "GBR eyes only: mission network keys" not in by_title
    every_cell = " ".join(str(c.value) for row in ws.iter_rows() for c in row)
    assert world["hidden"] not in every_cell and "eyes only" not in every_cell
    # The marking again below the rows, and on every printed page.
    assert ws.cell(row=HEADING_ROW + 5, column=1).value == "UNCLASSIFIED // REL TO GBR, USA"
    assert ws.oddHeader.center.text == "UNCLASSIFIED // REL TO GBR, USA"
    assert ws.oddFooter.right.text == "Page &P of &N"

    values = [c.value for c in by_title[WORKAROUND["title"]]]
    observed = values[3]
    assert (observed.date() if isinstance(observed, datetime) else observed) == date(2025, 7, 14)
    assert values[:3] == [WORKAROUND["title"], "Workaround", "Validated"]
    assert values[4:] == [
        "GBR", "AUS, GBR, USA", WORKAROUND["observation"], WORKAROUND["discussion"],
        WORKAROUND["recommendation"], WORKAROUND["friction"], WORKAROUND["workaround"],
        WORKAROUND["limits"], "Interim", None,
        f"http://localhost/lessons/{world['workaround']}"]
    link = by_title[WORKAROUND["title"]][14]
    assert link.hyperlink.target == f"http://localhost/lessons/{world['workaround']}"
    assert by_title[WORKAROUND["title"]][6].alignment.wrap_text

    actions = [c.value for c in by_title["Mission network accounts were late"]]
    assert actions[1:3] == ["Lesson", "Action assigned"]
    assert actions[9:13] == [None] * 4  # not a workaround: no workaround fields
    assert actions[13].split("\n") == [
        "Fix the process (owner: not named; no due date; open)",
        "Train the G6 cell on partner accounts (owner: 1 Div G6, GBR; due 2027-01-31; open)"]
    # Longer than a spreadsheet cell holds: cut, and said so.
    assert len(actions[7]) == workbooks.CELL_MAX
    assert actions[7].endswith("(cut here: the full text is on the lesson's page)")


def test_formula_looking_text_stays_text(app, world, login_as):
    response = login_as("us.planner").get("/search/export?q=mission+network&format=xlsx")
    ws = opened(response)
    row = next(r for r in table(ws) if r[0].value == FORMULAS["title"])
    for cell, key in zip(row[0:1] + row[6:9],
                         ("title", "observation", "discussion", "recommendation"), strict=True):
        assert cell.value == FORMULAS[key]
        assert cell.data_type == "s"
        assert cell.quotePrefix
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "<f " not in sheet


def test_a_user_of_the_originator_nation_sees_the_hidden_lesson_and_a_marking_to_match(
        app, world, login_as):
    ws = opened(login_as("gb.an").get("/search/export?q=mission+network&format=xlsx"))
    titles = [row[0].value for row in table(ws)]
    assert len(titles) == 4 and "GBR eyes only: mission network keys" in titles
    # The highest classification among the rows, released only where every row is.
    assert ws["A1"].value == "RESTRICTED // REL TO GBR"


def test_search_workbook_file_name_and_audit(app, world, login_as):
    client = login_as("us.planner")
    today = datetime.now(UTC).date().isoformat()
    response = client.get("/search/export?q=Mission+network!&format=xlsx")
    assert filename(response) == f"muster-search-mission-network-{today}.xlsx"
    assert response.headers["Cache-Control"] == "no-store"  # like every other export
    response = client.get("/search/export?status=validated&kind=workaround&format=xlsx")
    assert filename(response) == f"muster-search-all-{today}.xlsx"
    ws = opened(response)
    assert ws["A2"].value == ("Search results for every lesson, filtered by Kind: "
                              "Workaround; Status: Validated")
    assert ws["A4"].value == "1 lesson"
    assert export_audits(app)[-2:] == [("us.planner", "search results: 3 lessons, xlsx", None),
                                       ("us.planner", "search results: 1 lesson, xlsx", None)]


def test_search_page_links_to_the_workbook(app, world, login_as):
    html = login_as("us.planner").get("/search?q=mission+network").get_data(as_text=True)
    assert 'href="/search/export?q=mission+network&amp;format=xlsx"' in html


def test_the_workbook_of_an_empty_search_is_marked_and_holds_no_row(app, world, login_as):
    ws = opened(login_as("us.planner").get("/search/export?q=zebra+quokka&format=xlsx"))
    assert ws["A1"].value == "UNCLASSIFIED"
    assert ws["A4"].value == "0 lessons"
    assert table(ws) == []


def test_the_base_url_setting_makes_the_links(app, world, login_as):
    app.config["BASE_URL"] = "https://muster.example"
    ws = opened(login_as("us.planner").get("/search/export?q=mission+network&format=xlsx"))
    links = sorted(row[14].value for row in table(ws))
    assert links == sorted(f"https://muster.example/lessons/{world[key]}"
                           for key in ("workaround", "actions", "formulas"))


# --- packets ----------------------------------------------------------------------------------
@pytest.fixture
def packet(app, world, create, login_as, make_lesson):
    """An exercise of USA, GBR and AUS with three accepted lessons at the initial
    planning conference: the workaround and the one with actions (releasable to all
    three) and one releasable to USA only (withheld from an AUS audience)."""
    narrow = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["USA"],
                         title="Narrow: crypto keys arrived late")
    public_id = create(planners="gb.planner, au.planner")
    gb = login_as("gb.planner")
    with app.app_context():
        exercise = db.session.scalar(select(Exercise).where(Exercise.public_id == public_id))
        objective = exercise.objectives[0].public_id
        due = exercise.milestone("initial_planning_conference").due_on
    for lesson in (world["workaround"], world["actions"], narrow.public_id):
        assert exercises.attach(gb, public_id, lesson,
                                objective=objective).status_code == 302
        exercises.walk(gb, public_id, lesson, "accepted")
    return {"id": public_id, "due": due, "narrow": narrow.public_id}


def test_packet_workbook_holds_the_packet_as_the_audience_may_read_it(app, packet, world,
                                                                      login_as):
    url = f"/exercises/{packet['id']}/packet?milestone=initial_planning_conference"
    response = login_as("au.planner").get(url + "&format=xlsx")
    ws = opened(response)
    assert ws["A1"].value == "UNCLASSIFIED // REL TO AUS, GBR, USA"
    assert ws["A2"].value == ("Read-ahead packet: Exercise SOUTHERN JACKAL 2027, Initial "
                              f"planning conference ({packet['due'].isoformat()}), for "
                              "AUS, GBR, USA")
    assert_fresh(ws["A3"].value, "au.planner (AUS)")
    assert ws["A4"].value == "2 lessons"
    assert [c.value for c in ws[HEADING_ROW]][:len(HEADERS) + 1] == ["Objective", *HEADERS]
    rows = table(ws, len(HEADERS) + 1)
    assert sorted(row[1].value for row in rows) == sorted(
        [WORKAROUND["title"], "Mission network accounts were late"])
    assert {row[0].value for row in rows} == {"Objective 1: Exchange liaison officers on day one"}
    every_cell = " ".join(str(c.value) for row in ws.iter_rows() for c in row)
    assert packet["narrow"] not in every_cell and "Narrow" not in every_cell
    workaround = next(row for row in rows if row[1].value == WORKAROUND["title"])
    assert [c.value for c in workaround[10:14]] == [
        WORKAROUND["friction"], WORKAROUND["workaround"], WORKAROUND["limits"], "Interim"]
    assert workaround[15].hyperlink.target == f"http://localhost/lessons/{world['workaround']}"
    today = datetime.now(UTC).date().isoformat()
    assert filename(response) == ("muster-packet-exercise-southern-jackal-2027-initial-"
                                  f"planning-conference-{today}.xlsx")
    with app.app_context():
        exercise_id = db.session.scalar(select(Exercise.id).where(
            Exercise.public_id == packet["id"]))
    assert export_audits(app)[-1] == (
        "au.planner", "read-ahead packet initial_planning_conference for AUS, GBR, USA: "
                      "2 lessons, xlsx", exercise_id)


def test_packet_page_links_to_the_workbook_and_a_stranger_audience_is_refused(
        app, packet, login_as):
    client = login_as("gb.planner")
    url = f"/exercises/{packet['id']}/packet?milestone=initial_planning_conference"
    html = client.get(url).get_data(as_text=True)
    assert "format=xlsx" in html and "Download spreadsheet (.xlsx)" in html
    response = client.get(url + "&audience=FRA&format=xlsx")
    assert response.status_code == 422
    ws = opened(client.get(url + "&audience=GBR,USA&format=xlsx"))
    assert ws["A1"].value == "UNCLASSIFIED // REL TO GBR, USA"
    assert len(table(ws, len(HEADERS) + 1)) == 3


def test_packet_csv_holds_the_workaround_fields(app, packet, login_as):
    url = f"/exercises/{packet['id']}/packet?milestone=initial_planning_conference"
    response = login_as("gb.planner").get(url + "&format=csv")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    header = rows[1]
    for key in ("friction", "workaround", "limits", "permanence"):
        assert key in header
    records = [dict(zip(header, row, strict=True)) for row in rows[2:-1]]
    workaround = next(r for r in records if r["title"] == WORKAROUND["title"])
    assert {key: workaround[key] for key in ("friction", "workaround", "limits",
                                             "permanence")} == {
        key: WORKAROUND[key] for key in ("friction", "workaround", "limits", "permanence")}
    plain = next(r for r in records if r["title"] == "Mission network accounts were late")
    assert plain["friction"] == plain["workaround"] == plain["permanence"] == ""
