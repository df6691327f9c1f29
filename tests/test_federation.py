"""Federation between two Muster instances in one run: A (GBR-army, users of GBR) and B
(AUS-army, serving AUS and NZL), each with its own database, index and key folder.
Lessons travel by signed bundle files through ``flask federation``; what B's users then
see is checked over HTTP.

Importing the same bundle twice: the second import is refused as a replay (its sequence
number is not above the last applied), cleanly and with nothing changed.
"""

from __future__ import annotations

import io
import os
import stat
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from lessons import create_app, policy
from lessons.extensions import db
from lessons.federation import apply, outbound
from lessons.federation.identity import FederationError
from lessons.models import AuditRecord, Lesson, Peer, User
from lessons.services import lessons as lesson_service
from lessons.services.users import create_user
from tests.conftest import clear_data, lesson_fields, login, seed_reference_data


@dataclass
class Instance:
    app: Flask
    name: str

    def cli(self, *args: str, ok: bool = True) -> Any:
        result = self.app.test_cli_runner().invoke(args=list(args))
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    def client(self, username: str) -> FlaskClient:
        client = self.app.test_client()
        login(client, username)
        return client

    def count(self, model: type, *where: Any) -> int:
        with self.app.app_context():
            return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _second_database(url: str, tmp_path: Path) -> tuple[str, Any]:
    """B's database: a temp SQLite file, or on PostgreSQL a scratch database beside
    ``url`` (made here, dropped after)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return f"sqlite:///{tmp_path / 'b.db'}", None
    name = f"{parsed.database}_fed_b"
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()

    return parsed.set(database=name).render_as_string(hide_password=False), drop


def _app(url: str, folder: Path, name: str, nation: str) -> Flask:
    return create_app("testing", SQLALCHEMY_DATABASE_URI=url, INDEX_DIR=str(folder / "index"),
                      FILES_DIR=str(folder / "files"), FEDERATION_DIR=str(folder / "fed"),
                      INSTANCE_NAME=name, INSTANCE_NATION=nation)


@pytest.fixture
def pair(schema: None, database_url: str, tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    a = Instance(_app(database_url, tmp_path / "a", "GBR-army", "GBR"), "GBR-army")
    url_b, drop_b = _second_database(database_url, tmp_path)
    b = Instance(_app(url_b, tmp_path / "b", "AUS-army", "AUS"), "AUS-army")
    with b.app.app_context():
        db.create_all()
        seed_reference_data()
    for inst, users in ((a, (("gbr_author", "GBR", ("contributor",)),
                             ("gbr_analyst", "GBR", ("analyst", "contributor")))),
                        (b, (("aus_user", "AUS", ("contributor",)),
                             ("aus_analyst", "AUS", ("analyst", "planner")),
                             ("nzl_user", "NZL", ("contributor",)),
                             ("gbr_visitor", "GBR", ("analyst", "contributor"))))):
        with inst.app.app_context():
            for username, nation, roles in users:
                create_user(username, nation=nation, roles=roles, password="demo",
                            weak_password_ok=True)
    key_a = a.cli("federation", "init").output.strip().splitlines()[-1]
    key_b = b.cli("federation", "init").output.strip().splitlines()[-1]
    a.cli("federation", "peer", "add", "AUS-army", "--nation", "AUS", "--nation", "NZL",
          "--key", key_b)
    b.cli("federation", "peer", "add", "GBR-army", "--nation", "GBR", "--key", key_a)
    yield a, b
    with a.app.app_context():
        clear_data()
        db.engine.dispose()
    with b.app.app_context():
        db.drop_all()
        db.engine.dispose()
    if drop_b is not None:
        drop_b()


def make_lesson(inst: Instance, status: str = "validated", **fields: Any) -> str:
    """A GBR lesson at A, walked to ``status``; returns its public id."""
    with inst.app.app_context():
        author = db.session.scalar(select(User).where(User.username == "gbr_author"))
        analyst = db.session.scalar(select(User).where(User.username == "gbr_analyst"))
        lesson = lesson_service.create_lesson(author, lesson_fields(**fields))
        public_id = lesson.public_id
        if status != "draft":
            lesson_service.transition_lesson(author, public_id, "submitted")
        if status == "validated":
            lesson_service.transition_lesson(analyst, public_id, "validated")
        return public_id


def edit(inst: Instance, public_id: str, **data: Any) -> None:
    with inst.app.app_context():
        analyst = db.session.scalar(select(User).where(User.username == "gbr_analyst"))
        lesson_service.update_lesson(analyst, public_id, data)


def ship(a: Instance, b: Instance, folder: Path, n: int, *, ack: bool = True) -> Path:
    """Export A's next bundle for B, import it at B (and the ack back at A)."""
    bundle = folder / f"bundle-{n}.zip"
    a.cli("federation", "export", b.name, str(bundle))
    ack_file = folder / f"ack-{n}.zip"
    b.cli("federation", "import", str(bundle), "--ack", str(ack_file))
    if ack:
        a.cli("federation", "import", str(ack_file))
    return bundle


def bundle_bytes(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return b"".join(archive.read(name) for name in archive.namelist())


def rewrite(path: Path, name: str, data: bytes | None) -> None:
    """Replace (or drop) one part of a bundle, keeping the others byte for byte."""
    with zipfile.ZipFile(path) as archive:
        parts = {n: archive.read(n) for n in archive.namelist()}
    if data is None:
        parts.pop(name)
    else:
        parts[name] = data
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for part, content in parts.items():
            archive.writestr(part, content)
    path.write_bytes(buffer.getvalue())


def forge(name: str, nation: str, folder: Path, path: Path, recipient: str) -> None:
    """A well-formed bundle 1 signed with a key of its own by an instance ``name``."""
    from lessons.federation import bundles, identity

    app = create_app("testing", FEDERATION_DIR=str(folder), INSTANCE_NAME=name,
                     INSTANCE_NATION=nation)
    with app.app_context():
        identity.init_key()
        bundles.write(path, {
            "kind": "lessons", "recipient": recipient, "sequence": 1,
            "sender": {"name": name, "nation": nation,
                       "key_fingerprint": identity.fingerprint(identity.public_key())}},
            b"")


def foreign(b: Instance, title_word: str) -> Lesson | None:
    with b.app.app_context():
        lesson = db.session.scalar(select(Lesson).where(Lesson.title.contains(title_word)))
        if lesson is not None:
            db.session.expunge(lesson)
        return lesson


def snapshot(b: Instance) -> tuple:
    """What an import could change at B: lessons, their versions and statuses, peers."""
    with b.app.app_context():
        lessons = tuple(db.session.execute(select(
            Lesson.origin_id, Lesson.version, Lesson.status, Lesson.origin_version)
            .order_by(Lesson.id)).all())
        peers = tuple(db.session.execute(select(
            Peer.name, Peer.last_in_sequence, Peer.acked_sequence)).all())
        return lessons, peers


def test_key_is_private_and_not_replaced_without_force(pair, tmp_path: Path) -> None:
    a, _ = pair
    key_file = Path(a.app.config["FEDERATION_DIR"]) / "ed25519-private.pem"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    public = a.cli("federation", "key").output.strip()
    assert len(public) == 44
    refused = a.cli("federation", "init", ok=False)
    assert refused.exit_code == 2 and "--force" in refused.output
    assert a.cli("federation", "key").output.strip() == public
    assert "PRIVATE" not in public
    listing = a.cli("federation", "peer", "list").output
    assert "AUS-army" in listing and "AUS,NZL" in listing


def test_peer_add_refuses_bad_input(pair) -> None:
    a, _ = pair
    for args, words in (
            (["X", "--nation", "AUS", "--key", "not-a-key"], "base64"),
            (["X", "--nation", "ZZZ", "--key", "A" * 43 + "="], "Unknown nation"),
            (["AUS-army", "--nation", "AUS", "--key", "A" * 43 + "="], "already"),
            (["bad name", "--nation", "AUS", "--key", "A" * 43 + "="], "name"),
            (["X", "--nation", "AUS", "--key", "A" * 43 + "=", "--url", "ftp://x"], "URL")):
        result = a.cli("federation", "peer", "add", *args, ok=False)
        assert result.exit_code == 2 and words in result.output, result.output


def test_a_new_key_is_given_to_the_peer_without_losing_the_sequence(pair, tmp_path: Path
                                                                      ) -> None:
    a, b = pair
    public_id = make_lesson(a, title="Bandicootlane key rotation", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    new_key = a.cli("federation", "init", "--force").output.strip().splitlines()[-1]
    edit(a, public_id, title="Bandicootlane key rotation, revised")
    bundle = tmp_path / "bundle-2.zip"
    a.cli("federation", "export", b.name, str(bundle))
    refused = b.cli("federation", "import", str(bundle), ok=False)
    assert refused.exit_code == 2 and "another key" in refused.output
    for args, words in ((["GBR-army", "not-a-key"], "base64"),
                        (["USA-army", new_key], "No peer named")):
        result = b.cli("federation", "peer", "key", *args, ok=False)
        assert result.exit_code == 2 and words in result.output, result.output
    assert "key is now" in b.cli("federation", "peer", "key", "GBR-army", new_key).output
    assert "1 updated" in b.cli("federation", "import", str(bundle)).output
    assert foreign(b, "Bandicootlane").title == "Bandicootlane key rotation, revised"
    assert "in 2" in b.cli("federation", "peer", "list").output
    assert b.count(AuditRecord, AuditRecord.action == "federation_peer_key_changed") == 1


def test_settings_are_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="MUSTER_INSTANCE_NATION"):
        create_app("testing", INSTANCE_NAME="GBR-army", INSTANCE_NATION="GB")
    with pytest.raises(RuntimeError, match="MUSTER_INSTANCE_NAME"):
        create_app("testing", INSTANCE_NAME="GBR army", INSTANCE_NATION="GBR")
    with pytest.raises(RuntimeError, match="both"):
        create_app("testing", INSTANCE_NAME="GBR-army")


def test_released_lesson_reaches_b_and_only_its_nations_see_it(pair, tmp_path: Path) -> None:
    a, b = pair
    aus_id = make_lesson(a, title="Quokkaflare radios failed at dusk",
                         releasable_to=["AUS"], tags=["quokkaflare"])
    both_id = make_lesson(a, title="Wombatstride convoy spacing",
                          releasable_to=["AUS", "NZL"])
    secret_id = make_lesson(a, title="Pangolinhush sensor gap", releasable_to=[],
                            observation="Pangolinhush detail only for GBR eyes.")
    draft_id = make_lesson(a, status="draft", title="Narwhalquill draft thought",
                           releasable_to=["AUS", "NZL"])
    withdrawn_id = make_lesson(a, status="draft", title="Axolotlrune withdrawn idea",
                               releasable_to=["AUS"])
    with a.app.app_context():
        author = db.session.scalar(select(User).where(User.username == "gbr_author"))
        lesson_service.transition_lesson(author, withdrawn_id, "withdrawn")
    bundle = ship(a, b, tmp_path, 1)
    raw = bundle_bytes(bundle)
    assert b"Quokkaflare" in raw and aus_id.encode() in raw
    for word in (b"Pangolinhush", secret_id.encode(), b"Narwhalquill", draft_id.encode(),
                 b"Axolotlrune", withdrawn_id.encode()):
        assert word not in raw, word

    aus, nzl = b.client("aus_user"), b.client("nzl_user")
    page = aus.get("/search?q=quokkaflare").get_data(as_text=True)
    assert "Quokkaflare radios failed at dusk" in page
    assert "Quokkaflare" not in nzl.get("/search?q=quokkaflare").get_data(as_text=True)
    assert "Wombatstride convoy spacing" in nzl.get("/search?q=wombatstride").get_data(
        as_text=True)
    received = foreign(b, "Quokkaflare")
    assert received.origin_instance == "GBR-army" and received.origin_id == aus_id
    assert received.originator_nation == "GBR" and sorted(received.releasable_to) == [
        "AUS", "GBR"]
    assert nzl.get(f"/lessons/{received.public_id}").status_code == 404
    assert aus.get(f"/lessons/{received.public_id}").status_code == 200
    assert b.count(Lesson) == 2  # nothing else arrived
    assert b.count(AuditRecord, AuditRecord.action == "federation_bundle_applied") == 1
    assert a.count(AuditRecord, AuditRecord.action == "federation_bundle_out") == 1
    assert both_id


def test_foreign_lesson_is_read_only_at_b(pair, tmp_path: Path) -> None:
    a, b = pair
    make_lesson(a, title="Echidnaspark fuel handling", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Echidnaspark")
    # A GBR analyst at B (a liaison officer) has the originator's nation and role, and
    # still may not edit, move or manage a lesson that GBR keeps at home.
    for username in ("gbr_visitor", "aus_analyst"):
        client = b.client(username)
        page = client.get(f"/lessons/{received.public_id}")
        assert page.status_code == 200  # both see it (REL TO AUS; GBR as originator)
        assert f"/lessons/{received.public_id}/edit" not in page.get_data(as_text=True)
        assert client.get(f"/lessons/{received.public_id}/edit").status_code == 403
        assert client.post(f"/lessons/{received.public_id}/edit",
                           data={"title": "Changed"}).status_code == 403
        assert client.post(f"/lessons/{received.public_id}/transition",
                           data={"to": "learned", "note": "x"}).status_code == 403
    assert foreign(b, "Echidnaspark").title == "Echidnaspark fuel handling"
    with b.app.app_context():
        visitor = db.session.scalar(select(User).where(User.username == "gbr_visitor"))
        lesson = db.session.get(Lesson, received.id)
        assert policy.can_view(visitor, lesson)  # GBR is in its REL TO: the page is shown
        assert not policy.can_edit(visitor, lesson)
        assert not policy.allowed_transitions(visitor, lesson)
        assert not policy.can_manage_actions(visitor, lesson)
        assert not policy.can_decide_for_originator(visitor, lesson)


def test_acknowledgements(pair, tmp_path: Path) -> None:
    a, b = pair
    make_lesson(a, title="Numbatgrove ack", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    again = a.cli("federation", "import", str(tmp_path / "ack-1.zip")).output
    assert "already acknowledged" in again
    # An acknowledgement of a bundle never written is refused.
    with b.app.app_context():
        from lessons.federation import outbound

        peer = db.session.scalar(select(Peer))
        outbound.write_ack(peer, 5, tmp_path / "ack-5.zip")
    result = a.cli("federation", "import", str(tmp_path / "ack-5.zip"), ok=False)
    assert result.exit_code == 2 and "the last bundle written for AUS-army is 1" in result.output
    with a.app.app_context():
        assert db.session.scalar(select(Peer.acked_sequence)) == 1
    assert a.count(AuditRecord, AuditRecord.action == "federation_ack_received") == 1


def test_edit_at_a_replaces_the_version_at_b(pair, tmp_path: Path) -> None:
    a, b = pair
    public_id = make_lesson(a, title="Bilbyroute fuel stops", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    first = foreign(b, "Bilbyroute")
    edit(a, public_id, title="Bilbyroute fuel stops every 200 km",
         recommendation="Plan Dingoquest refuelling every 200 km.")
    ship(a, b, tmp_path, 2)
    second = foreign(b, "Bilbyroute")
    assert second.id == first.id and second.title == "Bilbyroute fuel stops every 200 km"
    assert second.origin_version > first.origin_version
    aus = b.client("aus_user")
    assert "Bilbyroute" in aus.get("/search?q=dingoquest").get_data(as_text=True)
    # Nothing changed since the acknowledged bundle: the next one is empty.
    empty = tmp_path / "bundle-3.zip"
    assert "0 lesson(s), 0 revocation(s)" in a.cli("federation", "export", b.name,
                                                    str(empty)).output


def test_unacknowledged_bundle_is_carried_again(pair, tmp_path: Path) -> None:
    a, b = pair
    make_lesson(a, title="Cassowarylane crossing", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1, ack=False)
    out = a.cli("federation", "export", b.name, str(tmp_path / "bundle-2.zip")).output
    assert "1 lesson(s)" in out
    assert "1 unchanged" in b.cli("federation", "import", str(tmp_path / "bundle-2.zip")).output
    assert b.count(Lesson) == 1


def test_narrowing_rel_to_revokes_at_b(pair, tmp_path: Path) -> None:
    a, b = pair
    public_id = make_lesson(a, title="Platypusveil radar clutter", releasable_to=["AUS"])
    kept_id = make_lesson(a, title="Kookaburrahold kept lesson", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Platypusveil")
    aus = b.client("aus_user")
    assert "Platypusveil" in aus.get("/search?q=platypusveil").get_data(as_text=True)
    edit(a, public_id, releasable_to=[])
    bundle = ship(a, b, tmp_path, 2)
    raw = bundle_bytes(bundle)
    assert public_id.encode() in raw and b"Platypusveil" not in raw
    assert kept_id.encode() not in raw  # unchanged and acknowledged: not sent again
    assert foreign(b, "Platypusveil").status == "withdrawn"
    assert "Platypusveil" not in aus.get("/search?q=platypusveil").get_data(as_text=True)
    assert "Platypusveil" not in aus.get("/lessons?tab=all").get_data(as_text=True)
    assert aus.get(f"/lessons/{received.public_id}").status_code == 404
    # A lesson never sent is never named in a revocation.
    never_id = make_lesson(a, title="Dugongmere never sent", releasable_to=[])
    third = tmp_path / "bundle-3.zip"
    a.cli("federation", "export", b.name, str(third))
    assert never_id.encode() not in bundle_bytes(third)


def test_refused_bundles_change_nothing(pair, tmp_path: Path) -> None:
    a, b = pair
    make_lesson(a, title="Goannaridge water points", releasable_to=["AUS"])
    good = tmp_path / "bundle-1.zip"
    a.cli("federation", "export", b.name, str(good))
    before = snapshot(b)

    def refused(path: Path, words: str) -> None:
        result = b.cli("federation", "import", str(path), ok=False)
        assert result.exit_code == 2 and words in result.output, result.output
        assert snapshot(b) == before

    tampered = tmp_path / "tampered.zip"
    tampered.write_bytes(good.read_bytes())
    with zipfile.ZipFile(good) as archive:
        records = bytearray(archive.read("records.jsonl"))
    records[records.index(b"Goannaridge")] ^= 0x01
    rewrite(tampered, "records.jsonl", bytes(records))
    refused(tampered, "signature does not match")

    unsigned = tmp_path / "unsigned.zip"
    unsigned.write_bytes(good.read_bytes())
    rewrite(unsigned, "signature", None)
    refused(unsigned, "not signed")

    not_a_zip = tmp_path / "junk.zip"
    not_a_zip.write_bytes(b"hello")
    refused(not_a_zip, "Not a Muster bundle")

    # Signed with a key B does not hold for GBR-army (an impostor using its name), and
    # by an instance B has never registered.
    forge("GBR-army", "GBR", tmp_path / "impostor", tmp_path / "impostor.zip", b.name)
    refused(tmp_path / "impostor.zip", "another key")
    forge("USA-army", "USA", tmp_path / "stranger", tmp_path / "stranger.zip", b.name)
    refused(tmp_path / "stranger.zip", "not a registered peer")

    # Out of order: bundle 3 before 2 names what is missing.
    a.cli("federation", "export", b.name, str(tmp_path / "bundle-2.zip"))
    a.cli("federation", "export", b.name, str(tmp_path / "bundle-3.zip"))
    refused(tmp_path / "bundle-3.zip", "ahead of bundle(s) 1 to 2")
    assert b.count(AuditRecord, AuditRecord.action == "federation_bundle_refused") == 6

    # The genuine bundle still applies; the same bundle a second time is a replay.
    b.cli("federation", "import", str(good))
    once = snapshot(b)
    assert b.count(Lesson) == 1
    again = b.cli("federation", "import", str(good), ok=False)
    assert again.exit_code == 2 and "already applied" in again.output
    assert snapshot(b) == once
    with b.app.app_context():
        assert "already applied" in db.session.scalar(select(Peer.last_error))


def test_revoked_lesson_attached_to_an_exercise_shows_withdrawn_by_originator(
        pair, tmp_path: Path) -> None:
    from tests.test_exercises import attach, exercise_form, exercise_id_from

    a, b = pair
    public_id = make_lesson(a, title="Lyrebirdecho signals drill", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Lyrebirdecho")
    planner = b.client("aus_analyst")
    response = planner.post("/exercises/new", data=exercise_form(
        lead_nation="AUS", nations=["AUS", "NZL"], location="Shoalwater Bay"))
    assert response.status_code == 302, response.get_data(as_text=True)[:1000]
    exercise_id = exercise_id_from(response.headers["Location"])
    assert attach(planner, exercise_id, received.public_id).status_code == 302
    page = planner.get(f"/exercises/{exercise_id}").get_data(as_text=True)
    assert "Lyrebirdecho signals drill" in page and "withdrawn by originator" not in page
    edit(a, public_id, releasable_to=[])  # GBR only again
    ship(a, b, tmp_path, 2)
    page = planner.get(f"/exercises/{exercise_id}").get_data(as_text=True)
    assert "withdrawn by originator" in page and public_id in page
    assert "Lyrebirdecho" not in page
    assert planner.get(f"/lessons/{received.public_id}").status_code == 404
    # NZL never had it at B (REL TO then was GBR and AUS): told nothing.
    nzl_page = b.client("nzl_user").get(f"/exercises/{exercise_id}").get_data(as_text=True)
    assert "withdrawn by originator" not in nzl_page and public_id not in nzl_page


def test_a_record_this_instance_cannot_store_refuses_the_bundle_by_name(
        pair, tmp_path: Path) -> None:
    a, b = pair
    a.app.config["CLASSIFICATIONS"] = ["UNCLASSIFIED", "NATO RESTRICTED"]
    make_lesson(a, title="Emuwatch marking", releasable_to=["AUS"],
                classification="NATO RESTRICTED")
    bundle = tmp_path / "bundle-1.zip"
    a.cli("federation", "export", b.name, str(bundle))
    result = b.cli("federation", "import", str(bundle), ok=False)
    assert result.exit_code == 2
    assert "record 1: classification" in result.output and "Nothing was applied" in result.output
    assert b.count(Lesson) == 0
    # Once this instance knows the marking, the same bundle applies.
    b.app.config["CLASSIFICATIONS"] = ["UNCLASSIFIED", "NATO RESTRICTED"]
    assert "1 new" in b.cli("federation", "import", str(bundle)).output
    assert foreign(b, "Emuwatch").classification == "NATO RESTRICTED"


def test_manifest_names_sender_recipient_sequence_and_what_it_covers(pair, tmp_path: Path) -> None:
    import json

    a, b = pair
    public_id = make_lesson(a, title="Kiwiglade manifest", releasable_to=["AUS"])
    bundle = ship(a, b, tmp_path, 1)
    with zipfile.ZipFile(bundle) as archive:
        assert sorted(archive.namelist()) == ["manifest.json", "records.jsonl", "signature"]
        manifest = json.loads(archive.read("manifest.json"))
        records = [json.loads(line) for line in archive.read("records.jsonl").splitlines()]
    assert manifest["format"] == "muster-federation-bundle" and manifest["format_version"] == 1
    assert manifest["sender"]["name"] == "GBR-army" and manifest["sender"]["nation"] == "GBR"
    assert manifest["sender"]["key_fingerprint"].startswith("SHA256:")
    assert manifest["recipient"] == "AUS-army" and manifest["sequence"] == 1
    assert manifest["covers"]["after_acknowledged_sequence"] == 0
    assert manifest["covers"]["change_log_upto"] >= 1
    assert manifest["counts"] == {"lessons": 1, "revocations": 0, "returns": 0}
    (record,) = records
    assert record["type"] == "lesson" and record["origin"]["instance"] == "GBR-army"
    assert record["origin"]["id"] == public_id and record["origin"]["version"] >= 1
    assert record["lesson"]["title"] == "Kiwiglade manifest"


def test_no_import_at_b_changes_a_received_lesson_or_takes_its_ids(pair, tmp_path: Path
                                                                   ) -> None:
    """Received lessons are changed only by the instance that sent them: an analyst's
    import and an administrator's migration naming one are refused, and neither may
    start a lesson under an id of the received kind."""
    import json

    from tests.test_exchange import record

    a, b = pair
    make_lesson(a, title="Quokkaline bridging drills", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Quokkaline")
    with b.app.app_context():
        db.session.add(User(username="aus_admin", display_name="Admin", nation_code="AUS",
                            password_hash="x"))
        db.session.commit()
        admin = db.session.scalar(select(User).where(User.username == "aus_admin"))
        admin.roles = {"admin", "analyst"}
        db.session.commit()
    lines = tmp_path / "in.jsonl"
    lines.write_text("\n".join(json.dumps(record(
        external_id=external_id, title="Overwritten here", originator_nation=nation,
        nations=[nation], releasable_to=["AUS"])) for external_id, nation in (
            (received.external_id, "GBR"),
            ("federation:GBR-army:made-up", "AUS"))) + "\n")
    for who, why in ((["--as", "aus_analyst"], "names no lesson you may update"),
                     (["--as", "aus_admin", "--as-migration"],
                      "received from another Muster instance")):
        result = b.cli("lessons", "import", str(lines), *who, ok=False)
        assert result.exit_code != 0 and why in result.output, result.output
    after = foreign(b, "Quokkaline")
    assert after.title == "Quokkaline bridging drills" and after.version == received.version
    assert b.count(Lesson, Lesson.external_id == "federation:GBR-army:made-up") == 0


def test_the_account_standing_for_a_peer_never_logs_in(pair, tmp_path: Path) -> None:
    """Received lessons are authored by ``peer:NAME``; an admin at B who activates it and
    sets a password still cannot log in as it (it would read withdrawn lessons)."""
    from lessons.services.users import reset_password, set_active

    a, b = pair
    make_lesson(a, title="Wallabyform crossing sites", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    with b.app.app_context():
        peer_user = db.session.scalar(select(User).where(User.username == "peer:gbr-army"))
        set_active(peer_user, True, actor=None)
        reset_password(peer_user, "a-long-enough-password-1", actor=None)
    client = b.app.test_client()
    response = client.post("/login", data={"username": "peer:gbr-army",
                                           "password": "a-long-enough-password-1"})
    assert response.status_code != 302
    assert client.get("/lessons").status_code == 302  # to the log-in page


def _two_at_once(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, inst: Instance,
                 call: Any) -> list[Any]:
    """Run ``call`` twice in threads, each in its own app context, held together at
    ``module.name`` until both reach it (or 3 s pass: a locked writer waits for the other)."""
    if make_url(str(inst.app.config["SQLALCHEMY_DATABASE_URI"])).get_backend_name() != "postgresql":
        pytest.skip("SQLite has no row locks: the race is run on PostgreSQL")
    barrier = threading.Barrier(2)
    original = getattr(module, name)

    def held(*args: Any, **kwargs: Any) -> Any:
        try:
            barrier.wait(timeout=3)
        except threading.BrokenBarrierError:
            pass
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, held)
    results: list[Any] = [None, None]

    def run(index: int) -> None:
        with inst.app.app_context():
            try:
                results[index] = call(index)
            except Exception as exc:  # noqa: BLE001 - checked by the caller
                results[index] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_exports_at_once_write_consecutive_bundles(pair, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = pair
    make_lesson(a, title="Raced export", releasable_to=["AUS"])
    results = _two_at_once(monkeypatch, outbound.bundles, "write", a,
                           lambda i: outbound.export(b.name, tmp_path / f"race-{i}.zip"))
    assert all(isinstance(r, outbound.Exported) for r in results), results
    assert sorted(r.sequence for r in results) == [1, 2]
    with a.app.app_context():
        assert db.session.scalar(select(Peer.last_out_sequence)) == 2


def test_the_same_bundle_imported_twice_at_once_is_applied_once(
        pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = pair
    make_lesson(a, title="Raced import", releasable_to=["AUS"])
    bundle = tmp_path / "bundle-1.zip"
    a.cli("federation", "export", b.name, str(bundle))
    results = _two_at_once(monkeypatch, apply, "_check_records", b,
                           lambda i: apply.import_bundle(bundle))
    assert sum(isinstance(r, apply.Applied) for r in results) == 1, results
    assert sum(isinstance(r, FederationError) and "already applied" in str(r)
               for r in results) == 1, results
    assert b.count(Lesson, Lesson.origin_instance == a.name) == 1
