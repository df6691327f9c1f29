"""The online federation feed, ``GET /api/v1/federation/feed?after=SEQ``, and
``flask federation sync PEER``: the same signed bundles as the files, fetched by a peer
that signs its request with its instance key.

A (GBR-army) serves; B (AUS-army) calls, signing in its own app context. The feed is
asked through A's test client, and ``sync`` runs at B against A served over real HTTP.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from sqlalchemy import select, update

from lessons import create_app
from lessons.extensions import db
from lessons.federation import identity, online
from lessons.models import AuditRecord, Lesson, Peer, PeerBundle
from lessons.services.users import create_user
from tests import test_federation
from tests.conftest import seed_reference_data
from tests.http_client import serving
from tests.test_federation import Instance, edit, foreign, make_lesson, ship, snapshot

pair = test_federation.pair  # the two instances, A and B (a fixture)

FEED = "/api/v1/federation/feed"


def kept(inst: Instance) -> list[int]:
    with inst.app.app_context():
        return list(db.session.scalars(select(PeerBundle.sequence).order_by(
            PeerBundle.sequence)))


def signed(caller: Flask, target: str, recipient: str = "GBR-army", *,
           now: datetime | None = None) -> dict[str, str]:
    """The headers ``caller`` signs a GET of ``target`` with."""
    with caller.app_context():
        return online.signed_headers("GET", target, recipient, now=now)


def records_of(data: bytes) -> bytes:
    """A served bundle's records (the zip's parts are compressed)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read("records.jsonl")


def ask(a: Instance, b: Instance, after: int | str, **kw):
    target = f"{FEED}?after={quote(str(after))}"
    return a.app.test_client().get(target, headers=signed(b.app, target, **kw))


def parts(data: bytes) -> tuple[dict, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return json.loads(archive.read("manifest.json")), archive.read("records.jsonl")


def state(a: Instance) -> tuple:
    """What a feed request could change at A."""
    with a.app.app_context():
        peer = db.session.execute(select(Peer.last_out_sequence, Peer.acked_sequence)).one()
    return tuple(peer), kept(a), a.count(AuditRecord, AuditRecord.action.in_(
        ("federation_bundle_sent", "federation_bundle_out", "federation_ack_received")))


def stranger(folder: Path, name: str, nation: str = "USA") -> Flask:
    """An app with an instance name and a key of its own (no database needed to sign)."""
    app = create_app("testing", FEDERATION_DIR=str(folder), INSTANCE_NAME=name,
                     INSTANCE_NATION=nation)
    with app.app_context():
        identity.init_key()
    return app


def test_bundles_are_kept_byte_for_byte_until_acknowledged(pair, tmp_path: Path) -> None:
    a, b = pair
    make_lesson(a, title="Bilbyrest kept bundle", releasable_to=["AUS"])
    bundle = ship(a, b, tmp_path, 1, ack=False)
    with a.app.app_context():
        body = db.session.scalar(select(PeerBundle.body))
    assert body == bundle.read_bytes()
    assert kept(a) == [1]
    a.cli("federation", "import", str(tmp_path / "ack-1.zip"))
    assert kept(a) == []


def test_the_feed_gives_the_same_records_as_the_file(pair, tmp_path: Path) -> None:
    a, b = pair
    make_lesson(a, title="Quollridge online feed", releasable_to=["AUS"])
    make_lesson(a, title="Dingofen never for AUS", releasable_to=[])
    # A bundle written as a file is served again, byte for byte.
    file_1 = tmp_path / "bundle-1.zip"
    a.cli("federation", "export", b.name, str(file_1))
    answer = ask(a, b, 0)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "application/zip"
    assert answer.headers["Muster-Sequence"] == "1"
    assert "attachment" in answer.headers["Content-Disposition"]
    assert answer.data == file_1.read_bytes()
    # A bundle made online holds what the file export then writes (both carry what B
    # has not acknowledged): the same records, byte for byte, and the same counts.
    made = ask(a, b, 1)  # acknowledges 1: nothing is new, so nothing is made
    assert made.status_code == 204 and made.data == b""
    public_id = make_lesson(a, title="Numbatcove second lesson", releasable_to=["AUS"])
    online_2 = ask(a, b, 1)
    assert online_2.status_code == 200 and online_2.headers["Muster-Sequence"] == "2"
    file_3 = tmp_path / "bundle-3.zip"
    a.cli("federation", "export", b.name, str(file_3))
    (manifest_2, records_2), (manifest_3, records_3) = parts(online_2.data), parts(
        file_3.read_bytes())
    assert records_2 == records_3 and public_id.encode() in records_2
    assert b"Quollridge" not in records_2 and b"Dingofen" not in records_2
    assert manifest_2["counts"] == manifest_3["counts"]
    assert (manifest_2["counts"]["lessons"], manifest_2["counts"]["revocations"]) == (1, 0)
    assert (manifest_2["sequence"], manifest_3["sequence"]) == (2, 3)
    assert manifest_2["recipient"] == "AUS-army" and manifest_2["sender"] == manifest_3[
        "sender"]
    # And B applies what the feed served, as a file.
    served = tmp_path / "served-1.zip"
    served.write_bytes(answer.data)
    assert "1 new" in b.cli("federation", "import", str(served)).output
    assert a.count(AuditRecord, AuditRecord.action == "federation_bundle_sent") == 2


def test_the_feed_refuses_an_unsigned_or_unknown_caller(pair, tmp_path: Path) -> None:
    a, b = pair
    make_lesson(a, title="Sugarglide refused callers", releasable_to=["AUS"])
    a.cli("federation", "export", b.name, str(tmp_path / "bundle-1.zip"))
    before = state(a)
    target = f"{FEED}?after=1"  # would acknowledge bundle 1
    good = signed(b.app, target)
    client = a.app.test_client()

    def refused(headers: dict[str, str], words: str, path: str = target) -> None:
        answer = client.get(path, headers=headers)
        assert answer.status_code == 401, answer.get_data(as_text=True)
        assert answer.mimetype == "application/problem+json"
        assert words in answer.get_json()["detail"], answer.get_json()
        assert state(a) == before

    refused({}, "Sign the request")
    refused({"Authorization": "Bearer nothing"}, "Sign the request")
    refused({**good, "Muster-Signature": ""}, "Sign the request")
    usa = stranger(tmp_path / "usa", "USA-army")
    refused(signed(usa, target), "USA-army is not a registered peer")
    impostor = stranger(tmp_path / "impostor", "AUS-army", "AUS")
    refused(signed(impostor, target), "does not match")
    stale = datetime.now(UTC) - timedelta(seconds=400)
    refused(signed(b.app, target, now=stale), "seconds away")
    future = datetime.now(UTC) + timedelta(seconds=400)
    refused(signed(b.app, target, now=future), "seconds away")
    flipped = good["Muster-Signature"]
    flipped = ("B" if flipped[0] == "A" else "A") + flipped[1:]
    refused({**good, "Muster-Signature": flipped}, "does not match")
    refused({**good, "Muster-Signature": "not base64!"}, "not base64")
    refused({**good, "Muster-Date": "6 Dec 2026 17:00"}, "2026-12-06T17:00:00Z")
    refused({**good, "Muster-Date": "2026-13-45T17:00:00Z"}, "not a real date")
    refused({**good, "Muster-Peer": "AUS army"}, "not an instance name")
    # Signed for one request, sent as another (another after=), or to another instance.
    refused(good, "does not match", path=f"{FEED}?after=0")
    refused(signed(b.app, target, recipient="NZL-army"), "does not match")
    assert a.count(AuditRecord, AuditRecord.action == "federation_request_refused") == 14
    # The same signed request, unaltered, is answered.
    assert client.get(target, headers=good).status_code == 204
    assert state(a) != before


def test_after_names_the_last_bundle_applied(pair, tmp_path: Path) -> None:
    a, b = pair
    for bad in ("", "abc", "-1", "1.5", "１", str(2**31)):
        answer = ask(a, b, bad)
        assert answer.status_code == 400, (bad, answer.status_code)
        assert "after=" in answer.get_json()["detail"]
    answer = a.app.test_client().get(
        f"{FEED}?after=0&since=1", headers=signed(b.app, f"{FEED}?after=0&since=1"))
    assert answer.status_code == 422
    # Nothing written yet, nothing to send.
    assert ask(a, b, 0).status_code == 204
    assert state(a)[0] == (0, 0)
    claimed = ask(a, b, 3)
    assert claimed.status_code == 409
    assert "the last bundle written for AUS-army is 0" in claimed.get_json()["detail"]

    make_lesson(a, title="Possumtrack after semantics", releasable_to=["AUS"])
    first = ask(a, b, 0)
    assert first.status_code == 200 and first.headers["Muster-Sequence"] == "1"
    # Asked again (the answer was lost): the same bundle, not a new one.
    again = ask(a, b, 0)
    assert again.data == first.data and state(a)[0] == (1, 0) and kept(a) == [1]
    # after=1 acknowledges it; nothing new then.
    assert ask(a, b, 1).status_code == 204
    assert state(a)[0] == (1, 1) and kept(a) == []
    assert a.count(AuditRecord, AuditRecord.action == "federation_ack_received") == 1
    assert ask(a, b, 1).status_code == 204
    assert a.count(AuditRecord, AuditRecord.action == "federation_ack_received") == 1
    # Behind what it acknowledged: bundle 1 is gone.
    gone = ask(a, b, 0)
    assert gone.status_code == 410
    assert "its last applied bundle is 0" in gone.get_json()["detail"]
    assert "acknowledged (1)" in gone.get_json()["detail"]
    # Two bundles written, the first acknowledged by asking for the second.
    edit(a, make_lesson(a, title="Kultarr two", releasable_to=["AUS"]), title="Kultarr 2")
    a.cli("federation", "export", b.name, str(tmp_path / "bundle-2.zip"))
    make_lesson(a, title="Kultarr three", releasable_to=["AUS"])
    a.cli("federation", "export", b.name, str(tmp_path / "bundle-3.zip"))
    second = ask(a, b, 1)
    assert second.data == (tmp_path / "bundle-2.zip").read_bytes()
    assert ask(a, b, 2).data == (tmp_path / "bundle-3.zip").read_bytes()
    assert state(a)[0] == (3, 2) and kept(a) == [3]
    # Federation not set up here: no feed at all.
    a.app.config["INSTANCE_NAME"], name = "", a.app.config["INSTANCE_NAME"]
    try:
        assert ask(a, b, 0).status_code == 404
        assert a.app.test_client().get(f"{FEED}?after=0").status_code == 401
    finally:
        a.app.config["INSTANCE_NAME"] = name


def set_url(b: Instance, url: str | None) -> None:
    with b.app.app_context():
        db.session.execute(update(Peer).where(Peer.name == "GBR-army").values(url=url))
        db.session.commit()


def peer_at(inst: Instance, name: str) -> Peer:
    with inst.app.app_context():
        peer = db.session.scalar(select(Peer).where(Peer.name == name))
        db.session.expunge(peer)
        return peer


def test_sync_over_http_follows_new_lessons_edits_and_revocations(pair) -> None:
    a, b = pair
    public_id = make_lesson(a, title="Wallaroosync first lesson", releasable_to=["AUS"],
                            tags=["wallaroosync"])
    with serving(a.app) as address:
        set_url(b, f"http://{address}/")
        out = b.cli("federation", "sync", "GBR-army").output
        assert "bundle 1 from GBR-army applied: 1 new" in out
        assert "1 bundle(s) applied" in out
        aus = b.client("aus_user")
        assert "Wallaroosync first lesson" in aus.get("/search?q=wallaroosync").get_data(
            as_text=True)
        # The request that found nothing new acknowledged bundle 1.
        assert peer_at(a, "AUS-army").acked_sequence == 1 and kept(a) == []

        edit(a, public_id, title="Wallaroosync first lesson, revised",
             recommendation="Plan Bettongrove crossings by night.")
        out = b.cli("federation", "sync", "GBR-army").output
        assert "bundle 2 from GBR-army applied: 0 new, 1 updated" in out
        assert "Wallaroosync first lesson, revised" in aus.get(
            "/search?q=bettongrove").get_data(as_text=True)

        edit(a, public_id, releasable_to=[])
        out = b.cli("federation", "sync", "GBR-army").output
        assert "1 revoked" in out
        assert foreign(b, "Wallaroosync").status == "withdrawn"
        assert "Wallaroosync" not in aus.get("/search?q=wallaroosync").get_data(as_text=True)

        before_b, before_a = snapshot(b), state(a)
        out = b.cli("federation", "sync", "GBR-army").output
        assert "0 bundle(s) applied; nothing more to fetch" in out
        assert snapshot(b) == before_b
        assert state(a)[:2] == before_a[:2]  # no bundle made, nothing acknowledged again
        assert peer_at(b, "GBR-army").last_in_sequence == 3
        assert peer_at(a, "AUS-army").acked_sequence == 3

        # B's state behind what it acknowledged: A's refusal is printed and recorded.
        with b.app.app_context():
            db.session.execute(update(Peer).values(last_in_sequence=1))
            db.session.commit()
        result = b.cli("federation", "sync", "GBR-army", ok=False)
        assert result.exit_code == 2
        assert "410" in result.output and "acknowledged earlier" in result.output
        assert "acknowledged earlier" in peer_at(b, "GBR-army").last_error


def test_sync_needs_a_url_and_a_reachable_peer(pair) -> None:
    _a, b = pair
    result = b.cli("federation", "sync", "GBR-army", ok=False)
    assert result.exit_code == 2 and "no URL" in result.output
    result = b.cli("federation", "sync", "NZL-army", ok=False)
    assert result.exit_code == 2 and "No peer named" in result.output
    set_url(b, "http://127.0.0.1:9/")  # the discard port: nothing listens
    result = b.cli("federation", "sync", "GBR-army", ok=False)
    assert result.exit_code == 2 and "could not be reached" in result.output
    assert "could not be reached" in peer_at(b, "GBR-army").last_error


@pytest.fixture
def impostor(pair, tmp_path: Path) -> Iterator[Instance]:
    """A server calling itself GBR-army with a key of its own, which knows B (so it
    answers B's signed requests) and has a lesson for it."""
    _a, b = pair
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'x.db'}",
                     INDEX_DIR=str(tmp_path / "x" / "index"),
                     FILES_DIR=str(tmp_path / "x" / "files"),
                     FEDERATION_DIR=str(tmp_path / "x" / "fed"), INSTANCE_NAME="GBR-army",
                     INSTANCE_NATION="GBR")
    inst = Instance(app, "GBR-army")
    with app.app_context():
        db.create_all()
        seed_reference_data()
        create_user("gbr_author", nation="GBR", roles=("contributor",), password="demo",
                    weak_password_ok=True)
        create_user("gbr_analyst", nation="GBR", roles=("analyst", "contributor"),
                    password="demo", weak_password_ok=True)
    inst.cli("federation", "init")
    key_b = b.cli("federation", "key").output.strip()
    inst.cli("federation", "peer", "add", "AUS-army", "--nation", "AUS", "--key", key_b)
    make_lesson(inst, title="Forgedwren false lesson", releasable_to=["AUS"])
    yield inst
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def test_sync_refuses_a_server_signing_with_another_key(pair, impostor: Instance) -> None:
    _a, b = pair
    before = snapshot(b)
    with serving(impostor.app) as address:
        set_url(b, f"http://{address}")
        result = b.cli("federation", "sync", "GBR-army", ok=False)
    assert result.exit_code == 2 and "another key" in result.output, result.output
    assert snapshot(b) == before and b.count(Lesson) == 0
    assert "another key" in peer_at(b, "GBR-army").last_error
    assert b.count(AuditRecord, AuditRecord.action == "federation_bundle_refused") == 1


def test_nothing_new_is_answered_without_reading_the_lessons_again(
        pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer polling the feed: once it is found up to date, the answer "nothing new"
    does not read every lesson it may see again until the change log moves; any change
    to a lesson (an edit, a narrowed REL TO) or anything waiting to go back is found."""
    from lessons.federation import outbound

    a, b = pair
    public_id = make_lesson(a, title="Ningauiridge polling", releasable_to=["AUS"])
    assert ask(a, b, 0).status_code == 200
    assert ask(a, b, 1).status_code == 204  # acknowledged; the lessons were read once
    staged = outbound._stage
    reads: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return staged(*args, **kwargs)

    monkeypatch.setattr(outbound, "_stage", counted)
    for _ in range(3):
        assert ask(a, b, 1).status_code == 204
    assert reads == []
    edit(a, public_id, title="Ningauiridge polling, revised")
    answer = ask(a, b, 1)
    assert answer.status_code == 200 and answer.headers["Muster-Sequence"] == "2"
    assert b"Ningauiridge polling, revised" in records_of(answer.data)
    # Bundle 2 holds everything up to where the log stood: acknowledged, nothing new.
    assert ask(a, b, 2).status_code == 204 and len(reads) == 1
    assert ask(a, b, 2).status_code == 204 and len(reads) == 1
    edit(a, public_id, releasable_to=[])
    answer = ask(a, b, 2)
    assert answer.status_code == 200 and b'"revocation"' in records_of(answer.data)
    assert ask(a, b, 3).status_code == 204
    # A decision waiting to go back moves no lesson, and is sent all the same.
    from lessons.models import ReturnMessage

    with a.app.app_context():
        peer = db.session.scalar(select(Peer).where(Peer.name == "AUS-army"))
        db.session.add(ReturnMessage(peer_id=peer.id, kind="release_decision", key="rq1",
                                     payload={"type": "release_decision", "id": "rq1",
                                              "lesson": {"id": public_id}}))
        db.session.commit()
    answer = ask(a, b, 3)
    assert answer.status_code == 200 and b'"release_decision"' in records_of(answer.data)
