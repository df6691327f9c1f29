"""The federation's pages, through HTTP: the admins' ``/admin/peers`` (this instance's
key, every peer's bundles in and out, lag and last error, registering and removing a
peer), the "From ... Muster" line on a received lesson's page, and the ``origin:``
search filter. Two instances, A (GBR-army) and B (AUS-army), as in
``tests/test_federation.py``, whose fixtures and helpers these tests reuse."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from sqlalchemy import select

from lessons import create_app
from lessons.extensions import db
from lessons.federation import identity
from lessons.models import AuditRecord, Peer, User
from lessons.services import lessons as lesson_service
from lessons.services.users import create_user
from tests import test_federation
from tests.conftest import lesson_fields, login
from tests.test_federation import Instance, foreign, make_lesson, ship

pair = test_federation.pair  # the two instances, A and B (a fixture)


def new_key() -> str:
    return identity.encode_public(Ed25519PrivateKey.generate().public_key())


def admin_of(inst: Instance, nation: str) -> FlaskClient:
    username = f"{nation.lower()}_admin"
    with inst.app.app_context():
        if db.session.scalar(select(User).where(User.username == username)) is None:
            create_user(username, nation=nation, roles=("admin",), password="demo",
                        weak_password_ok=True)
    return inst.client(username)


def peer_row(page: str, name: str) -> str:
    """The table row of peer ``name`` on the peers page (its HTML)."""
    found = re.search(r'<tr data-peer="' + re.escape(name) + r'">(.*?)</tr>', page, re.S)
    assert found, f"no row for {name}"
    return found.group(1)


def cell(row: str, testid: str) -> str:
    found = re.search(r'data-testid="' + testid + r'"[^>]*>(.*?)</td>', row, re.S)
    assert found, testid
    return re.sub(r"<[^>]+>", "", found.group(1))


def peer_names(inst: Instance) -> list[str]:
    with inst.app.app_context():
        return list(db.session.scalars(select(Peer.name).order_by(Peer.name)))


def audited(inst: Instance, action: str) -> list[tuple[str | None, str | None]]:
    """(actor's username, subject) of the audit entries ``action``, oldest first."""
    with inst.app.app_context():
        return [tuple(row) for row in db.session.execute(
            select(User.username, AuditRecord.subject)
            .outerjoin(User, AuditRecord.actor_id == User.id)
            .where(AuditRecord.action == action).order_by(AuditRecord.id)).all()]


# --- /admin/peers: who may see it, what it shows ----------------------------------------------
def test_only_admins_see_the_peers_page(pair) -> None:
    _, b = pair
    page = admin_of(b, "AUS").get("/admin/peers")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    key = b.cli("federation", "key").output.strip()
    assert "AUS-army" in html and key in html and identity.fingerprint(key) in html
    row = peer_row(html, "GBR-army")
    assert "GBR" in row and cell(row, "out").strip() == "none yet"
    assert 'href="/admin/peers"' in html  # linked from the admin navigation
    assert b.client("aus_user").get("/admin/peers").status_code == 403
    assert b.client("aus_user").post("/admin/peers", data={
        "name": "X", "nations": "AUS", "public_key": new_key()}).status_code == 403
    assert 'href="/admin/peers"' not in b.client("aus_user").get("/").get_data(as_text=True)
    anonymous = b.app.test_client().get("/admin/peers")
    assert anonymous.status_code == 302 and "/login" in anonymous.location
    assert peer_names(b) == ["GBR-army"]


def test_the_page_says_how_to_set_federation_up(schema, database_url, tmp_path: Path) -> None:
    from tests.conftest import clear_data

    off = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                     INDEX_DIR=str(tmp_path / "index"), FILES_DIR=str(tmp_path / "files"),
                     FEDERATION_DIR=str(tmp_path / "fed"))
    no_key = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url,
                        INDEX_DIR=str(tmp_path / "index"), FILES_DIR=str(tmp_path / "files"),
                        FEDERATION_DIR=str(tmp_path / "fed"), INSTANCE_NAME="GBR-army",
                        INSTANCE_NATION="GBR")
    try:
        with off.app_context():
            create_user("gbr_admin", nation="GBR", roles=("admin",), password="demo",
                        weak_password_ok=True)
        client = off.test_client()
        login(client, "gbr_admin")
        html = client.get("/admin/peers").get_data(as_text=True)
        assert "Federation is not set up" in html and "MUSTER_INSTANCE_NAME" in html
        assert "flask federation init" in html
        refused = client.post("/admin/peers", data={"name": "AUS-army", "nations": "AUS",
                                                    "public_key": new_key()})
        assert refused.status_code == 422
        assert "Federation is not set up" in refused.get_data(as_text=True)
        client = no_key.test_client()
        login(client, "gbr_admin")
        html = client.get("/admin/peers").get_data(as_text=True)
        assert "GBR-army" in html and "no key yet" in html and "flask federation init" in html
        with no_key.app_context():
            assert db.session.scalar(select(Peer)) is None
    finally:
        with off.app_context():
            clear_data()
            db.engine.dispose()
        with no_key.app_context():
            db.engine.dispose()


# --- registering and removing a peer -----------------------------------------------------------
def test_an_admin_registers_a_peer_through_the_form(pair) -> None:
    _, b = pair
    admin = admin_of(b, "AUS")
    key = new_key()
    response = admin.post("/admin/peers", data={
        "name": "NZL-army", "nations": ["NZL", "AUS"], "public_key": f"  {key} ",
        "url": "https://muster.nzl.example"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    html = admin.get(response.location).get_data(as_text=True)
    assert "Peer NZL-army registered" in html
    row = peer_row(html, "NZL-army")
    assert "AUS, NZL" in row and identity.fingerprint(key) in row
    assert "https://muster.nzl.example" in row
    assert peer_names(b) == ["GBR-army", "NZL-army"]
    assert audited(b, "federation_peer_added")[-1] == ("aus_admin", "nzl-army")
    # The command line sees it as the page registered it.
    assert "NZL-army\tAUS,NZL" in b.cli("federation", "peer", "list").output


def test_a_bad_peer_is_refused_with_its_reason_and_nothing_stored(pair) -> None:
    _, b = pair
    admin = admin_of(b, "AUS")
    good = {"name": "NZL-army", "nations": "NZL", "public_key": new_key(), "url": ""}
    for change, words in (
            ({"public_key": "not-a-key"}, "not base64"),
            ({"public_key": "QUJD"}, "not an Ed25519 public key"),
            ({"nations": "ZZZ"}, "Unknown nation: ZZZ"),
            ({"nations": ""}, "at least one nation"),
            ({"name": "bad name"}, "letters, digits, dots, hyphens"),
            ({"name": "GBR-army"}, "already registered"),
            ({"name": "AUS-army"}, "this instance&#39;s own name"),
            ({"name": "local"}, "reserved"),
            ({"name": ""}, "Give the peer&#39;s instance name"),
            ({"name": "x" * 65}, "At most 64 characters"),
            ({"public_key": "A" * 65}, "At most 64 characters"),
            ({"url": "ftp://muster.nzl.example"}, "http(s) address"),
            ({"url": "https://" + "a" * 600}, "At most 500 characters")):
        response = admin.post("/admin/peers", data={**good, **change})
        html = response.get_data(as_text=True)
        assert response.status_code == 422, (change, response.status_code)
        assert words in html, (change, html[html.find("error-summary"):][:800])
        assert "error-summary" in html
    assert peer_names(b) == ["GBR-army"]
    assert len(audited(b, "federation_peer_added")) == 1  # the fixture's own


def test_an_admin_removes_a_peer_after_confirming(pair) -> None:
    _, b = pair
    admin = admin_of(b, "AUS")
    b.cli("federation", "peer", "add", "NZL-army", "--nation", "NZL", "--key", new_key())
    page = admin.get("/admin/peers?x=1").get_data(as_text=True)
    assert "/admin/peers/remove?name=NZL-army" in page
    confirm = admin.get("/admin/peers/remove?name=NZL-army")
    assert confirm.status_code == 200
    html = confirm.get_data(as_text=True)
    assert "Remove peer NZL-army?" in html and 'value="NZL-army"' in html
    assert peer_names(b) == ["GBR-army", "NZL-army"]  # asking removes nothing
    assert admin.get("/admin/peers/remove?name=USA-army").status_code == 404
    assert admin.get("/admin/peers/remove").status_code == 400
    assert admin.post("/admin/peers/remove", data={}).status_code == 400
    assert admin.post("/admin/peers/remove", data={"name": "USA-army"}).status_code == 404
    assert b.client("aus_user").post("/admin/peers/remove",
                                     data={"name": "NZL-army"}).status_code == 403
    assert peer_names(b) == ["GBR-army", "NZL-army"]
    response = admin.post("/admin/peers/remove", data={"name": "NZL-army"})
    assert response.status_code == 302
    assert "Peer NZL-army removed" in admin.get(response.location).get_data(as_text=True)
    assert peer_names(b) == ["GBR-army"]
    assert audited(b, "federation_peer_removed") == [("aus_admin", "nzl-army")]


def test_the_peer_forms_need_their_csrf_token(pair) -> None:
    _, b = pair
    admin_of(b, "AUS")
    b.app.config["WTF_CSRF_ENABLED"] = True
    try:
        client = b.app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        assert client.post("/login", data={"username": "aus_admin", "password": "demo",
                                           "csrf_token": token}).status_code == 302
        refused = client.post("/admin/peers", data={"name": "NZL-army", "nations": "NZL",
                                                    "public_key": new_key()})
        assert refused.status_code == 400  # the CSRF refusal, before the form is read
        assert client.post("/admin/peers/remove",
                           data={"name": "GBR-army"}).status_code == 400
        assert peer_names(b) == ["GBR-army"]
    finally:
        b.app.config["WTF_CSRF_ENABLED"] = False


# --- sequences, lag and errors -----------------------------------------------------------------
def test_the_page_shows_sequences_lag_and_the_last_error(pair, tmp_path: Path) -> None:
    a, b = pair
    make_lesson(a, title="Quollbank signal relay", releasable_to=["AUS"])
    bundle = ship(a, b, tmp_path, 1, ack=False)
    row = peer_row(admin_of(a, "GBR").get("/admin/peers").get_data(as_text=True), "AUS-army")
    assert cell(row, "out").startswith("bundle 1, 20")
    assert cell(row, "acked").strip() == "none yet"
    assert cell(row, "lag") == "1 bundle not acknowledged, the oldest for less than a minute"
    assert cell(row, "in").strip() == "none yet"
    a.cli("federation", "export", b.name, str(tmp_path / "bundle-2.zip"))
    row = peer_row(admin_of(a, "GBR").get("/admin/peers").get_data(as_text=True), "AUS-army")
    assert cell(row, "out").startswith("bundle 2, ")
    assert cell(row, "lag").startswith("2 bundles not acknowledged, the oldest for ")
    a.cli("federation", "import", str(tmp_path / "ack-1.zip"))
    row = peer_row(admin_of(a, "GBR").get("/admin/peers").get_data(as_text=True), "AUS-army")
    assert cell(row, "acked").startswith("bundle 1, 20")
    assert cell(row, "lag").startswith("1 bundle not acknowledged")

    admin_b = admin_of(b, "AUS")
    row = peer_row(admin_b.get("/admin/peers").get_data(as_text=True), "GBR-army")
    assert cell(row, "in").startswith("bundle 1, 20") and cell(row, "error").strip() == "—"
    refused = b.cli("federation", "import", str(bundle), ok=False)  # a replay
    assert refused.exit_code == 2
    row = peer_row(admin_b.get("/admin/peers").get_data(as_text=True), "GBR-army")
    assert "Bundle 1 from GBR-army was already applied" in cell(row, "error")
    assert cell(row, "in").startswith("bundle 1, ")


# --- a received lesson's page ------------------------------------------------------------------
def test_a_received_lesson_says_where_it_is_from_and_offers_no_change(
        pair, tmp_path: Path) -> None:
    a, b = pair
    public_id = make_lesson(a, title="Dunnartfield water discipline", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Dunnartfield")
    for username in ("aus_user", "aus_analyst", "gbr_visitor"):
        client = b.client(username)
        html = client.get(f"/lessons/{received.public_id}").get_data(as_text=True)
        line = re.search(r'data-testid="origin">(.*?)</p>', html, re.S)
        assert line, username
        text = " ".join(re.sub(r"<[^>]+>", "", line.group(1)).split())
        assert text.startswith("From GBR-army Muster")
        assert f"origin id {public_id}" in text
        assert f"version {received.origin_version}" in text
        assert received.received_at.strftime("%Y-%m-%d %H:%M") in text
        assert f"/lessons/{received.public_id}/edit" not in html
        assert "/transition" not in html and 'id="review"' not in html
        assert f"/lessons/{received.public_id}/actions" not in html
        assert 'enctype="multipart/form-data"' not in html  # no file upload offered
        assert client.post(f"/lessons/{received.public_id}/edit",
                           data={"title": "Changed here"}).status_code == 403
        assert client.post(f"/lessons/{received.public_id}/transition",
                           data={"to": "learned"}).status_code == 403
    assert foreign(b, "Dunnartfield").title == "Dunnartfield water discipline"
    # A's own lesson says nothing of an origin.
    own = a.client("gbr_author").get(f"/lessons/{public_id}").get_data(as_text=True)
    assert 'data-testid="origin"' not in own and "Muster (origin id" not in own


def test_a_withdrawn_received_lesson_is_not_shown(pair, tmp_path: Path) -> None:
    from tests.test_federation import edit

    a, b = pair
    public_id = make_lesson(a, title="Bandicootmarsh ford", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Bandicootmarsh")
    edit(a, public_id, releasable_to=[])
    ship(a, b, tmp_path, 2)
    for username in ("aus_user", "aus_analyst"):
        assert b.client(username).get(f"/lessons/{received.public_id}").status_code == 404
    assert "Bandicootmarsh" not in admin_of(b, "AUS").get(
        "/search?q=origin:GBR-army").get_data(as_text=True)


# --- the origin: search filter -----------------------------------------------------------------
def local_lesson(b: Instance, title: str) -> str:
    """A validated AUS lesson written at B (its own), REL TO NZL as well."""
    with b.app.app_context():
        author = db.session.scalar(select(User).where(User.username == "aus_user"))
        analyst = db.session.scalar(select(User).where(User.username == "aus_analyst"))
        lesson = lesson_service.create_lesson(author, lesson_fields(
            title=title, releasable_to=["NZL"], nations=["AUS"]))
        lesson_service.transition_lesson(author, lesson.public_id, "submitted")
        lesson_service.transition_lesson(analyst, lesson.public_id, "validated")
        return lesson.public_id


def found(client: FlaskClient, q: str) -> str:
    response = client.get("/search", query_string={"q": q})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_origin_filter_finds_lessons_by_where_they_came_from(pair, tmp_path: Path) -> None:
    a, b = pair
    make_lesson(a, title="Potoroocreek ration resupply", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    local_lesson(b, "Sugargliderpeak radio rebroadcast")
    aus, nzl = b.client("aus_user"), b.client("nzl_user")

    for q in ("origin:GBR-army", "origin:gbr-army", "origin:GBR-army resupply"):
        page = found(aus, q)
        assert "Potoroocreek ration resupply" in page, q
        assert "Sugargliderpeak" not in page, q
    # Not REL TO NZL: an NZL user finds nothing from GBR-army, and is told no more than
    # that no lesson they may see came from it.
    page = found(nzl, "origin:GBR-army")
    assert "Potoroocreek" not in page
    assert "no lesson you may see was received from gbr-army" in page
    assert "Potoroocreek" not in found(nzl, "potoroocreek")
    for q in ("origin:local", "origin:AUS-army", "origin:aus-army radio"):
        page = found(aus, q)
        assert "Sugargliderpeak radio rebroadcast" in page, q
        assert "Potoroocreek" not in page, q
    assert "Sugargliderpeak radio rebroadcast" in found(nzl, "origin:local")
    # The facet names each origin; a click filters as the query does.
    page = found(aus, "*")
    assert 'data-facet="origin"' in page and ">GBR-army</a>" in page
    assert ">This instance</a>" in page
    page = aus.get("/search", query_string={"q": "*", "origin": "gbr-army"}).get_data(
        as_text=True)
    assert "Potoroocreek" in page and "Sugargliderpeak" not in page
    page = aus.get("/search", query_string={"q": "*", "origin": "AUS-army"}).get_data(
        as_text=True)
    assert "Sugargliderpeak" in page and "Potoroocreek" not in page
    # At A, the lesson is A's own.
    assert "Potoroocreek" in found(a.client("gbr_author"), "origin:local")
    assert "Potoroocreek" in found(a.client("gbr_author"), "origin:GBR-army")
    assert "Potoroocreek" not in found(a.client("gbr_author"), "origin:AUS-army")
    # The API filters the same way (its parameter and its facet).
    from lessons.services import tokens

    with b.app.app_context():
        secrets = {name: tokens.create_token(db.session.scalar(
            select(User).where(User.username == name)), "origin")[1]
            for name in ("aus_user", "nzl_user")}

    def api(name: str) -> dict:
        response = b.app.test_client().get(
            "/api/v1/lessons", query_string={"origin": "GBR-army"},
            headers={"Authorization": f"Bearer {secrets[name]}"})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    listed = api("aus_user")
    assert [item["title"] for item in listed["items"]] == ["Potoroocreek ration resupply"]
    assert {v["value"] for v in listed["facets"]["origin"]} >= {"gbr-army", "local"}
    assert api("nzl_user")["total"] == 0


def test_one_peer_registered_twice_at_once_is_stored_once(pair) -> None:
    """Two administrators register the same instance at the same moment, through real
    HTTP: one is stored, the other is told it is registered already (no 500)."""
    from functools import partial

    from tests.http_client import Http, race, serving

    _, b = pair
    admin_of(b, "AUS")
    with b.app.app_context():
        create_user("aus_admin2", nation="AUS", roles=("admin",), password="demo",
                    weak_password_ok=True)
    form = {"name": "NZL-army", "nations": "NZL", "public_key": new_key()}
    with serving(b.app) as address:
        admins = [Http(address).login("aus_admin"), Http(address).login("aus_admin2")]
        replies = race(*[partial(admin.send, "POST", "/admin/peers", form=form)
                         for admin in admins])
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [302, 422], [reply.text[:300] for reply in replies]
    refused = next(reply for reply in replies if reply.status == 422)
    assert "already registered" in refused.text
    assert peer_names(b) == ["GBR-army", "NZL-army"]
    assert len([row for row in audited(b, "federation_peer_added")
                if row[1] == "nzl-army"]) == 1


def test_one_peer_removed_twice_at_once_is_removed_once(pair) -> None:
    """Two removals of one peer at the same moment: one removes it, the other finds
    nothing to remove (no 500), and the removal is audited once."""
    from functools import partial

    from tests.http_client import Http, race, serving

    _, b = pair
    admin_of(b, "AUS")
    with b.app.app_context():
        create_user("aus_admin2", nation="AUS", roles=("admin",), password="demo",
                    weak_password_ok=True)
    with serving(b.app) as address:
        admins = [Http(address).login("aus_admin"), Http(address).login("aus_admin2")]
        replies = race(*[partial(admin.send, "POST", "/admin/peers/remove",
                                 form={"name": "GBR-army"}) for admin in admins])
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [302, 404], [reply.text[:300] for reply in replies]
    assert peer_names(b) == []
    assert len(audited(b, "federation_peer_removed")) == 1
