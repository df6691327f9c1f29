"""Login, logout and the login requirement on every page."""

from __future__ import annotations

import pytest

from tests.conftest import login


def test_login_page_has_username_and_password_fields(client):
    page = client.get("/login").text
    assert 'name="username"' in page and 'name="password"' in page


def test_login_with_right_password_redirects_home(client, make_user):
    make_user("gb.one", "GBR")
    response = client.post("/login", data={"username": "gb.one", "password": "demo"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "gb.one" in client.get("/").text or "Welcome" in client.get("/").text


def test_login_is_case_insensitive_on_username(client, make_user):
    make_user("gb.one", "GBR")
    response = client.post("/login", data={"username": " GB.One ", "password": "demo"})
    assert response.status_code == 302


@pytest.mark.parametrize("username,password", [("gb.one", "wrong"), ("nobody", "demo")])
def test_wrong_credentials_are_refused_with_one_message(client, make_user, username, password):
    make_user("gb.one", "GBR")
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 401
    assert "Unknown username or wrong password." in response.text
    assert client.get("/lessons").status_code == 302  # still logged out


def test_empty_login_form_is_a_422_with_field_messages(client):
    response = client.post("/login", data={"username": "", "password": ""})
    assert response.status_code == 422
    assert "This field is required." in response.text


def test_inactive_user_cannot_log_in(client, make_user):
    make_user("gb.gone", "GBR", active=False)
    response = client.post("/login", data={"username": "gb.gone", "password": "demo"})
    assert response.status_code == 401


def test_deactivated_user_is_logged_out_at_next_request(app, client, make_user):
    from lessons.extensions import db
    from lessons.models import User

    user = make_user("gb.soon", "GBR")
    login(client, "gb.soon")
    assert client.get("/lessons").status_code == 200
    with app.app_context():
        db.session.get(User, user.id).active = False
        db.session.commit()
    assert client.get("/lessons").status_code == 302


@pytest.mark.parametrize("path", ["/", "/lessons", "/lessons/new", "/lessons/abc",
                                  "/lessons/abc/edit", "/logout"])
def test_pages_need_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("path", ["/lessons/abc/transition", "/lessons/abc/actions",
                                  "/lessons/new"])
def test_posts_need_login(client, path):
    response = client.post(path, data={"to": "validated"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_login_returns_to_the_page_asked_for(client, make_user):
    make_user("gb.one", "GBR")
    response = client.post("/login?next=/lessons", data={
        "username": "gb.one", "password": "demo", "next": "/lessons"})
    assert response.headers["Location"] == "/lessons"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil"])
def test_login_never_redirects_off_site(client, make_user, target):
    make_user("gb.one", "GBR")
    response = client.post("/login", data={"username": "gb.one", "password": "demo",
                                           "next": target})
    assert response.headers["Location"] == "/"


def test_logout_get_asks_and_post_logs_out(client, make_user):
    make_user("gb.one", "GBR")
    login(client, "gb.one")
    assert "Log out" in client.get("/logout").text
    assert client.get("/lessons").status_code == 200  # GET did not log out
    response = client.post("/logout")
    assert response.status_code == 302
    assert client.get("/lessons").status_code == 302


def test_passwords_are_stored_hashed(app, make_user):
    from lessons.extensions import db
    from lessons.models import User

    user = make_user("gb.one", "GBR", password="correct horse battery")
    with app.app_context():
        stored = db.session.get(User, user.id).password_hash
    assert "correct horse" not in stored
    assert stored.startswith(("scrypt:", "pbkdf2:"))


def test_production_hashes_with_scrypt():
    from config import ProductionConfig

    assert ProductionConfig.PASSWORD_HASH_METHOD == "scrypt"


def test_pages_carry_security_headers(client):
    headers = client.get("/login").headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


WEAK = [("short", "Tr0ub4dor&3", "At least 12 characters."),
        ("the username", "gb.strongman", "may not contain the username"),
        ("the username inside", "my-gb.strongman-2026", "may not contain the username"),
        ("common", "qwerty123456", "among the most common"),
        ("common, in capitals", "1Q2W3E4R5T6Y", "among the most common")]


@pytest.mark.parametrize("why,password,message", WEAK, ids=[w[0] for w in WEAK])
def test_weak_passwords_are_refused_at_creation(runner, client, why, password, message):
    result = runner.invoke(args=["users", "create", "gb.strongman", "--nation", "GBR",
                                 "--password-stdin"], input=password + "\n")
    assert result.exit_code == 2 and message in result.output
    assert client.post("/login", data={"username": "gb.strongman",
                                       "password": password}).status_code == 401


@pytest.mark.parametrize("why,password,message", WEAK, ids=[w[0] for w in WEAK])
def test_weak_passwords_are_refused_on_the_account_page(app, make_user, why, password,
                                                        message):
    make_user("gb.strongman")
    client = app.test_client()
    login(client, "gb.strongman")
    response = client.post("/account/password", data={
        "current_password": "demo", "new_password": password,
        "new_password_again": password})
    assert response.status_code == 422 and message in response.text
    login(app.test_client(), "gb.strongman", "demo")  # unchanged


def test_a_password_change_needs_the_new_password_twice(app, make_user):
    make_user("gb.one")
    client = app.test_client()
    login(client, "gb.one")
    assert 'name="new_password_again"' in client.get("/account").text
    response = client.post("/account/password", data={
        "current_password": "demo", "new_password": "lantern orchard gravel",
        "new_password_again": "lantern orchard grave1"})
    assert response.status_code == 422 and "The two new passwords differ." in response.text


def test_a_strong_password_is_accepted_and_only_demo_data_may_skip_the_rules(app, runner,
                                                                          make_user):
    result = runner.invoke(args=["users", "create", "gb.strongman", "--nation", "GBR",
                                 "--password-stdin"], input="lantern orchard gravel\n")
    assert result.exit_code == 0, result.output
    login(app.test_client(), "gb.strongman", "lantern orchard gravel")
    make_user("gb.demo", password="demo")  # the demo loader's path
    login(app.test_client(), "gb.demo", "demo")
