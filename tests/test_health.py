"""``/health``, and what search answers when the index is lost: a clear 503 until
``search.on_worker_start`` (run by every serving process as it starts) rebuilds it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from lessons import create_app, search
from lessons.extensions import db
from lessons.models import Lesson
from lessons.services import tokens

MISSING_TEXT = "The search index is missing or being rebuilt"


def _lose_index(app) -> None:
    shutil.rmtree(app.config["INDEX_DIR"])


def _token(app, username: str) -> str:
    from lessons.models import User

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        return tokens.create_token(user, "health test")[1]


def test_health_is_public_and_reports_a_working_app(app, client, make_user, make_lesson):
    make_user("gb.author", "GBR")
    make_lesson("gb.author", "submitted", title="Secret-ish title zqh001")
    response = client.get("/health")
    assert response.status_code == 200, response.text
    body = response.get_json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["index"]["state"] == "ok" and body["index"]["pending"] == 0
    assert body["index"]["lag_seconds"] is None
    assert body["index"]["generation"].startswith("gen-")
    assert "zqh001" not in response.text and "Retry-After" not in response.headers


def test_a_lost_index_is_a_clear_503_until_a_worker_start_rebuilds_it(
        app, client, make_user, make_lesson, login_as):
    make_user("gb.author", "GBR")
    for n in range(3):
        make_lesson("gb.author", "submitted", title=f"Recovered lesson zqr{n:03d}")
    author = login_as("gb.author")
    assert 'data-testid="total">3 lessons' in author.get("/search?q=recovered").text
    _lose_index(app)

    response = client.get("/health")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["index"] == {"generation": None, "state": "missing",
                                            "pending": None, "lag_seconds": None}
    page = author.get("/search?q=recovered")
    assert page.status_code == 503 and page.headers["Retry-After"]
    assert MISSING_TEXT in page.text and "zqr000" not in page.text
    api = app.test_client().get("/api/v1/lessons?q=recovered", headers={
        "Authorization": f"Bearer {_token(app, 'gb.author')}"})
    assert api.status_code == 503 and api.mimetype == "application/problem+json"
    assert MISSING_TEXT in api.get_json()["detail"] and api.headers["Retry-After"]
    assert not Path(app.config["INDEX_DIR"], "CURRENT").exists()  # not recreated empty

    search.on_worker_start(app).join(timeout=60)
    response = client.get("/health")
    assert response.status_code == 200, response.text
    assert response.get_json()["index"]["state"] == "ok"
    assert 'data-testid="total">3 lessons' in author.get("/search?q=recovered").text


def test_changes_a_crash_left_unapplied_are_applied_when_a_worker_starts(
        app, client, make_user, make_lesson, login_as):
    make_user("gb.author", "GBR")
    lesson = make_lesson("gb.author", "submitted", title="Before the crash")
    with app.app_context():
        # The crash: the lesson's new title committed with its change-log row, and the
        # process died before applying it to the index.
        row = db.session.scalar(select(Lesson).where(Lesson.public_id == lesson.public_id))
        row.title = "After the crash zqc777"
        row.version += 1
        search.queue_lesson(row)
        db.session.commit()
    waiting = client.get("/health").get_json()["index"]
    assert waiting["pending"] == 1 and 0 <= waiting["lag_seconds"] < 60
    author = login_as("gb.author")
    assert "After the crash" not in author.get("/search?q=zqc777").text

    search.on_worker_start(app).join(timeout=60)
    assert client.get("/health").get_json()["index"]["pending"] == 0
    assert "After the crash zqc777" in author.get("/search?q=zqc777").text


def test_a_new_install_has_a_healthy_empty_index(app, client):
    response = client.get("/health")
    assert response.status_code == 200, response.text
    assert response.get_json()["index"]["state"] == "empty"
    search.on_worker_start(app).join(timeout=60)
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://postgres@127.0.0.1:1/x?connect_timeout=1",
    "sqlite:///{tmp}/unreadable/muster.db",
])
def test_health_answers_503_json_when_the_database_is_unreachable(tmp_path, url):
    url = url.format(tmp=tmp_path)
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url,
                     INDEX_DIR=str(tmp_path / "index"))
    if url.startswith("sqlite"):
        # A folder nobody may create files in (root ignores permissions: a file
        # where the database's folder should be does it for everyone).
        shutil.rmtree(tmp_path / "unreadable")
        (tmp_path / "unreadable").write_text("not a folder")
    response = app.test_client().get("/health")
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"]
    body = response.get_json()
    assert body["status"] == "unavailable" and body["database"] == "unreachable"
    assert body["index"]["pending"] is None
    with app.app_context():
        db.engine.dispose()
