"""Security events in the audit trail: every log-in, failure (unknown names too),
lockout, log-out and password change, each naming the account it is about and the
client address it came from."""

from __future__ import annotations

from sqlalchemy import select

from lessons import create_app
from lessons.extensions import db
from lessons.models import AuditRecord
from tests.conftest import login

NEW = "lantern orchard gravel"


def events(app, *actions: str) -> list[tuple]:
    """(action, actor's username or None, subject, address, comment) in order."""
    with app.app_context():
        query = select(AuditRecord).order_by(AuditRecord.id)
        if actions:
            query = query.where(AuditRecord.action.in_(actions))
        return [(e.action, e.actor.username if e.actor else None, e.subject, e.address,
                 e.comment) for e in db.session.scalars(query)]


def test_a_log_in_and_a_log_out_are_recorded_with_the_address(app, client, make_user):
    make_user("gb.one")
    client.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    login(client, "gb.one")
    assert client.post("/logout").status_code == 302
    assert [e[:4] for e in events(app, "login", "logout")] == [
        ("login", "gb.one", "gb.one", "10.1.2.3"), ("logout", "gb.one", "gb.one", "10.1.2.3")]


def test_a_wrong_password_is_recorded_as_the_accounts(app, client, make_user):
    make_user("gb.one")
    assert client.post("/login", data={"username": "GB.One ", "password": "guess"}
                       ).status_code == 401
    assert events(app, "login_failed", "login") == [
        ("login_failed", "gb.one", "gb.one", "127.0.0.1", "wrong password (log-in)")]


def test_an_unknown_username_is_recorded_as_typed_without_an_actor(app, client):
    typed = "Nobody." + "x" * 57  # 64 characters, the most the form takes
    assert client.post("/login", data={"username": typed, "password": "guess"}
                       ).status_code == 401
    assert events(app, "login_failed") == [
        ("login_failed", None, typed.lower(), "127.0.0.1", "unknown username (log-in)")]


def test_an_inactive_account_is_recorded_as_such(app, client, make_user):
    make_user("gb.gone", active=False)
    assert client.post("/login", data={"username": "gb.gone", "password": "demo"}
                       ).status_code == 401
    assert [e[4] for e in events(app, "login_failed")] == ["inactive account (log-in)"]


def test_a_lockout_follows_the_failure_that_caused_it(app, database_url, tmp_path, make_user):
    make_user("gb.one")
    strict = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                        INDEX_DIR=str(tmp_path / "index"), LOGIN_FAILURES_ALLOWED=2)
    client = strict.test_client()
    statuses = [client.post("/login", data={"username": "gb.one", "password": "guess"}
                            ).status_code for _ in range(3)]
    assert statuses == [401, 429, 429]  # the third is refused unchecked: not recorded
    assert [e[:4] for e in events(app, "login_failed", "login_locked")] == [
        ("login_failed", "gb.one", "gb.one", "127.0.0.1"),
        ("login_failed", "gb.one", "gb.one", "127.0.0.1"),
        ("login_locked", "gb.one", "gb.one", "127.0.0.1")]
    with strict.app_context():
        db.engine.dispose()


def test_a_password_change_and_a_wrong_current_password_are_recorded(app, make_user):
    make_user("gb.one")
    client = app.test_client()
    login(client, "gb.one")
    form = {"current_password": "guess", "new_password": NEW, "new_password_again": NEW}
    assert client.post("/account/password", data=form).status_code == 422
    form["current_password"] = "demo"
    assert client.post("/account/password", data=form).status_code == 302
    assert [e[:4] for e in events(app, "login_failed", "password_changed")] == [
        ("login_failed", "gb.one", "gb.one", "127.0.0.1"),
        ("password_changed", "gb.one", "gb.one", "127.0.0.1")]
    assert events(app, "login_failed")[0][4] == "wrong password (password change)"
