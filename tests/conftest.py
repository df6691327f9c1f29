"""Shared fixtures: a real database (SQLite file, or PostgreSQL from TEST_DATABASE_URL),
an app per test, clients, a login helper and factories returning plain values.

No app context stays pushed while a test client runs: Flask would reuse it for every
request, and Flask-Login's cached user in ``g`` would leak from one login to the next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, insert

from config import TestingConfig
from lessons import create_app
from lessons.extensions import db
from lessons.models import Lesson, Nation, NationGroup, User
from lessons.models.nation import nation_group_members
from lessons.reference import group_rows, nation_rows

# The browser tests' fixtures, for every test module that asks for them by name.
from tests.browser import chromium, live_server, open_as, open_pages  # noqa: F401

REFERENCE_TABLES = {"nations", "nation_groups", "nation_group_members"}


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = TestingConfig.SQLALCHEMY_DATABASE_URI
    if url in ("sqlite://", "sqlite:///:memory:"):
        # A file, not memory: the browser test serves the app from another thread.
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'muster-test.db'}"
    return url


@pytest.fixture(scope="session")
def schema(database_url: str) -> Iterator[None]:
    """Create the schema once per run (tests may use create_all; the app never does)."""
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url)
    with app.app_context():
        db.drop_all()
        db.create_all()
        seed_reference_data()
    yield
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def seed_reference_data() -> None:
    groups, members = group_rows()
    db.session.execute(insert(Nation), nation_rows())
    db.session.execute(insert(NationGroup), groups)
    db.session.execute(insert(nation_group_members), members)
    db.session.commit()


def clear_data() -> None:
    """Delete every row but the reference data, children first."""
    db.session.rollback()
    for table in reversed(db.metadata.sorted_tables):
        if table.name not in REFERENCE_TABLES:
            db.session.execute(delete(table))
    db.session.commit()


@pytest.fixture
def app(schema: None, database_url: str, tmp_path) -> Iterator[Flask]:
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                     INDEX_DIR=str(tmp_path / "index"), FILES_DIR=str(tmp_path / "files"))
    yield app
    with app.app_context():
        clear_data()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


def login(client: FlaskClient, username: str, password: str = "demo") -> None:
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302, f"login as {username} failed: {response.status_code}"


@pytest.fixture
def login_as(app: Flask) -> Callable[[str], FlaskClient]:
    """A fresh client logged in as ``username`` (one client per user keeps cookies apart)."""

    def _login(username: str, password: str = "demo") -> FlaskClient:
        client = app.test_client()
        login(client, username, password)
        return client

    return _login


@pytest.fixture
def make_user(app: Flask) -> Callable[..., SimpleNamespace]:
    from lessons.services.users import create_user

    def _make(username: str, nation: str = "GBR", roles: tuple[str, ...] = ("contributor",),
              password: str = "demo", active: bool = True, **kw: Any) -> SimpleNamespace:
        with app.app_context():
            user = create_user(username, nation=nation, roles=roles, password=password,
                               weak_password_ok=True, **kw)
            if not active:
                user.active = False
                db.session.commit()
            return SimpleNamespace(id=user.id, username=user.username, nation=nation,
                                   roles=set(roles))

    return _make


def lesson_fields(**overrides: Any) -> dict[str, Any]:
    """A complete, valid set of lesson contract values."""
    data: dict[str, Any] = {
        "title": "Partner LNOs could not reach the coalition chat",
        "observation": "The AUS liaison officers had no account on the division chat server.",
        "discussion": "Accounts needed a national clearance check that took two weeks.",
        "conclusion": "Liaison access must be arranged before the exercise starts.",
        "recommendation": "Request partner accounts at the initial planning conference.",
        "kind": "lesson",
        "source_event": "Exercise SOUTHERN JACKAL 2025",
        "observed_on": date(2025, 7, 14),
        "location": "Shoalwater Bay Training Area",
        "unit": "1 Brigade HQ",
        "domains": ["training", "policy"],
        "functions": ["command_control"],
        "tags": ["liaison", "mission-network"],
        "nations": ["AUS", "GBR"],
        "releasable_to": [],
    }
    data.update(overrides)
    return data


@pytest.fixture
def make_lesson(app: Flask) -> Callable[..., SimpleNamespace]:
    """Create a lesson by ``author`` and walk it to ``status`` through the services."""
    from lessons.services import lessons as service

    routes = {
        "draft": [], "submitted": ["submitted"], "withdrawn": ["withdrawn"],
        "rejected": ["submitted", "rejected"], "validated": ["submitted", "validated"],
        "action_assigned": ["submitted", "validated", "action_assigned"],
        "learned": ["submitted", "validated", "learned"],
        "archived": ["submitted", "validated", "archived"],
    }

    def _make(author: str, status: str = "draft", analyst: str | None = None,
              **fields: Any) -> SimpleNamespace:
        with app.app_context():
            from sqlalchemy import select

            by_name = {u.username: u for u in db.session.scalars(select(User))}
            user = by_name[author]
            lesson = service.create_lesson(user, lesson_fields(**fields))
            public_id = lesson.public_id
            for to in routes[status]:
                actor = user if to in ("submitted", "withdrawn") else by_name[analyst]
                if to == "action_assigned":
                    service.add_action(actor, public_id, {"description": "Fix the process"})
                note = "Because." if to in ("rejected", "learned", "archived") else ""
                service.transition_lesson(actor, public_id, to, note)
            lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == public_id))
            return SimpleNamespace(public_id=public_id, status=lesson.status,
                                   version=lesson.version,
                                   releasable_to=list(lesson.releasable_to))

    return _make


@pytest.fixture
def demo(app: Flask) -> None:
    """The full demo data set, loaded through the services."""
    from lessons.demo import load_demo

    with app.app_context():
        load_demo()
