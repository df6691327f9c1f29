"""Demo data: loaded through the services, varied enough to show the policy, never in
production."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from config import ProductionConfig
from lessons import create_app
from lessons.extensions import db
from lessons.models import AuditRecord, Lesson, User


def test_demo_load_creates_users_and_lessons_and_prints_logins(app, runner):
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    assert "Loaded 9 demo users, 46 lessons and 2 exercises." in result.output
    for username in ("admin", "us.analyst", "gb.planner", "gb.analyst", "au.contributor",
                     "ca.analyst"):
        assert username in result.output
    with app.app_context():
        roles = {u.username: (u.nation_code, u.roles) for u in db.session.scalars(select(User))}
    assert roles["admin"] == ("USA", {"admin"})
    assert roles["us.analyst"] == ("USA", {"contributor", "analyst"})
    assert roles["gb.planner"] == ("GBR", {"contributor", "planner"})
    assert roles["gb.analyst"] == ("GBR", {"contributor", "analyst"})
    assert roles["au.contributor"] == ("AUS", {"contributor"})
    assert roles["ca.analyst"] == ("CAN", {"contributor", "analyst"})


def test_demo_lessons_spread_over_kinds_statuses_originators_and_markings(app, demo):
    with app.app_context():
        lessons = db.session.scalars(select(Lesson)).all()
        assert len(lessons) >= 40
        assert set(Counter(lesson.kind for lesson in lessons)) == {
            "lesson", "workaround", "best_practice"}
        assert set(Counter(lesson.status for lesson in lessons)) == {
            "draft", "submitted", "validated", "action_assigned", "learned", "rejected",
            "withdrawn", "archived"}
        assert {lesson.originator_nation for lesson in lessons} >= {"USA", "GBR", "AUS", "CAN"}
        shapes = Counter(
            "originator only" if list(lesson.releasable_to) == [lesson.originator_nation]
            else "FVEY" if list(lesson.releasable_to) == ["AUS", "CAN", "GBR", "NZL", "USA"]
            else "bilateral" if len(lesson.releasable_to) == 2 else "other"
            for lesson in lessons)
        assert shapes["originator only"] >= 5 and shapes["FVEY"] >= 5 and shapes["bilateral"] >= 5
        assert any(lesson.actions for lesson in lessons if lesson.status == "action_assigned")
        # Reviewed through the state machine, so every move is in the audit trail (beside
        # its entries about exercises, such as being attached to one).
        learned = next(lesson for lesson in lessons if lesson.status == "learned")
        moves = db.session.scalars(select(AuditRecord.action).where(
            AuditRecord.lesson_id == learned.id, AuditRecord.exercise_id.is_(None))
            .order_by(AuditRecord.id)).all()
        assert moves[:3] == ["created", "submitted", "validated"], moves
        assert moves[-1] == "learned", moves


def test_demo_load_if_empty_does_nothing_when_users_exist(app, runner, make_user):
    make_user("someone", "GBR")
    result = runner.invoke(args=["demo", "load", "--if-empty"])
    assert result.exit_code == 0
    assert "not loaded" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Lesson)) == 0


def test_demo_logins_work(demo, client):
    response = client.post("/login", data={"username": "au.contributor", "password": "demo"})
    assert response.status_code == 302


def test_demo_data_is_refused_in_production(monkeypatch, database_url, schema):
    monkeypatch.setattr(ProductionConfig, "SECRET_KEY", "p" * 32)
    monkeypatch.setattr(ProductionConfig, "SQLALCHEMY_DATABASE_URI", database_url)
    monkeypatch.setattr(ProductionConfig, "PROXY_COUNT_GIVEN", "0")
    app = create_app(ProductionConfig)
    result = app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code == 2
    assert "refused in production" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 0
        db.session.remove()
        db.engine.dispose()



def test_demo_exercises_show_each_step_of_the_loop(demo, login_as):
    """The demo shows what planners and analysts do: an exercise being planned with
    lessons at several steps and a release request, and a past one whose effective
    outcome waits for the UK analyst."""
    planner = login_as("au.planner")
    listing = planner.get("/exercises").get_data(as_text=True)
    assert "Exercise SOUTHERN JACKAL 2027" in listing
    assert "Exercise IRON LIAISON 2026" not in listing  # Australia did not take part
    past = login_as("gb.planner").get("/exercises?when=past").get_data(as_text=True)
    assert "Exercise IRON LIAISON 2026" in past
    review = login_as("gb.analyst").get("/lessons?tab=review").get_data(as_text=True)
    assert 'id="outcomes"' in review and "Jointly written glossary annex" in review
    assert 'id="release-requests"' in review and "Coupling and NSN gaps" in review
