"""The ``flask users`` commands."""

from __future__ import annotations

from sqlalchemy import select


def test_users_create_reads_password_from_stdin_and_can_log_in(runner, client):
    result = runner.invoke(args=["users", "create", "gb.new", "--nation", "GBR",
                                 "--roles", "contributor,analyst", "--password-stdin",
                                 "--display-name", "Capt New", "--unit", "1 Bde"],
                           input="a long enough password\n")
    assert result.exit_code == 0, result.output
    assert "created gb.new (GBR; analyst, contributor)" in result.output
    response = client.post("/login", data={"username": "gb.new",
                                           "password": "a long enough password"})
    assert response.status_code == 302


def test_users_create_prompts_for_password_twice_without_stdin_flag(runner):
    result = runner.invoke(args=["users", "create", "au.new", "--nation", "aus"],
                           input="another password\nanother password\n")
    assert result.exit_code == 0, result.output
    assert "created au.new (AUS; contributor)" in result.output


def test_users_create_reports_every_problem_and_stores_nothing(app, runner):
    from lessons.extensions import db
    from lessons.models import User

    result = runner.invoke(args=["users", "create", "Bad Name!", "--nation", "XXX",
                                 "--roles", "contributor,general", "--password-stdin"],
                           input="short\n")
    assert result.exit_code == 2
    for fragment in ("username:", "Unknown nation 'XXX'", "Unknown role(s) general",
                     "At least 12 characters"):
        assert fragment in result.output
    with app.app_context():
        assert db.session.scalars(select(User)).all() == []


def test_users_create_refuses_a_duplicate_username(runner, make_user):
    make_user("gb.one", "GBR")
    result = runner.invoke(args=["users", "create", "gb.one", "--nation", "GBR",
                                 "--password-stdin"], input="long password here\n")
    assert result.exit_code == 2
    assert "already exists" in result.output


def test_users_list_shows_nation_roles_and_state(runner, make_user):
    make_user("gb.one", "GBR", ("contributor", "planner"), unit="HQ 3 Div")
    make_user("us.two", "USA", ("admin",), active=False)
    lines = runner.invoke(args=["users", "list"]).output.splitlines()
    assert lines[0].split() == ["USERNAME", "NATION", "ROLES", "STATE", "UNIT"]
    assert lines[1].split()[:4] == ["gb.one", "GBR", "contributor,planner", "active"]
    assert lines[2].split()[:4] == ["us.two", "USA", "admin", "inactive"]
