"""The admins' glossary: kept in the database, edited in the app by admins only, audited,
validated as a whole, and picked up by every process on its next search without a restart.

The test database comes from ``create_all``, so tests that want the shipped glossary load
it through ``load_defaults`` as the demo loader does; a migrated database has it already.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import flask_migrate
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from lessons import create_app
from lessons.extensions import db
from lessons.models import AuditRecord, GlossaryGroup, User
from lessons.search.glossary import (
    MAX_GROUP_TERMS,
    MAX_GROUPS,
    MAX_NOTE_LENGTH,
    MAX_TERM_LENGTH,
    load_default_entries,
)
from lessons.services import glossary as service
from tests.test_migrations import running_alembic

LNO = ["lno", "lo", "liaison officer"]


# --- helpers -----------------------------------------------------------------------------
@pytest.fixture
def admin(make_user) -> str:
    make_user("us.admin", "USA", ("admin",))
    return "us.admin"


@pytest.fixture
def admin_client(admin, login_as) -> FlaskClient:
    return login_as(admin)


def stored_groups(app: Flask) -> list[list[str]]:
    with app.app_context():
        return [list(t) for t in db.session.scalars(
            select(GlossaryGroup.terms).order_by(GlossaryGroup.id))]


def add_group(app: Flask, terms: list[str], note: str = "") -> int:
    """A group written straight through the service (as the admin ``us.admin``)."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "us.admin"))
        return service.create_group(user, terms, note).id


def audit_trail(app: Flask) -> list[tuple[str, str | None, str, list | None]]:
    with app.app_context():
        rows = db.session.execute(
            select(AuditRecord.action, User.username, AuditRecord.comment, AuditRecord.changes)
            .outerjoin(User, AuditRecord.actor_id == User.id)
            .where(AuditRecord.action.like("glossary%")).order_by(AuditRecord.id)).all()
        return [tuple(row) for row in rows]


def revision(app: Flask) -> int | None:
    with app.app_context():
        return service.revision()


def terms_text(*terms: str) -> str:
    return "\r\n".join(terms)  # as a browser sends a textarea


# --- who may use it ----------------------------------------------------------------------
ADMIN_PAGES = ["/admin/glossary", "/admin/glossary/new", "/admin/glossary/{id}/edit",
               "/admin/glossary/{id}/delete", "/admin/glossary/reset"]


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_anonymous_users_are_sent_to_log_in(app, client, admin, path):
    group_id = add_group(app, LNO)
    response = client.get(path.format(id=group_id))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("roles", [("contributor",), ("analyst", "contributor"), ("planner",)])
@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_non_admins_get_403_on_every_page(app, admin, make_user, login_as, roles, path):
    make_user("gb.user", "GBR", roles)
    group_id = add_group(app, LNO)
    response = login_as("gb.user").get(path.format(id=group_id))
    assert response.status_code == 403
    assert "Only administrators" in response.text


@pytest.mark.parametrize("path, data", [
    ("/admin/glossary/new", {"terms": terms_text("cp", "command post")}),
    ("/admin/glossary/{id}/edit", {"terms": terms_text("lno", "lo")}),
    ("/admin/glossary/{id}/delete", {}),
    ("/admin/glossary/reset", {}),
])
def test_non_admin_posts_are_refused_and_change_nothing(app, admin, make_user, login_as,
                                                        path, data):
    make_user("gb.analyst", "GBR", ("analyst",))
    group_id = add_group(app, LNO)
    before = (stored_groups(app), revision(app), audit_trail(app))
    response = login_as("gb.analyst").post(path.format(id=group_id), data=data)
    assert response.status_code == 403
    assert (stored_groups(app), revision(app), audit_trail(app)) == before


def test_the_services_refuse_non_admins_too(app, make_user):
    make_user("gb.author", "GBR")
    from lessons.errors import NotAllowed

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "gb.author"))
        with pytest.raises(NotAllowed):
            service.create_group(user, ["cp", "command post"])
        with pytest.raises(NotAllowed):
            service.list_groups(user)


def test_only_admins_see_the_glossary_link(admin, make_user, login_as):
    make_user("gb.author", "GBR")
    assert 'href="/admin/glossary"' in login_as(admin).get("/lessons").text
    assert 'href="/admin/glossary"' not in login_as("gb.author").get("/lessons").text


# --- the list ------------------------------------------------------------------------------
def test_list_shows_counts_and_every_group(app, admin_client):
    with app.app_context():
        loaded = service.load_defaults()
    page = admin_client.get("/admin/glossary")
    assert page.status_code == 200
    terms = sum(len(e.terms) for e in load_default_entries())
    assert f"{loaded} groups,\n  {terms} terms" in page.text
    assert f"at most {MAX_GROUPS} groups" in page.text
    assert page.text.count('/edit"') == loaded


def test_filter_box_narrows_by_term_or_note(app, admin_client):
    add_group(app, LNO, "US staffs write LNO.")
    add_group(app, ["cp", "command post"], "Where the staff works.")
    add_group(app, ["ied", "improvised explosive device"])
    page = admin_client.get("/admin/glossary", query_string={"q": "LIAISON"}).text
    assert "1 of 3 groups match" in page
    assert "liaison officer" in page and "command post" not in page
    page = admin_client.get("/admin/glossary", query_string={"q": "staff"}).text
    assert "2 of 3 groups match" in page and "improvised" not in page


# --- create, edit, delete ------------------------------------------------------------------
def test_admin_creates_a_group_and_it_is_audited(app, admin_client):
    response = admin_client.post("/admin/glossary/new", data={
        "terms": terms_text("  LNO ", "LO", "", "Liaison   Officer", "lno"),
        "note": "US and Commonwealth usage."})
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/glossary"
    assert stored_groups(app) == [LNO]  # cleaned: trimmed, lower case, no blanks or repeats
    assert audit_trail(app) == [("glossary_group_created", "us.admin",
                                 f"Glossary group {_only_id(app)}: lno, lo, liaison officer",
                                 None)]
    assert "Glossary group added" in admin_client.get("/admin/glossary").text


def _only_id(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(GlossaryGroup.id))


def test_admin_edits_a_group_and_it_is_audited(app, admin, admin_client):
    group_id = add_group(app, LNO, "old note")
    form = admin_client.get(f"/admin/glossary/{group_id}/edit")
    assert form.status_code == 200
    assert "liaison officer" in form.text and "old note" in form.text
    response = admin_client.post(f"/admin/glossary/{group_id}/edit", data={
        "terms": terms_text("LNO", "LO", "liaison officer", "liaison"), "note": "old note"})
    assert response.status_code == 302
    assert stored_groups(app) == [[*LNO, "liaison"]]
    action, actor, comment, changes = audit_trail(app)[-1]
    assert (action, actor, changes) == ("glossary_group_edited", "us.admin", ["terms"])
    assert comment.endswith("lno, lo, liaison officer -> lno, lo, liaison officer, liaison")
    with app.app_context():
        group = db.session.get(GlossaryGroup, group_id)
        assert group.updated_by.username == "us.admin"


def test_saving_an_unchanged_group_stores_nothing(app, admin, admin_client):
    group_id = add_group(app, LNO, "note")
    before = (revision(app), audit_trail(app))
    response = admin_client.post(f"/admin/glossary/{group_id}/edit",
                                 data={"terms": terms_text(*LNO), "note": "note"})
    assert response.status_code == 302
    assert (revision(app), audit_trail(app)) == before


def test_delete_asks_for_confirmation_then_deletes_and_audits(app, admin, admin_client):
    group_id = add_group(app, LNO, "why")
    confirm = admin_client.get(f"/admin/glossary/{group_id}/delete")
    assert confirm.status_code == 200
    assert "Delete this glossary group?" in confirm.text
    assert stored_groups(app) == [LNO]  # asking deletes nothing
    response = admin_client.post(f"/admin/glossary/{group_id}/delete")
    assert response.status_code == 302
    assert stored_groups(app) == []
    assert audit_trail(app)[-1] == ("glossary_group_deleted", "us.admin",
                                    f"Glossary group {group_id}: lno, lo, liaison officer "
                                    "(note: why)", None)


def test_a_missing_group_is_404(admin, admin_client):
    assert admin_client.get("/admin/glossary/999999/edit").status_code == 404
    assert admin_client.post("/admin/glossary/999999/delete").status_code == 404
    assert admin_client.post("/admin/glossary/999999/edit",
                             data={"terms": terms_text("a1", "b1")}).status_code == 404


def test_reset_restores_the_shipped_glossary(app, admin, admin_client):
    add_group(app, ["cp", "command post"])
    assert admin_client.get("/admin/glossary/reset").status_code == 200
    response = admin_client.post("/admin/glossary/reset")
    assert response.status_code == 302
    assert stored_groups(app) == [e.terms for e in load_default_entries()]
    assert audit_trail(app)[-1][:2] == ("glossary_reset", "us.admin")


# --- refusals --------------------------------------------------------------------------------
def assert_refused(response, *messages: str) -> None:
    assert response.status_code == 422
    assert "Nothing was saved." in response.text
    for message in messages:
        assert message in response.text, message


def test_a_term_already_in_another_group_is_refused_with_a_clear_message(app, admin,
                                                                        admin_client):
    add_group(app, LNO)
    before = (stored_groups(app), revision(app), audit_trail(app))
    response = admin_client.post("/admin/glossary/new", data={
        "terms": terms_text("liaison officer", "liaison team", "LO")})
    assert_refused(response,
                   "The term &#34;liaison officer&#34; is in the group (&#34;lno&#34;, "
                   "&#34;lo&#34;, &#34;liaison officer&#34;) and this group; a term may "
                   "belong to one group only.",
                   "The term &#34;lo&#34; is in the group")
    assert 'id="terms-error"' in response.text  # shown next to the field
    assert (stored_groups(app), revision(app), audit_trail(app)) == before


def test_a_spelling_variant_counts_as_the_same_term(app, admin, admin_client):
    add_group(app, ["ministry of defence", "mod"])
    response = admin_client.post("/admin/glossary/new",
                                 data={"terms": terms_text("ministry of defense", "dod")})
    assert_refused(response, "as &#34;ministry of defence&#34;")
    assert len(stored_groups(app)) == 1


def test_an_edit_that_clashes_with_another_group_keeps_the_old_terms(app, admin,
                                                                     admin_client):
    add_group(app, LNO)
    group_id = add_group(app, ["cp", "command post"])
    response = admin_client.post(f"/admin/glossary/{group_id}/edit",
                                 data={"terms": terms_text("cp", "command post", "lno")})
    assert_refused(response, "The term &#34;lno&#34; is in the group")
    assert stored_groups(app) == [LNO, ["cp", "command post"]]


@pytest.mark.parametrize("terms, message", [
    (["alone"], "This group has fewer than 2 different terms."),
    (["defence x", "defense x"], "This group has fewer than 2 different terms."),
    ([], "This group has fewer than 2 different terms."),
    ([f"t{n}" for n in range(MAX_GROUP_TERMS + 1)],
     f"This group has {MAX_GROUP_TERMS + 1} terms; at most {MAX_GROUP_TERMS} are allowed."),
    (["x" * (MAX_TERM_LENGTH + 1), "y"], f"is longer than {MAX_TERM_LENGTH} characters."),
    (["/", "q", "r"], "has no letters or digits."),
    (["q" * 100_000, "r"], f"Too long: at most {MAX_GROUP_TERMS} terms"),
])
def test_bad_groups_are_refused_with_a_message_never_a_500(app, admin_client, terms, message):
    response = admin_client.post("/admin/glossary/new", data={"terms": terms_text(*terms)})
    assert_refused(response, message)
    assert stored_groups(app) == []


def test_an_over_long_note_is_refused(app, admin_client):
    response = admin_client.post("/admin/glossary/new", data={
        "terms": terms_text("cp", "command post"), "note": "n" * (MAX_NOTE_LENGTH + 1)})
    assert_refused(response, f"At most {MAX_NOTE_LENGTH} characters.")
    assert stored_groups(app) == []


def test_several_problems_are_each_listed(app, admin, admin_client):
    add_group(app, LNO)
    response = admin_client.post("/admin/glossary/new", data={
        "terms": terms_text("lno", "z" * (MAX_TERM_LENGTH + 1), "--")})
    assert_refused(response, "The term &#34;lno&#34; is in the group",
                   f"longer than {MAX_TERM_LENGTH} characters",
                   "the term &#34;--&#34; has no letters or digits")
    assert response.text.count('class="error"') == 3


def test_a_full_glossary_refuses_another_group(app, admin):
    with app.app_context():
        db.session.add_all(GlossaryGroup(terms=[f"a{n}", f"b{n}"], note="")
                           for n in range(MAX_GROUPS))
        db.session.commit()
        user = db.session.scalar(select(User).where(User.username == "us.admin"))
        from lessons.errors import ValidationFailed

        with pytest.raises(ValidationFailed) as refused:
            service.create_group(user, ["cp", "command post"])
        assert refused.value.errors == {
            "terms": f"There are {MAX_GROUPS + 1} groups; at most {MAX_GROUPS} are allowed."}
        assert db.session.scalar(select(func.count()).select_from(GlossaryGroup)) == MAX_GROUPS


# --- what search reads -------------------------------------------------------------------------
@pytest.fixture
def other_process(app: Flask, database_url: str) -> Iterator[Flask]:
    """A second app on the same database: another worker process, as far as the cache
    can tell (its cache lives on its own app object)."""
    other = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                       INDEX_DIR=app.config["INDEX_DIR"])
    yield other
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


def test_current_reflects_an_edit_made_by_another_process(app, admin, other_process):
    with app.app_context():
        service.load_defaults()
        before = service.current()
        assert "liaison officer" in before.expansions("LNO")
        assert before.expansions("liaison") == []
        assert service.current() is before  # unchanged revision: the built one is reused
    with other_process.app_context():
        user = db.session.scalar(select(User).where(User.username == "us.admin"))
        group_id = next(g.id for g in service.list_groups(user, "liaison officer").groups
                        if "lno" in g.terms)
        group = service.get_group(user, group_id)
        service.update_group(user, group_id, [*group.terms, "liaison"], group.note)
    with app.app_context():
        after = service.current()
        assert after is not before
        assert "liaison" in after.expansions("LNO")
        assert "lno" in after.expansions("liaison")


def test_current_drops_a_deleted_group_and_sees_a_new_one(app, admin):
    group_id = add_group(app, LNO)
    with app.app_context():
        assert service.current().expansions("lo") == ["lno", "liaison officer"]
    add_group(app, ["cp", "command post"])
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "us.admin"))
        service.delete_group(user, group_id)
        glossary = service.current()
    assert glossary.expansions("lo") == []
    assert glossary.expansions("command post") == ["cp"]


def test_load_defaults_fills_an_empty_glossary_once(app):
    entries = load_default_entries()
    with app.app_context():
        assert service.load_defaults() == len(entries) >= 60
        assert service.load_defaults() == 0
        assert len(service.current()) == len(entries)
    assert audit_trail(app) == [("glossary_loaded", None,
                                 f"Loaded the {len(entries)} shipped glossary groups.", None)]


def test_demo_load_brings_the_default_glossary(app, demo):
    assert stored_groups(app) == [e.terms for e in load_default_entries()]


def test_a_migrated_database_has_the_default_glossary(tmp_path: Path):
    """``flask db upgrade`` on a fresh database seeds the shipped glossary and its revision
    (SQLite here; tests/test_migrations.py compares the schema on either backend)."""
    migrated = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'm.db'}",
                          INDEX_DIR=str(tmp_path / "index"))
    try:
        with migrated.app_context():
            with running_alembic():
                flask_migrate.upgrade()
            assert service.revision() == 1
            groups = db.session.scalars(select(GlossaryGroup).order_by(GlossaryGroup.id)).all()
            assert [g.terms for g in groups] == [e.terms for e in load_default_entries()]
            assert groups[0].note
            assert "liaison officer" in service.current().expansions("lno")
    finally:
        with migrated.app_context():
            db.session.remove()
            db.engine.dispose()
