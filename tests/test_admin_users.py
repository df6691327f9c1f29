"""The admins' user pages (/admin/users): list and filter, create, edit (nation, roles,
active), reset a password; each change audited with the acting admin and the account
changed, sessions ended where the user's rights changed, and the two rules held: nobody
raises their own rights, and the last active administrator stays one. Through HTTP."""

from __future__ import annotations

import re
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from lessons.extensions import db
from lessons.models import AuditRecord, User
from lessons.services import tokens
from lessons.services.users import DISPLAY_NAME_MAX, PASSWORD_MIN, USERS_PER_PAGE
from tests.conftest import login
from tests.test_csrf import csrf_app, csrf_client, form_on  # noqa: F401 - fixtures

NEW_PASSWORD = "correct horse battery staple"


# --- helpers -----------------------------------------------------------------------------
@pytest.fixture
def people(make_user) -> dict[str, int]:
    """An administrator and three others; their ids by username."""
    made = [make_user("us.admin", "USA", ("admin",)),
            make_user("gb.one", "GBR", ("contributor",), display_name="Capt Ann Jones",
                      unit="1 Mech Bde"),
            make_user("gb.two", "GBR", ("contributor", "analyst")),
            make_user("au.gone", "AUS", ("planner",), active=False)]
    return {user.username: user.id for user in made}


@pytest.fixture
def admin(people, login_as) -> FlaskClient:
    return login_as("us.admin")


def stored(app: Flask, username: str) -> dict:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        return {"nation": user.nation_code, "roles": set(user.roles), "active": user.active,
                "display_name": user.display_name, "unit": user.unit}


def audited(app: Flask, *actions: str) -> list[tuple[str, str | None, str | None, str]]:
    """(action, actor, subject, comment) of the entries of these kinds, oldest first."""
    with app.app_context():
        rows = db.session.execute(
            select(AuditRecord.action, User.username, AuditRecord.subject,
                   AuditRecord.comment)
            .outerjoin(User, AuditRecord.actor_id == User.id)
            .where(AuditRecord.action.in_(actions)).order_by(AuditRecord.id)).all()
        return [tuple(row) for row in rows]


def email_of(app: Flask, username: str) -> str | None:
    with app.app_context():
        return db.session.scalar(select(User.email).where(User.username == username))


def version_of(app: Flask, username: str) -> int:
    with app.app_context():
        return db.session.scalar(select(User.version).where(User.username == username))


def edit_form(app: Flask, username: str, **changes) -> dict:
    """What the edit page posts for ``username`` as stored (at its current version),
    with ``changes``."""
    data = stored(app, username)
    form = {"display_name": data["display_name"], "unit": data["unit"],
            "nation": data["nation"], "roles": sorted(data["roles"]),
            "active": "y" if data["active"] else None,
            "email": email_of(app, username) or "",
            "version": str(version_of(app, username))}
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def new_user_form(**changes) -> dict:
    form = {"username": "ca.new", "display_name": "Maj Ed Roy", "nation": "CAN",
            "unit": "Canadian Army Lessons Learned Centre", "roles": ["contributor", "analyst"],
            "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    form.update(changes)
    return form


def logged_in(client: FlaskClient) -> bool:
    response = client.get("/account")
    return response.status_code == 200


# --- who may use it ----------------------------------------------------------------------
PAGES = ["/admin/users", "/admin/users/new", "/admin/users/{id}/edit",
         "/admin/users/{id}/password"]


def test_only_administrators_reach_the_user_pages(app, people, login_as, client):
    other = login_as("gb.two")
    for page in PAGES:
        path = page.format(id=people["gb.one"])
        assert other.get(path).status_code == 403, path
        if page != "/admin/users":
            assert other.post(path, data={}).status_code == 403, path
        assert client.get(path).status_code == 302  # anonymous: to log in
        assert "/login" in client.get(path).location
    assert stored(app, "gb.one")["roles"] == {"contributor"}
    # The admins' navigation links the page; others' does not.
    assert 'href="/admin/users"' in login_as("us.admin").get("/lessons").text
    assert 'href="/admin/users"' not in other.get("/lessons").text


def test_unknown_user_ids_are_404(admin, people):
    for page in PAGES[2:]:
        assert admin.get(page.format(id=987654)).status_code == 404
        assert admin.post(page.format(id=987654), data={}).status_code == 404


# --- the list ------------------------------------------------------------------------------
def test_list_shows_each_user_and_their_last_log_in(admin, people, login_as):
    login_as("gb.one")
    page = admin.get("/admin/users")
    assert page.status_code == 200
    table = page.text.split('data-testid="users-table"')[1]
    for name in people:
        assert f">{name}</th>" in table
    assert "Capt Ann Jones" in table and "1 Mech Bde" in table
    row = table.split(">gb.one</th>")[1].split("</tr>")[0]
    assert "<time" in row  # logged in just now
    never = table.split(">gb.two</th>")[1].split("</tr>")[0]
    assert "<time" not in never and "—" in never
    gone = table.split(">au.gone</th>")[1].split("</tr>")[0]
    assert re.search(r"<td[^>]*>no</td>", gone)  # not active
    assert f'href="/admin/users/{people["gb.one"]}/edit"' in page.text


def usernames(page: str) -> set[str]:
    if 'data-testid="users-table"' not in page:
        return set()
    table = page.split('data-testid="users-table"')[1].split("</table>")[0]
    return set(re.findall(r'<th[^>]*scope="row"[^>]*>([^<]*)</th>', table))


def test_list_filters_by_nation_role_active_and_name(admin, people):
    assert usernames(admin.get("/admin/users?nation=GBR").text) == {"gb.one", "gb.two"}
    assert usernames(admin.get("/admin/users?role=analyst").text) == {"gb.two"}
    assert usernames(admin.get("/admin/users?active=no").text) == {"au.gone"}
    assert usernames(admin.get("/admin/users?active=yes&nation=AUS").text) == set()
    assert usernames(admin.get("/admin/users?q=ANN").text) == {"gb.one"}  # display name
    assert usernames(admin.get("/admin/users?q=gb.").text) == {"gb.one", "gb.two"}
    assert usernames(admin.get("/admin/users?q=%25").text) == set()  # a literal %
    assert "No user matches" in admin.get("/admin/users?q=nobody").text


def test_bad_filters_answer_422_with_the_field_named(admin, people):
    for query, message in (("nation=XXX", "Not a nation code"), ("role=general", "Unknown role"),
                           ("active=maybe", "Choose Active"), ("q=" + "x" * 500, "At most")):
        page = admin.get(f"/admin/users?{query}")
        assert page.status_code == 422, query
        assert message in page.text, query
    assert admin.get("/admin/users?page=99999999999999999999").status_code == 422


def test_list_pages_with_the_filters_kept(app, admin, people):
    with app.app_context():
        db.session.execute(insert(User), [
            {"username": f"nz.user{i:03}", "display_name": f"User {i}", "nation_code": "NZL",
             "unit": "", "password_hash": "x", "active": True}
            for i in range(USERS_PER_PAGE + 5)])
        db.session.commit()
    first = admin.get("/admin/users?nation=NZL")
    assert len(usernames(first.text)) == USERS_PER_PAGE
    assert "Page 1 of 2" in first.text
    assert "/admin/users?page=2&amp;nation=NZL" in first.text
    second = admin.get("/admin/users?page=2&nation=NZL")
    assert len(usernames(second.text)) == 5
    assert not usernames(first.text) & usernames(second.text)


# --- creating ------------------------------------------------------------------------------
def test_create_a_user_who_can_then_log_in(app, admin, people, client):
    page = admin.get("/admin/users/new")
    assert page.status_code == 200
    assert f"At least {PASSWORD_MIN}" in page.text  # the rules are shown
    assert '<label for="nation">' in page.text and 'value="CAN"' in page.text
    response = admin.post("/admin/users/new", data=new_user_form(username=" CA.New "))
    assert response.status_code == 302
    assert "ca.new created" in admin.get(response.location).text
    assert stored(app, "ca.new") == {
        "nation": "CAN", "roles": {"contributor", "analyst"}, "active": True,
        "display_name": "Maj Ed Roy", "unit": "Canadian Army Lessons Learned Centre"}
    login(client, "ca.new", NEW_PASSWORD)
    assert logged_in(client)
    [(action, actor, subject, comment)] = audited(app, "user_created")[-1:]
    assert (action, actor, subject) == ("user_created", "us.admin", "ca.new")
    assert "CAN" in comment


def test_create_refuses_bad_input_with_422_and_stores_nothing(app, admin, people):
    cases = [
        ({"nation": "XYZ"}, "Unknown nation"),
        ({"nation": ""}, "Choose a nation"),
        ({"roles": ["general"]}, "Unknown role"),
        ({"username": "Not Valid!"}, "lower-case letters"),
        ({"username": "gb.one"}, "already exists"),
        ({"username": "x" * 65}, "At most 64"),
        ({"display_name": "x" * (DISPLAY_NAME_MAX + 1)}, f"At most {DISPLAY_NAME_MAX}"),
        ({"unit": "x" * 201}, "At most 200"),
        ({"password": "short", "password_again": "short"}, f"At least {PASSWORD_MIN}"),
        ({"password": "password1234", "password_again": "password1234"}, "most common"),
        ({"password": "ca.new is my password", "password_again": "ca.new is my password"},
         "username"),
        ({"password": "x" * 2000, "password_again": "x" * 2000}, "At most 1024"),
        ({"password_again": "something else entirely"}, "passwords differ"),
    ]
    for changes, message in cases:
        response = admin.post("/admin/users/new", data=new_user_form(**changes))
        assert response.status_code == 422, changes
        assert message in response.text, changes
        assert "Nothing was saved" in response.text
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "ca.new")) is None
    # Only the fixtures' accounts, made without an actor.
    assert {row[1] for row in audited(app, "user_created")} == {None}


# --- editing ------------------------------------------------------------------------------
def test_changing_roles_ends_the_users_sessions_and_is_audited(app, admin, people, login_as):
    one = login_as("gb.one")
    path = f"/admin/users/{people['gb.one']}/edit"
    page = admin.get(path)
    assert page.status_code == 200 and 'value="contributor"' in page.text
    response = admin.post(path, data=edit_form(app, "gb.one", roles=["contributor",
                                                                     "analyst"]))
    assert response.status_code == 302
    assert stored(app, "gb.one")["roles"] == {"contributor", "analyst"}
    assert not logged_in(one)  # their client is logged out
    assert audited(app, "roles_changed") == [
        ("roles_changed", "us.admin", "gb.one", "contributor \u2192 analyst, contributor")]
    assert logged_in(admin)


def test_changing_the_nation_ends_the_sessions_and_is_audited(app, admin, people, login_as):
    one = login_as("gb.one")
    path = f"/admin/users/{people['gb.one']}/edit"
    response = admin.post(path, data=edit_form(app, "gb.one", nation="AUS",
                                               unit="3 Bde", display_name="Maj Ann Jones"))
    assert response.status_code == 302
    data = stored(app, "gb.one")
    assert (data["nation"], data["unit"], data["display_name"]) == ("AUS", "3 Bde",
                                                                     "Maj Ann Jones")
    assert not logged_in(one)
    [(action, actor, subject, comment)] = audited(app, "user_edited")
    assert (action, actor, subject) == ("user_edited", "us.admin", "gb.one")
    assert "nation GBR \u2192 AUS" in comment
    assert audited(app, "roles_changed", "user_deactivated") == []


def test_a_display_name_or_unit_change_keeps_the_sessions(app, admin, people, login_as):
    one = login_as("gb.one")
    response = admin.post(f"/admin/users/{people['gb.one']}/edit",
                          data=edit_form(app, "gb.one", unit="2 Bde"))
    assert response.status_code == 302
    assert stored(app, "gb.one")["unit"] == "2 Bde"
    assert logged_in(one)


def test_saving_unchanged_values_changes_nothing_and_audits_nothing(app, admin, people):
    response = admin.post(f"/admin/users/{people['gb.one']}/edit",
                          data=edit_form(app, "gb.one"))
    assert response.status_code == 302
    assert "Nothing changed" in admin.get(response.location).text
    assert audited(app, "user_edited", "roles_changed", "user_deactivated",
                   "user_activated") == []


def test_deactivating_stops_log_in_and_api_tokens(app, admin, people, login_as, client):
    with app.app_context():
        user = db.session.get(User, people["gb.one"])
        secret = tokens.create_token(user, "script")[1]
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/lessons", headers=bearer).status_code == 200
    one = login_as("gb.one")
    response = admin.post(f"/admin/users/{people['gb.one']}/edit",
                          data=edit_form(app, "gb.one", active=None))
    assert response.status_code == 302
    assert stored(app, "gb.one")["active"] is False
    assert not logged_in(one)
    assert client.get("/api/v1/lessons", headers=bearer).status_code == 401
    refused = app.test_client().post("/login", data={"username": "gb.one",
                                                     "password": "demo"})
    assert refused.status_code != 302
    assert audited(app, "user_deactivated") == [
        ("user_deactivated", "us.admin", "gb.one", "active \u2192 inactive")]
    # ...and back.
    admin.post(f"/admin/users/{people['gb.one']}/edit", data=edit_form(app, "gb.one",
                                                                         active="y"))
    login(app.test_client(), "gb.one")
    assert audited(app, "user_activated")[0][:3] == ("user_activated", "us.admin", "gb.one")


def test_edit_refuses_bad_input_with_422_and_changes_nothing(app, admin, people):
    path = f"/admin/users/{people['gb.one']}/edit"
    before = stored(app, "gb.one")
    for changes, message in (
            ({"nation": "XYZ"}, "Unknown nation"),
            ({"nation": "FVEY"}, "Unknown nation"),  # a group is no nation
            ({"roles": ["contributor", "general"]}, "Unknown role"),
            ({"display_name": "x" * (DISPLAY_NAME_MAX + 1)}, f"At most {DISPLAY_NAME_MAX}"),
            ({"display_name": "   "}, "Give a display name"),
            ({"unit": "x" * 201}, "At most 200")):
        response = admin.post(path, data=edit_form(app, "gb.one", **changes))
        assert response.status_code == 422, changes
        assert message in response.text, changes
    assert stored(app, "gb.one") == before
    assert audited(app, "user_edited", "roles_changed") == []


def test_the_admin_sees_and_sets_a_users_e_mail_address(app, admin, people, login_as):
    one = login_as("gb.one")
    path = f"/admin/users/{people['gb.one']}/edit"
    page = admin.get(path)
    assert '<label for="email">' in page.text
    response = admin.post(path, data=edit_form(app, "gb.one", email=" ann.jones@mod.example "))
    assert response.status_code == 302
    assert "(email)" in admin.get(response.location).text
    assert email_of(app, "gb.one") == "ann.jones@mod.example"
    assert logged_in(one)  # where mail goes is no right: the sessions go on
    [(action, actor, subject, comment)] = audited(app, "user_edited")
    assert (action, actor, subject) == ("user_edited", "us.admin", "gb.one")
    assert "e-mail address set" in comment
    # The list and the edit page show it.
    row = admin.get("/admin/users").text.split(">gb.one</th>")[1].split("</tr>")[0]
    assert "ann.jones@mod.example" in row
    assert 'value="ann.jones@mod.example"' in admin.get(path).text
    # Emptied: notifications stay in the app.
    admin.post(path, data=edit_form(app, "gb.one", email=""))
    assert email_of(app, "gb.one") is None
    assert "e-mail address removed" in audited(app, "user_edited")[-1][3]


def test_a_bad_e_mail_address_is_refused_as_the_command_line_refuses_it(app, admin, people):
    path = f"/admin/users/{people['gb.one']}/edit"
    for bad in ("not-an-address", "@example.org", "ann jones@mod.example",
                "a@" + "x" * 260):
        response = admin.post(path, data=edit_form(app, "gb.one", email=bad))
        assert response.status_code == 422, bad
        assert "Give an e-mail address of up to 254 characters" in response.text, bad
    assert email_of(app, "gb.one") is None
    assert audited(app, "user_edited") == []


# --- the two rules -------------------------------------------------------------------------
def test_an_admin_may_not_raise_their_own_rights(app, admin, people):
    path = f"/admin/users/{people['us.admin']}/edit"
    assert 'data-testid="own-account"' in admin.get(path).text
    for changes, message in (({"roles": ["admin", "analyst"]}, "may not give yourself roles"),
                             ({"nation": "GBR"}, "may not change your own nation"),
                             ({"active": None}, "may not deactivate your own account")):
        response = admin.post(path, data=edit_form(app, "us.admin", **changes))
        assert response.status_code == 422, changes
        assert message in response.text
    assert stored(app, "us.admin") == {"nation": "USA", "roles": {"admin"}, "active": True,
                                       "display_name": "us.admin", "unit": ""}
    # Their own password they change on the account page, which asks for the current one.
    own = f"/admin/users/{people['us.admin']}/password"
    assert "account page" in admin.get(own).text
    response = admin.post(own, data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD})
    assert response.status_code == 422
    assert audited(app, "roles_changed", "user_edited", "user_deactivated",
                   "password_reset") == []
    assert logged_in(admin)


def test_the_last_active_admin_cannot_be_demoted(app, admin, people, make_user):
    make_user("old.admin", "USA", ("admin",), active=False)  # inactive: does not count
    path = f"/admin/users/{people['us.admin']}/edit"
    response = admin.post(path, data=edit_form(app, "us.admin", roles=["contributor"]))
    # Gaining contributor is refused as well as losing admin; the last-admin rule is said.
    assert response.status_code == 422
    response = admin.post(path, data=edit_form(app, "us.admin", roles=[]))
    assert response.status_code == 422
    assert "last active administrator" in response.text
    assert stored(app, "us.admin")["roles"] == {"admin"}


def test_with_another_admin_one_may_step_down_and_demote_the_other(app, admin, people,
                                                                     make_user, login_as):
    make_user("gb.admin", "GBR", ("admin", "analyst"))
    other = login_as("gb.admin")
    # us.admin demotes gb.admin: gb.admin's sessions end.
    response = admin.post("/admin/users/{}/edit".format(_id(app, "gb.admin")),
                          data=edit_form(app, "gb.admin", roles=["analyst"]))
    assert response.status_code == 302
    assert not logged_in(other)
    # Now us.admin is the last one and may not step down...
    response = admin.post(f"/admin/users/{people['us.admin']}/edit",
                          data=edit_form(app, "us.admin", roles=[]))
    assert response.status_code == 422
    # ...until gb.admin is an admin again; then stepping down keeps them logged in,
    # without the admin pages.
    admin.post("/admin/users/{}/edit".format(_id(app, "gb.admin")),
               data=edit_form(app, "gb.admin", roles=["admin", "analyst"]))
    response = admin.post(f"/admin/users/{people['us.admin']}/edit",
                          data=edit_form(app, "us.admin", roles=[]))
    assert response.status_code == 302 and response.location == "/"
    assert stored(app, "us.admin")["roles"] == set()
    assert logged_in(admin)
    assert admin.get("/admin/users").status_code == 403
    assert [row[:3] for row in audited(app, "roles_changed")] == [
        ("roles_changed", "us.admin", "gb.admin"), ("roles_changed", "us.admin", "gb.admin"),
        ("roles_changed", "us.admin", "us.admin")]


def _id(app: Flask, username: str) -> int:
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.username == username))


# --- passwords ------------------------------------------------------------------------------
def test_reset_password_ends_sessions_and_the_new_one_works(app, admin, people, login_as):
    one = login_as("gb.one")
    path = f"/admin/users/{people['gb.one']}/password"
    page = admin.get(path)
    assert page.status_code == 200 and f"At least {PASSWORD_MIN}" in page.text
    response = admin.post(path, data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD})
    assert response.status_code == 302
    assert not logged_in(one)
    login(app.test_client(), "gb.one", NEW_PASSWORD)
    old = app.test_client().post("/login", data={"username": "gb.one", "password": "demo"})
    assert old.status_code != 302
    assert audited(app, "password_reset") == [
        ("password_reset", "us.admin", "gb.one", "password of gb.one reset")]


def test_reset_password_refuses_weak_or_mismatched_passwords(app, admin, people, login_as):
    one = login_as("gb.one")
    path = f"/admin/users/{people['gb.one']}/password"
    for data, message in (({"password": "short", "password_again": "short"}, "At least"),
                          ({"password": NEW_PASSWORD, "password_again": "other"}, "differ"),
                          ({"password": "x" * 5000, "password_again": "x" * 5000}, "At most"),
                          ({}, "required")):
        response = admin.post(path, data=data)
        assert response.status_code == 422, data
        assert message in response.text, data
    assert logged_in(one)
    assert audited(app, "password_reset") == []


# --- CSRF ------------------------------------------------------------------------------------
@pytest.fixture
def csrf_admin(people, request) -> FlaskClient:
    """us.admin on the app with CSRF on (``tests.test_csrf``'s fixtures)."""
    return request.getfixturevalue("csrf_client")("us.admin")


def test_the_edit_form_refuses_a_post_without_its_csrf_token(app, people, csrf_admin):
    client = csrf_admin
    path = f"/admin/users/{people['gb.one']}/edit"
    form = form_on(client.get(path).text)
    refused = client.post(path, data=form.data(token=False, nation="AUS"))
    assert refused.status_code in (400, 422)
    assert stored(app, "gb.one")["nation"] == "GBR"
    accepted = client.post(path, data=form.data(nation="AUS"))
    assert accepted.status_code == 302
    assert stored(app, "gb.one")["nation"] == "AUS"


def test_every_post_form_on_the_user_pages_carries_a_token(people, csrf_admin):
    client = csrf_admin
    for page in PAGES[1:]:
        path = page.format(id=people["gb.one"])
        form = form_on(client.get(path).text)  # asserts the token is there
        assert client.post(path, data=form.data(token=False)).status_code in (400, 422)


def test_a_save_from_a_stale_edit_page_is_refused_and_overwrites_nothing(app, admin, people,
                                                                           login_as):
    """Two administrators open the same user's edit page; the first saves. The second's
    save, made on what the page showed before, is refused with 409 and says so, instead
    of silently putting back the old unit."""
    path = f"/admin/users/{people['gb.one']}/edit"
    page = admin.get(path)
    assert f'name="version" type="hidden" value="{version_of(app, "gb.one")}"' in page.text
    loaded = edit_form(app, "gb.one")
    other = login_as("us.admin")
    assert other.post(path, data={**loaded, "unit": "2 Bde"}).status_code == 302
    assert version_of(app, "gb.one") == int(loaded["version"]) + 1
    refused = admin.post(path, data={**loaded, "display_name": "Maj Ann Jones"})
    assert refused.status_code == 409
    assert "Someone else saved this user while you were editing" in refused.text
    assert "Nothing of yours was saved" in refused.text
    # What the other administrator saved is shown; what this one typed is kept, on the
    # newer version, so saving again is a deliberate choice.
    assert "2 Bde" in refused.text.split('id="conflict"')[1].split("</section>")[0]
    assert 'value="Maj Ann Jones"' in refused.text
    assert f'value="{version_of(app, "gb.one")}"' in refused.text
    data = stored(app, "gb.one")
    assert (data["unit"], data["display_name"]) == ("2 Bde", "Capt Ann Jones")
    assert len(audited(app, "user_edited")) == 1
    again = admin.post(path, data={**loaded, "unit": "2 Bde", "display_name": "Maj Ann Jones",
                                   "version": str(version_of(app, "gb.one"))})
    assert again.status_code == 302
    assert stored(app, "gb.one")["display_name"] == "Maj Ann Jones"


def test_a_save_that_does_not_say_its_version_is_refused(app, admin, people):
    form = edit_form(app, "gb.one", unit="2 Bde")
    for version in (None, "", "two"):
        data = {**form, "version": version} if version is not None else {
            k: v for k, v in form.items() if k != "version"}
        response = admin.post(f"/admin/users/{people['gb.one']}/edit", data=data)
        assert response.status_code == 400, version
        assert "did not say which version" in response.text
    assert stored(app, "gb.one")["unit"] == "1 Mech Bde"


# --- two administrators at once --------------------------------------------------------------
def test_two_admins_stepping_down_at_once_leave_one_admin(app, people, make_user,
                                                           monkeypatch):
    """Each alone may step down (the other stays); both at once must not leave nobody.
    The count of the other administrators is slowed, so without the row locks both
    requests would count one and both succeed."""
    from lessons.services import users as service  # noqa: PLC0415
    from tests.http_client import Http, race, serving  # noqa: PLC0415

    make_user("gb.admin", "GBR", ("admin",))
    counted = service._other_admins

    def slow_count(user: User) -> int:
        found = counted(user)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(service, "_other_admins", slow_count)
    with serving(app) as address:
        clients = {name: Http(address).login(name) for name in ("us.admin", "gb.admin")}

        def step_down(name: str):
            path = f"/admin/users/{_id(app, name)}/edit"
            return clients[name].send("POST", path, form=edit_form(app, name, roles=[]))

        replies = race(lambda: step_down("us.admin"), lambda: step_down("gb.admin"))
    assert sorted(reply.status for reply in replies) == [302, 422]
    assert [stored(app, name)["roles"] for name in ("us.admin", "gb.admin")].count(
        {"admin"}) == 1
    assert len(audited(app, "roles_changed")) == 1


def test_two_admins_saving_the_same_user_at_once_one_is_refused(app, people, make_user,
                                                                  monkeypatch):
    """Both loaded the page at the same version and save at once; the rule check is
    slowed so both would pass it together. Exactly one save lands, the other is 409."""
    from lessons.services import users as service  # noqa: PLC0415
    from tests.http_client import Http, race, serving  # noqa: PLC0415

    make_user("gb.admin", "GBR", ("admin",))
    refusals = service._refusals

    def slow_refusals(*args, **kwargs):
        found = refusals(*args, **kwargs)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(service, "_refusals", slow_refusals)
    loaded = edit_form(app, "gb.one")
    path = f"/admin/users/{people['gb.one']}/edit"
    with serving(app) as address:
        clients = [Http(address).login(name) for name in ("us.admin", "gb.admin")]
        replies = race(
            lambda: clients[0].send("POST", path, form={**loaded, "unit": "2 Bde"}),
            lambda: clients[1].send("POST", path, form={**loaded, "unit": "3 Bde"}))
    assert sorted(reply.status for reply in replies) == [302, 409]
    assert stored(app, "gb.one")["unit"] in ("2 Bde", "3 Bde")
    assert version_of(app, "gb.one") == int(loaded["version"]) + 1
    assert len(audited(app, "user_edited")) == 1
