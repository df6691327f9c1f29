"""``flask users set-roles``, ``deactivate``, ``activate`` and ``set-password``: each
change ends the user's sessions and is audited with the user as subject, no actor (the
command line) and no address."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lessons.extensions import db
from lessons.models import AuditRecord, User
from tests.conftest import login

NEW = "lantern orchard gravel"


def logged_in(client) -> bool:
    return client.get("/lessons").status_code == 200


def audited(app, action: str) -> list[tuple]:
    with app.app_context():
        return [(e.actor_id, e.subject, e.address, e.comment) for e in db.session.scalars(
            select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id))]


def roles_of(app, username: str) -> set[str]:
    with app.app_context():
        return set(db.session.scalar(select(User).where(User.username == username)).roles)


def test_set_roles_gives_exactly_those_roles_and_ends_the_sessions(app, runner, make_user,
                                                                    login_as):
    make_user("gb.one", roles=("contributor",))
    client, bystander = login_as("gb.one"), login_as("gb.one")
    make_user("gb.two")
    other = login_as("gb.two")
    result = runner.invoke(args=["users", "set-roles", "GB.one", "analyst,contributor",
                                 "planner"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "gb.one: analyst, contributor, planner"
    assert roles_of(app, "gb.one") == {"analyst", "contributor", "planner"}
    assert not logged_in(client) and not logged_in(bystander)
    assert logged_in(other)
    assert audited(app, "roles_changed") == [
        (None, "gb.one", None, "contributor \u2192 analyst, contributor, planner")]
    again = runner.invoke(args=["users", "set-roles", "gb.one", "planner", "analyst",
                                "contributor"])
    assert again.exit_code == 0 and "(unchanged)" in again.output
    assert len(audited(app, "roles_changed")) == 1


def test_set_roles_refuses_an_unknown_role_or_user_and_changes_nothing(app, runner,
                                                                        make_user):
    make_user("gb.one", roles=("contributor",))
    result = runner.invoke(args=["users", "set-roles", "gb.one", "general"])
    assert result.exit_code == 2 and "Unknown role(s) general" in result.output
    missing = runner.invoke(args=["users", "set-roles", "gb.nobody", "analyst"])
    assert missing.exit_code == 2 and "no user 'gb.nobody'" in missing.output
    assert roles_of(app, "gb.one") == {"contributor"}
    assert audited(app, "roles_changed") == []


def test_deactivate_ends_the_sessions_and_activate_lets_the_user_back(app, runner,
                                                                      make_user, login_as):
    make_user("gb.one")
    client = login_as("gb.one")
    result = runner.invoke(args=["users", "deactivate", "gb.one"])
    assert result.exit_code == 0 and result.output.strip() == "gb.one: inactive"
    assert not logged_in(client)
    assert client.post("/login", data={"username": "gb.one", "password": "demo"}
                       ).status_code == 401
    assert "(already)" in runner.invoke(args=["users", "deactivate", "gb.one"]).output
    result = runner.invoke(args=["users", "activate", "gb.one"])
    assert result.exit_code == 0 and result.output.strip() == "gb.one: active"
    login(client, "gb.one")
    assert logged_in(client)
    assert audited(app, "user_deactivated") == [
        (None, "gb.one", None, "active \u2192 inactive")]
    assert audited(app, "user_activated") == [(None, "gb.one", None, "inactive \u2192 active")]


def test_set_password_replaces_a_forgotten_one_and_ends_the_sessions(app, runner,
                                                                     make_user, login_as):
    make_user("gb.one")
    client = login_as("gb.one")
    result = runner.invoke(args=["users", "set-password", "gb.one", "--password-stdin"],
                           input=NEW + "\n")
    assert result.exit_code == 0, result.output
    assert not logged_in(client)
    assert client.post("/login", data={"username": "gb.one", "password": "demo"}
                       ).status_code == 401
    login(client, "gb.one", NEW)
    assert [(a, s, addr) for a, s, addr, _ in audited(app, "password_reset")] == [
        (None, "gb.one", None)]


@pytest.mark.parametrize("password,message", [
    ("short", "At least 12 characters"), ("password1234", "among the most common")])
def test_set_password_refuses_a_weak_password(app, runner, make_user, password, message):
    make_user("gb.one")
    result = runner.invoke(args=["users", "set-password", "gb.one"],
                           input=f"{password}\n{password}\n")
    assert result.exit_code == 2 and message in result.output
    assert audited(app, "password_reset") == []


def test_user_created_names_its_subject(app, runner):
    result = runner.invoke(args=["users", "create", "gb.new", "--nation", "GBR",
                                 "--password-stdin"], input=NEW + "\n")
    assert result.exit_code == 0, result.output
    assert [(a, s) for a, s, _addr, _c in audited(app, "user_created")] == [(None, "gb.new")]
