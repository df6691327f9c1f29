"""Trends at /dashboard: every figure equals a count taken straight from the database
over the lessons the viewer may see (``policy.can_view``, in Python, not the SQL the
page uses), a lesson the viewer may not see moves no figure, every chart has its data
table, nothing comes from another host, and the filters narrow the figures or, when
not allowed, are left out with a message.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import lxml.html
import pytest
from sqlalchemy import select

from lessons import charts, policy
from lessons.extensions import db
from lessons.models import (
    AuditRecord,
    Exercise,
    ExerciseLesson,
    Lesson,
    ReleaseRequest,
    User,
)
from lessons.models.base import utcnow
from lessons.rules import DOMAIN_LABELS, KIND_LABELS, STATUS_LABELS
from lessons.services import lessons as lesson_service
from lessons.services.packets import PACKET_STATUSES
from lessons.services.trends import PIPELINE_STEPS

VIEWERS = ("gb.planner", "ca.analyst")
TABLE = re.compile(r"<table\b.*?</table>", re.S)
SVG = re.compile(r"<svg\b.*?</svg>", re.S)


# --- reading the page --------------------------------------------------------------------------
def table(page: str, name: str) -> list[list[str]]:
    """The rows of the data table ``name`` (header row first), as cell texts."""
    found = lxml.html.fromstring(page).xpath(f'//table[@data-table="{name}"]')
    assert len(found) == 1, f"no table {name}"
    return [[" ".join(cell.text_content().split()) for cell in row.xpath("./th|./td")]
            for row in found[0].xpath(".//tr")]


def column_totals(page: str, name: str) -> dict[str, int]:
    """Each column of a period table summed over its periods (by column heading)."""
    rows = table(page, name)
    head, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    return {head[i]: sum(int(r[i].replace(",", "")) for r in body)
            for i in range(1, len(head) - 1)}


def keyed(page: str, name: str, value_column: int = 1) -> dict[str, str]:
    return {row[0]: row[value_column] for row in table(page, name)[1:] if len(row) > 1}


def total(page: str) -> int:
    match = re.search(r'data-testid="lesson-total"><strong>([\d,]+)</strong>', page)
    assert match
    return int(match.group(1).replace(",", ""))


def figures(page: str) -> list[str]:
    """Every data table and chart of the page, as sent."""
    return TABLE.findall(page) + SVG.findall(page)


# --- the database, read directly ---------------------------------------------------------------
def viewer(name: str) -> User:
    return db.session.scalar(select(User).where(User.username == name))


def seen(name: str) -> list[Lesson]:
    user = viewer(name)
    return [lesson for lesson in db.session.scalars(select(Lesson))
            if policy.can_view(user, lesson)]


def day_of(lesson: Lesson) -> date:
    return lesson.observed_on or lesson.created_at.date()


def expected(name: str) -> dict:
    user = viewer(name)
    lessons = seen(name)
    ids = {lesson.id for lesson in lessons}
    today = utcnow().date()
    overdue: Counter[str] = Counter()
    for lesson in lessons:
        if lesson.status == "archived":
            continue
        for action in lesson.actions:
            if action.status == "open" and action.due_on and action.due_on < today:
                overdue[action.owner_nation or "—"] += 1
    links = [link for link in db.session.scalars(select(ExerciseLesson))
             if link.lesson_id in ids and policy.can_view_exercise(user, link.exercise)]
    withheld: dict[str, set[int]] = defaultdict(set)
    for link in links:
        if link.status in PACKET_STATUSES:
            for nation in link.exercise.nations:
                if nation not in link.lesson.releasable_to:
                    withheld[nation].add(link.lesson_id)
    requests = Counter(r.status for r in db.session.scalars(select(ReleaseRequest))
                       if r.lesson_id in ids and (r.exercise is None or
                                                  policy.can_view_exercise(user, r.exercise)))
    return {
        "total": len(lessons),
        "status": Counter(STATUS_LABELS[lesson.status] for lesson in lessons),
        "kind": Counter(KIND_LABELS[lesson.kind] for lesson in lessons),
        "domain": Counter(DOMAIN_LABELS[d] for lesson in lessons for d in lesson.domains),
        "overdue": overdue,
        "pipeline": Counter(link.status for link in links),
        "withheld": {nation: len(found) for nation, found in withheld.items()},
        "requests": requests,
        "medians": medians(ids),
    }


def medians(ids: set[int]) -> dict[str, str]:
    """Median days from first submission to first validation, by originator nation."""
    first: dict[tuple[int, str], datetime] = {}
    for record in db.session.scalars(select(AuditRecord).where(
            AuditRecord.action.in_(("submitted", "validated")))):
        key = (record.lesson_id, record.action)
        if record.lesson_id in ids and (key not in first or record.created_at < first[key]):
            first[key] = record.created_at
    by_nation: dict[str, list[int]] = defaultdict(list)
    for lesson in db.session.scalars(select(Lesson).where(Lesson.id.in_(ids))):
        start, end = first.get((lesson.id, "submitted")), first.get((lesson.id, "validated"))
        if start and end and end >= start:
            by_nation[lesson.originator_nation].append((end - start).days)
    return {nation: f"{statistics.median(days):.1f}".replace(".0", "")
            for nation, days in by_nation.items()}


def stretch_reviews() -> None:
    """Spread the demo's validations over days (the loader validates at once), so the
    medians are not all zero: lesson n is validated n % 7 days after submission."""
    submitted = {r.lesson_id: r.created_at for r in db.session.scalars(
        select(AuditRecord).where(AuditRecord.action == "submitted"))}
    for n, record in enumerate(db.session.scalars(select(AuditRecord).where(
            AuditRecord.action == "validated").order_by(AuditRecord.id))):
        if record.lesson_id in submitted:
            record.created_at = submitted[record.lesson_id] + timedelta(days=n % 7, hours=n)
    db.session.commit()


# --- the tests --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", VIEWERS)
def test_figures_equal_the_database(app, demo, login_as, name):
    with app.app_context():
        stretch_reviews()
        want = expected(name)
    page = login_as(name).get("/dashboard").get_data(as_text=True)

    assert total(page) == want["total"]
    for figure in ("status", "kind", "domain"):
        got = {key: n for key, n in column_totals(page, figure).items() if n}
        assert got == {key: n for key, n in want[figure].items() if n}, figure
    assert {k: int(v) for k, v in keyed(page, "overdue").items()} == dict(want["overdue"])
    assert {row[0]: int(row[1]) for row in table(page, "pipeline")[1:-1]} == {
        step.replace("_", " ").capitalize(): want["pipeline"][step] for step in PIPELINE_STEPS}
    got_withheld = {k: int(v) for k, v in keyed(page, "barriers").items()
                    if k in want["withheld"] or (v.isdigit() and int(v))}
    assert got_withheld == want["withheld"]
    requests = keyed(page, "requests")
    assert int(requests["Made"]) == sum(want["requests"].values())
    assert int(requests["Approved"]) == want["requests"]["approved"]
    assert int(requests["Declined"]) == want["requests"]["declined"]
    assert int(requests["Waiting"]) == want["requests"]["pending"]
    assert keyed(page, "median-nation") == want["medians"]
    assert len(set(want["medians"].values())) > 1, "the medians should differ by nation"


def test_the_two_viewers_see_different_figures(app, demo, login_as):
    pages = [login_as(name).get("/dashboard").get_data(as_text=True) for name in VIEWERS]
    assert figures(pages[0]) != figures(pages[1])


def hide_a_lesson_from_canada(app, make_user) -> str:
    """A GBR-only lesson with everything the dashboard counts: validated and learned
    dates, an overdue action owned by CAN, a place in an exercise CAN takes part in, a
    release request, CAN as a nation involved, the dates and domain of CAN's lessons."""
    make_user("gb.writer", nation="GBR", roles=("contributor", "analyst"))
    with app.app_context():
        writer, analyst = viewer("gb.writer"), viewer("gb.analyst")
        lesson = lesson_service.create_lesson(writer, {
            "title": "Gateway accreditation lagged behind the mission network",
            "observation": "Partner headquarters could not join the coalition mission "
                           "network before STARTEX; liaison officers carried laptops.",
            "discussion": "Accreditation of the gateway started late.",
            "conclusion": "Join the mission network early.",
            "recommendation": "Plan network joining at the initial planning conference.",
            "kind": "workaround", "friction": "No network", "workaround": "Laptops",
            "limits": "Slow", "permanence": "interim",
            "source_event": "Exercise HIDDEN HARE 2025", "observed_on": date(2025, 6, 1),
            "domains": ["training", "materiel"], "tags": ["mission-network", "liaison"],
            "nations": ["CAN", "GBR"], "releasable_to": ["GBR"]})
        public_id = lesson.public_id
        lesson_service.transition_lesson(writer, public_id, "submitted", "")
        lesson_service.transition_lesson(analyst, public_id, "validated", "")
        lesson_service.add_action(analyst, public_id, {
            "description": "Accredit the gateway", "owner_nation": "CAN",
            "due_on": date(2025, 9, 1)})
        lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == public_id))
        exercise = next(e for e in db.session.scalars(select(Exercise))
                        if "CAN" in e.nations and "GBR" in e.nations)
        db.session.add(ExerciseLesson(exercise_id=exercise.id, lesson_id=lesson.id,
                                      purpose="training_objective", status="accepted",
                                      created_by_id=analyst.id))
        db.session.add(ReleaseRequest(lesson_id=lesson.id, exercise_id=exercise.id,
                                      nations=["CAN"], status="declined",
                                      requested_by_id=analyst.id, decided_by_id=analyst.id,
                                      created_at=datetime(2025, 9, 1),
                                      decided_at=datetime(2025, 9, 4)))
        db.session.commit()
        assert not policy.can_view(viewer("ca.analyst"), lesson)
        assert policy.can_view(viewer("gb.planner"), lesson)
        return public_id


QUERIES = ("", "?nation=CAN", "?domain=training", "?from=2025-01-01&to=2025-12-31",
           "?nation=GBR&domain=materiel")


def test_a_hidden_lesson_moves_no_figure(app, demo, login_as, make_user):
    with app.app_context():
        stretch_reviews()  # medians that are not all zero, before and after alike
    canada, britain = login_as("ca.analyst"), login_as("gb.planner")
    before = {q: canada.get("/dashboard" + q).get_data(as_text=True) for q in QUERIES}
    seen_before = britain.get("/dashboard").get_data(as_text=True)
    hide_a_lesson_from_canada(app, make_user)
    for query in QUERIES:
        after = canada.get("/dashboard" + query).get_data(as_text=True)
        assert figures(after) == figures(before[query]), query
        assert total(after) == total(before[query])
    # ...while it does move the figures of a viewer who may see it.
    seen_after = britain.get("/dashboard").get_data(as_text=True)
    assert total(seen_after) == total(seen_before) + 1
    assert figures(seen_after) != figures(seen_before)


def test_every_chart_has_its_data_table(app, demo, login_as):
    page = login_as("gb.planner").get("/dashboard").get_data(as_text=True)
    tree = lxml.html.fromstring(page)
    charts_found = tree.xpath("//svg")
    assert len(charts_found) == 8
    for svg in charts_found:
        name = svg.get("id")
        assert svg.get("role") == "img"
        assert svg.get("aria-labelledby") == f"{name}-title"
        assert svg.get("aria-describedby") == f"{name}-desc"
        assert svg.xpath(f'./title[@id="{name}-title"]')[0].text_content().strip()
        assert svg.xpath(f'./desc[@id="{name}-desc"]')[0].text_content().strip()
        box = svg.getparent().getparent()  # the figure, then the chart-and-table block
        assert "trend" in box.get("class").split()
        tables = box.xpath(".//table[caption]")
        assert tables, f"{name} has no data table"
    assert len(tree.xpath("//table[not(caption)]")) == 0


def test_nothing_comes_from_another_host(app, demo, login_as):
    response = login_as("gb.planner").get("/dashboard")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert not re.search(r"https?://", page), re.findall(r"https?://\S{0,40}", page)
    assert "<script" not in page and "<style" not in page
    assert not re.search(r"\sstyle=", page)  # the policy refuses inline style
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert 'href="/static/css/charts.css"' in page


def test_the_stylesheet_is_pygals_for_the_site_style():
    written = (Path(__file__).parent.parent / "static/css/charts.css").read_text("utf-8")
    assert written == charts.stylesheet(), "run: python -m lessons.charts > static/css/charts.css"


def test_the_navigation_links_to_the_dashboard(app, demo, login_as):
    page = login_as("au.contributor").get("/").get_data(as_text=True)
    assert 'href="/dashboard">Trends</a>' in page


def test_filters_narrow_the_figures(app, demo, login_as):
    client = login_as("gb.planner")
    everything = total(client.get("/dashboard").get_data(as_text=True))
    with app.app_context():
        lessons = seen("gb.planner")
        want = {
            "?nation=CAN": sum("CAN" in lesson.nations for lesson in lessons),
            "?domain=training": sum("training" in lesson.domains for lesson in lessons),
            "?from=2024-01-01&to=2024-12-31": sum(
                date(2024, 1, 1) <= day_of(lesson) <= date(2024, 12, 31) for lesson in lessons),
            "?nation=CAN&domain=training": sum(
                "CAN" in lesson.nations and "training" in lesson.domains for lesson in lessons),
        }
    for query, count in want.items():
        response = client.get("/dashboard" + query)
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert total(page) == count, query
        assert 0 < count < everything, query
        assert 'data-testid="filter-problem"' not in page
        assert sum(column_totals(page, "status").values()) == count


@pytest.mark.parametrize("query, message", [
    ("?from=2025-02-30", "The from date \u201c2025-02-30\u201d is not a date"),
    ("?to=yesterday", "The to date \u201cyesterday\u201d is not a date"),
    ("?from=" + "9" * 500, "is not a date like"),
    ("?from=2025-06-01&to=2025-01-01", "The from date is after the to date"),
    ("?nation=ZZZ", "That nation is not one Muster knows"),
    ("?nation=" + "A" * 300, "That nation is not one Muster knows"),
    ("?domain=cooking", "That domain is not one Muster knows"),
])
def test_bad_filters_are_left_out_with_a_message(app, demo, login_as, query, message):
    client = login_as("gb.planner")
    plain = client.get("/dashboard").get_data(as_text=True)
    response = client.get("/dashboard" + query)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert message in page
    assert figures(page) == figures(plain)


def test_recurrence_pairs_the_same_problem_from_another_event(app, login_as, make_user):
    make_user("gb.writer", nation="GBR", roles=("contributor",))
    make_user("gb.checker", nation="GBR", roles=("contributor", "analyst"))
    make_user("us.viewer", nation="USA", roles=("contributor",))
    couplings = {
        "title": "Bowser nozzle couplings did not fit partner helicopters",
        "observation": "The bowser nozzle couplings of the tankers did not fit the "
                       "refuelling adaptors of the partner helicopters.",
        "discussion": "Each nation buys its own nozzle couplings and adaptors.",
        "conclusion": "Coupling adaptors must be checked before a combined refuelling.",
        "recommendation": "Carry spare coupling adaptors for every partner airframe.",
    }
    radios = {
        "title": "HF radios could not hold the partner net",
        "observation": "The HF radio net with partner battalions dropped every night.",
        "discussion": "Antenna drills differed between the nations.",
        "conclusion": "Radio drills must be rehearsed together.",
        "recommendation": "Run a combined communications rehearsal before deploying.",
    }
    made = {}
    with app.app_context():
        writer, checker = viewer("gb.writer"), viewer("gb.checker")
        for key, text, event, day, rel in (
                ("old", couplings, "Exercise ONE 2023", date(2023, 5, 1), ["GBR", "USA"]),
                ("new", couplings, "Exercise TWO 2025", date(2025, 5, 1), ["GBR", "USA"]),
                ("radio", radios, "Exercise THREE 2025", date(2025, 6, 1), ["GBR", "USA"]),
                ("hidden", couplings, "Exercise FOUR 2024", date(2024, 5, 1), ["GBR"])):
            lesson = lesson_service.create_lesson(writer, {
                **text, "kind": "lesson", "source_event": event, "observed_on": day,
                "domains": ["materiel"], "tags": [], "nations": ["GBR"],
                "releasable_to": rel})
            lesson_service.transition_lesson(writer, lesson.public_id, "submitted", "")
            lesson_service.transition_lesson(checker, lesson.public_id, "validated", "")
            made[key] = lesson.public_id
    page = login_as("us.viewer").get("/dashboard").get_data(as_text=True)
    rows = table(page, "recurrence")[1:]
    assert len(rows) == 1, rows
    assert rows[0][0].startswith("2: Exercise TWO 2025; Exercise ONE 2023")
    recurrence = re.search(r'<table data-table="recurrence">.*?</table>', page, re.S).group(0)
    links = re.findall(r'href="/lessons/(\w+)"', recurrence)
    assert made["hidden"] not in page and made["radio"] not in links
    # The British viewer sees the hidden twin too: one group of three events.
    british = login_as("gb.writer").get("/dashboard").get_data(as_text=True)
    assert table(british, "recurrence")[1][0].startswith("3: Exercise TWO 2025")


def test_days_to_decide_release_requests(app, demo, login_as):
    """Two decided requests about a lesson the planner sees, in an exercise GBR takes part
    in: 2 days for AUS, 5 days for AUS and CAN."""
    client = login_as("gb.planner")
    before = keyed(client.get("/dashboard").get_data(as_text=True), "requests")
    with app.app_context():
        planner = viewer("gb.planner")
        link = next(link for link in db.session.scalars(select(ExerciseLesson))
                    if policy.can_view(planner, link.lesson)
                    and policy.can_view_exercise(planner, link.exercise))
        for nations, status, days in ((["AUS"], "approved", 2),
                                      (["AUS", "CAN"], "declined", 5)):
            asked = datetime(2026, 3, 1, 9, 30)
            db.session.add(ReleaseRequest(
                lesson_id=link.lesson_id, exercise_id=link.exercise_id, nations=nations,
                status=status, requested_by_id=planner.id, decided_by_id=planner.id,
                created_at=asked, decided_at=asked + timedelta(days=days, hours=3)))
        db.session.commit()
    page = client.get("/dashboard").get_data(as_text=True)
    requests = keyed(page, "requests")
    assert int(requests["Approved"]) == int(before["Approved"]) + 1
    assert int(requests["Declined"]) == int(before["Declined"]) + 1
    assert requests["Median days to decide"] == "3.5"
    nations = {row[0]: row for row in table(page, "barriers")[1:]}
    assert nations["AUS"][-1] == "3.5" and nations["CAN"][-1] == "5"
    assert nations["CAN"][4:6] == ["0", "1"]  # approved, declined


def test_an_empty_dashboard_says_so(app, login_as, make_user):
    make_user("nz.new", nation="NZL", roles=("contributor",))
    response = login_as("nz.new").get("/dashboard")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert total(page) == 0
    assert len(lxml.html.fromstring(page).xpath("//svg")) == 8
    assert table(page, "status")[1] == ["No lessons."]
    assert table(page, "overdue")[1] == ["No action is overdue."]
    assert table(page, "recurrence")[1] == [
        "No problem seen again among the most recent lessons."]
