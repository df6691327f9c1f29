"""Log-in sessions end: at log-out (a copied cookie included), when the password, roles or
active flag change, after idleness and at their maximum age; a new session at each
log-in; and the client address they are bound to cannot be forged."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from lessons import create_app
from lessons.extensions import db
from lessons.models import ApiToken, User
from lessons.models.base import utcnow
from lessons.models.user import UserSession
from tests.conftest import login


@pytest.fixture
def app_with(app, database_url, tmp_path):
    """An app of the test's own settings on the shared database (``app`` cleans it)."""
    made = []

    def _make(**settings):
        made.append(create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                               INDEX_DIR=str(tmp_path / f"index{len(made)}"), **settings))
        return made[-1]

    yield _make
    for other in made:
        with other.app_context():
            db.engine.dispose()


def copy_cookie(source, target) -> None:
    target.set_cookie("session", source.get_cookie("session").value)


def logged_in(client) -> bool:
    response = client.get("/account")
    assert response.status_code in (200, 302)
    return response.status_code == 200


def test_a_copied_cookie_stops_working_at_logout_and_cannot_mint_a_token(app, make_user):
    make_user("gb.one")
    owner, thief = app.test_client(), app.test_client()
    login(owner, "gb.one")
    copy_cookie(owner, thief)
    assert logged_in(thief)  # the copy works while the session lasts
    assert owner.post("/logout").status_code == 302
    assert not logged_in(owner)
    assert not logged_in(thief)
    response = thief.post("/account/tokens", data={"name": "stolen"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_logging_out_ends_only_that_session(app, make_user):
    make_user("gb.one")
    phone, desk = app.test_client(), app.test_client()
    login(phone, "gb.one")
    login(desk, "gb.one")
    phone.post("/logout")
    assert not logged_in(phone) and logged_in(desk)


def new_password(client, current: str, new: str):
    return client.post("/account/password", data={
        "current_password": current, "new_password": new, "new_password_again": new})


def test_a_password_change_ends_every_other_session(app, make_user):
    make_user("gb.one")
    here, elsewhere = app.test_client(), app.test_client()
    login(here, "gb.one")
    login(elsewhere, "gb.one")
    response = new_password(here, "demo", "lantern orchard gravel")
    assert response.status_code == 302
    assert "logged out everywhere else" in here.get(response.headers["Location"]).text
    assert logged_in(here) and not logged_in(elsewhere)
    assert app.test_client().post("/login", data={
        "username": "gb.one", "password": "demo"}).status_code == 401
    login(app.test_client(), "gb.one", "lantern orchard gravel")


def test_a_wrong_current_password_changes_nothing(app, make_user):
    make_user("gb.one")
    client = login_client(app, "gb.one")
    response = new_password(client, "not it", "lantern orchard gravel")
    assert response.status_code == 422
    assert "That is not your current password." in response.text
    assert logged_in(client)
    login(app.test_client(), "gb.one", "demo")


def login_client(app, username: str):
    client = app.test_client()
    login(client, username)
    return client


@pytest.mark.parametrize("change", ["roles", "deactivated and reactivated"])
def test_a_change_of_roles_or_active_flag_ends_the_users_sessions(app, make_user, change):
    user = make_user("gb.one")
    other = make_user("gb.two")
    client, bystander = login_client(app, "gb.one"), login_client(app, "gb.two")
    with app.app_context():
        row = db.session.get(User, user.id)
        if change == "roles":
            row.roles = {"contributor", "analyst"}
            db.session.commit()
        else:
            row.active = False
            db.session.commit()
            row.active = True
            db.session.commit()
    assert not logged_in(client)
    assert logged_in(bystander)
    login(client, "gb.one")  # a new log-in works
    assert logged_in(client)
    assert other.id != user.id


def age_sessions(app, **ago: timedelta) -> None:
    """Move every session's clock back, as if that much time had passed."""
    now = utcnow()
    with app.app_context():
        db.session.execute(update(UserSession).values(
            {name: now - delta for name, delta in ago.items()}))
        db.session.commit()


def test_a_session_ends_after_eight_idle_hours(app, make_user):
    make_user("gb.one")
    client = login_client(app, "gb.one")
    age_sessions(app, last_seen_at=timedelta(hours=7, minutes=50))
    assert logged_in(client)  # and that request counts as activity
    age_sessions(app, last_seen_at=timedelta(hours=8, minutes=1))
    assert not logged_in(client)
    with app.app_context():  # and its row is gone
        assert db.session.scalar(select(func.count()).select_from(UserSession)) == 0


def test_sessions_nobody_ended_are_cleared_when_anyone_logs_in(app, make_user):
    make_user("gb.one")
    make_user("gb.two")
    login_client(app, "gb.one")  # and the browser is closed
    age_sessions(app, last_seen_at=timedelta(hours=9))
    login_client(app, "gb.two")
    with app.app_context():
        owners = db.session.scalars(select(UserSession.user_id)).all()
        assert owners == [db.session.scalar(select(User.id).where(User.username == "gb.two"))]


def test_a_session_ends_a_day_after_login_however_busy(app, make_user):
    make_user("gb.one")
    client = login_client(app, "gb.one")
    age_sessions(app, created_at=timedelta(hours=23, minutes=59))
    assert logged_in(client)
    age_sessions(app, created_at=timedelta(hours=24, minutes=1))
    assert not logged_in(client)


def test_the_timeouts_are_settings(app_with, database_url, make_user):
    short = app_with(SESSION_IDLE_MINUTES="5")
    make_user("gb.one")
    client = login_client(short, "gb.one")
    age_sessions(short, last_seen_at=timedelta(minutes=6))
    assert not logged_in(client)
    with pytest.raises(RuntimeError, match="MUSTER_SESSION_MAX_HOURS"):
        create_app("testing", SQLALCHEMY_DATABASE_URI=database_url, SESSION_MAX_HOURS="a day")


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1]


def test_login_starts_a_new_session_and_csrf_token(app_with, make_user):
    """An attacker who planted a session (and knows its CSRF token) before the victim
    logs in gains nothing."""
    guarded = app_with(WTF_CSRF_ENABLED=True)
    make_user("gb.one")
    victim, attacker = guarded.test_client(), guarded.test_client()
    planted = csrf_token(attacker.get("/login").text)
    copy_cookie(attacker, victim)
    response = victim.post("/login", data={"username": "gb.one", "password": "demo",
                                           "csrf_token": planted})
    assert response.status_code == 302
    assert not logged_in(attacker)  # the planted cookie is not the logged-in one
    assert victim.post("/logout", data={"csrf_token": planted}).status_code == 400
    fresh = csrf_token(victim.get("/logout").text)
    assert fresh != planted
    assert victim.post("/logout", data={"csrf_token": fresh}).status_code == 302


def client_from(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_a_forged_forwarded_for_neither_moves_nor_borrows_an_address(app, make_user):
    make_user("gb.one")
    owner = client_from(app, "10.1.1.1")
    login(owner, "gb.one")
    # The owner's requests claiming another address are still the owner's.
    assert owner.get("/account", headers={"X-Forwarded-For": "192.0.2.7"}).status_code == 200
    thief = client_from(app, "10.9.9.9")
    copy_cookie(owner, thief)
    forged = thief.get("/account", headers={"X-Forwarded-For": "10.1.1.1"})
    assert forged.status_code == 302  # another address: the session is over
    assert not logged_in(owner)  # for everyone: the cookie was stolen


def test_behind_a_configured_proxy_the_forwarded_address_counts(app_with, make_user):
    proxied = app_with(PROXIES="1")
    make_user("gb.one")
    client = client_from(proxied, "127.0.0.1")  # the proxy
    response = client.post("/login", data={"username": "gb.one", "password": "demo"},
                           headers={"X-Forwarded-For": "10.1.1.1"})
    assert response.status_code == 302
    # A client in front of the proxy forging the header: only the proxy's entry counts.
    as_seen = client.get("/account", headers={"X-Forwarded-For": "192.0.2.7, 10.1.1.1"})
    assert as_seen.status_code == 200
    moved = client.get("/account", headers={"X-Forwarded-For": "10.2.2.2"})
    assert moved.status_code == 302


def test_hsts_behind_a_proxy_that_ends_tls_but_not_on_a_forged_scheme(app_with):
    """The proxy's X-Forwarded-Proto makes the answer HSTS; without a configured proxy,
    the same header from a client is ignored."""
    hsts = "Strict-Transport-Security"
    proxied = client_from(app_with(PROXIES="1"), "127.0.0.1")
    assert hsts in proxied.get("/login", headers={"X-Forwarded-Proto": "https"}).headers
    assert hsts not in proxied.get("/login").headers
    direct = client_from(app_with(), "127.0.0.1")
    assert hsts not in direct.get("/login", headers={"X-Forwarded-Proto": "https"}).headers
