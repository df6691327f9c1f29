"""The loop across nations: what B's planners record about a lesson received from A
travels back to A, is decided there by A's analysts as a local outcome or release
request would be, and the decision comes back to B.

A is GBR-army (its lessons), B is AUS-army (AUS and NZL); bundles go by file both ways
(``ship``), as ``tests/test_federation.py`` sets them up.
"""

# ruff: noqa: F811 - ``pair`` is a fixture imported from tests/test_federation.py
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from sqlalchemy import select

from lessons.extensions import db
from lessons.federation import bundles, identity
from lessons.models import AuditRecord, Exercise, ExerciseLesson, Lesson, Peer, ReleaseRequest
from lessons.models.partner import PartnerRequest, ReturnMessage
from tests.test_exercises import attach, day, exercise_form, exercise_id_from, step, walk
from tests.test_federation import (  # noqa: F401 - pair is a fixture
    Instance,
    edit,
    foreign,
    make_lesson,
    pair,
    ship,
    snapshot,
)


def back(tmp_path: Path) -> Path:
    """Where bundles from B to A are written (their numbers restart at 1)."""
    folder = tmp_path / "back"
    folder.mkdir(exist_ok=True)
    return folder


def exercise_at_b(b: Instance, lesson_id: str, *, nations: list[str] | None = None,
                  attach_it: bool = True) -> str:
    """A combined exercise at B, under way, with the received lesson incorporated."""
    planner = b.client("aus_analyst")
    response = planner.post("/exercises/new", data=exercise_form(
        name="Exercise TALISMAN SABRE 2027", lead_nation="AUS",
        nations=nations or ["AUS"], starts_on=day(-1), location="Shoalwater Bay"))
    assert response.status_code == 302, response.get_data(as_text=True)[:1000]
    exercise_id = exercise_id_from(response.headers["Location"])
    if attach_it:
        assert attach(planner, exercise_id, lesson_id).status_code == 302
        walk(planner, exercise_id, lesson_id)
    return exercise_id


def link_at(inst: Instance, exercise_id: str, lesson_id: str) -> tuple[str, str]:
    with inst.app.app_context():
        link = db.session.scalar(
            select(ExerciseLesson).join(Exercise).join(Lesson, ExerciseLesson.lesson_id
                                                       == Lesson.id)
            .where(Exercise.public_id == exercise_id, Lesson.public_id == lesson_id))
        return link.status, link.confirmation


def status_at(inst: Instance, public_id: str) -> str:
    with inst.app.app_context():
        return db.session.scalar(select(Lesson.status).where(Lesson.public_id == public_id))


def partner_id(a: Instance) -> str:
    with a.app.app_context():
        return db.session.scalar(select(PartnerRequest.public_id).where(
            PartnerRequest.status == "pending"))


def records(path: Path) -> list[dict]:
    with zipfile.ZipFile(path) as archive:
        return [json.loads(line) for line in archive.read("records.jsonl").splitlines()]


def test_an_outcome_recorded_at_b_is_confirmed_at_a_and_the_decision_returns(
        pair, tmp_path: Path) -> None:
    a, b = pair
    public_id = make_lesson(a, title="Dingoecho relay at night", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Dingoecho")
    exercise_id = exercise_at_b(b, received.public_id)
    planner = b.client("aus_analyst")
    response = step(planner, exercise_id, received.public_id, "effective",
                    "The relay held all night with AUS radios.")
    assert response.status_code == 302
    page = planner.get(f"/exercises/{exercise_id}").get_data(as_text=True)
    assert "awaiting confirmation by a GBR analyst on GBR-army" in page
    # At B nobody decides it: the lesson stays as its originator last sent it.
    assert link_at(b, exercise_id, received.public_id) == ("effective", "pending")
    assert status_at(b, received.public_id) == "validated"
    visitor = b.client("gbr_visitor")  # a GBR analyst with an account at B
    assert 'id="outcomes"' not in visitor.get("/lessons?tab=review").get_data(as_text=True)
    # Not one of the exercise's participants: told there is nothing waiting.
    assert visitor.post(f"/reviews/outcomes/{exercise_id}/{received.public_id}",
                        data={"decision": "confirm"}).status_code == 404
    assert link_at(b, exercise_id, received.public_id) == ("effective", "pending")

    # B's administrators see it waiting to go back.
    from lessons.services.users import create_user

    with b.app.app_context():
        create_user("aus_admin", nation="AUS", roles=("admin",), password="demo",
                    weak_password_ok=True)
    peers_page = b.client("aus_admin").get("/admin/peers").get_data(as_text=True)
    assert "1 outcome, request or decision to go back" in peers_page
    bundle = ship(b, a, back(tmp_path), 1)
    assert "to go back" not in b.client("aus_admin").get("/admin/peers").get_data(
        as_text=True)
    sent = [r for r in records(bundle) if r["type"] == "outcome"]
    assert len(sent) == 1 and sent[0]["lesson"] == {"instance": "GBR-army", "id": public_id}
    assert sent[0]["exercise"]["name"] == "Exercise TALISMAN SABRE 2027"

    # A's analyst sees it in To review with the partner exercise named.
    analyst = a.client("gbr_analyst")
    page = analyst.get("/lessons?tab=review").get_data(as_text=True)
    assert 'id="partner-requests"' in page and "Exercise TALISMAN SABRE 2027" in page
    assert "AUS-army" in page and "The relay held all night with AUS radios." in page
    home = analyst.get("/").get_data(as_text=True)
    assert "outcome or request from a partner instance to decide" in home
    request_id = partner_id(a)
    # Not the author's call, nor a contributor's.
    author = a.client("gbr_author")
    assert author.post(f"/reviews/partner/{request_id}",
                       data={"decision": "confirm"}).status_code == 403
    assert analyst.post(f"/reviews/partner/{request_id}",
                        data={"decision": "approve"}).status_code == 422
    assert analyst.post(f"/reviews/partner/{request_id}",
                        data={"decision": "confirm", "note": "Agreed."}).status_code == 302
    assert status_at(a, public_id) == "learned"
    assert analyst.post(f"/reviews/partner/{request_id}",
                        data={"decision": "confirm"}).status_code == 409
    assert 'id="partner-requests"' not in analyst.get("/lessons?tab=review").get_data(
        as_text=True)

    # The decision and the lesson's new status travel back to B.
    bundle = ship(a, b, tmp_path, 2)
    assert any(r["type"] == "outcome_decision" and r["decision"] == "confirmed"
               for r in records(bundle))
    assert link_at(b, exercise_id, received.public_id) == ("effective", "confirmed")
    assert status_at(b, received.public_id) == "learned"
    page = planner.get(f"/exercises/{exercise_id}").get_data(as_text=True)
    assert "lesson recorded as learned" in page
    with b.app.app_context():
        assert db.session.scalar(select(AuditRecord.comment).where(
            AuditRecord.action == "outcome_confirmed")).startswith("GBR-army analyst (GBR)")
    # Delivered: neither side sends it again once acknowledged.
    assert not [r for r in records(ship(a, b, tmp_path, 3)) if r["type"] != "lesson"]
    assert not [r for r in records(ship(b, a, back(tmp_path), 2)) if r["type"] == "outcome"]
    assert a.count(ReturnMessage) == 0 and b.count(ReturnMessage) == 0


def test_a_declined_outcome_needs_a_reason_and_leaves_both_copies_open(
        pair, tmp_path: Path) -> None:
    a, b = pair
    public_id = make_lesson(a, title="Kookaburrapeal fires net", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Kookaburrapeal")
    exercise_id = exercise_at_b(b, received.public_id)
    step(b.client("aus_analyst"), exercise_id, received.public_id, "effective", "Fine.")
    ship(b, a, back(tmp_path), 1)
    analyst, request_id = a.client("gbr_analyst"), partner_id(a)
    assert analyst.post(f"/reviews/partner/{request_id}",
                        data={"decision": "decline", "note": " "}).status_code == 422
    assert analyst.post(f"/reviews/partner/{request_id}", data={
        "decision": "decline", "note": "One night is not enough evidence."}).status_code == 302
    assert status_at(a, public_id) == "validated"
    ship(a, b, tmp_path, 2)
    assert link_at(b, exercise_id, received.public_id) == ("effective", "declined")
    assert status_at(b, received.public_id) == "validated"
    with b.app.app_context():
        comment = db.session.scalar(select(AuditRecord.comment).where(
            AuditRecord.action == "outcome_declined"))
    assert "One night is not enough evidence." in comment


def test_a_not_effective_outcome_is_recorded_at_a_without_a_decision(
        pair, tmp_path: Path) -> None:
    a, b = pair
    public_id = make_lesson(a, title="Bilbyhop data link", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Bilbyhop")
    exercise_id = exercise_at_b(b, received.public_id)
    step(b.client("aus_analyst"), exercise_id, received.public_id, "not_effective",
         "Still dropped out over the ridge.")
    assert link_at(b, exercise_id, received.public_id) == ("not_effective", "")
    ship(b, a, back(tmp_path), 1)
    with a.app.app_context():
        request = db.session.scalar(select(PartnerRequest))
        assert (request.status, request.result) == ("noted", "not_effective")
        assert request.text == "Still dropped out over the ridge."
        comment = db.session.scalar(select(AuditRecord.comment).where(
            AuditRecord.action == "partner_outcome_received"))
    assert "outcome not effective" in comment
    page = a.client("gbr_analyst").get("/lessons?tab=review").get_data(as_text=True)
    assert 'id="partner-requests"' not in page
    assert status_at(a, public_id) == "validated"


def test_a_release_request_at_b_is_approved_at_a_and_nzl_then_sees_the_lesson(
        pair, tmp_path: Path) -> None:
    a, b = pair
    public_id = make_lesson(a, title="Possumtrail crossing drill", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Possumtrail")
    exercise_id = exercise_at_b(b, received.public_id, nations=["AUS", "NZL"])
    planner = b.client("aus_analyst")
    response = planner.post(f"/exercises/{exercise_id}/release-requests", data={
        "lesson_id": received.public_id, "nations": "NZL",
        "reason": "NZL engineers run the crossing."})
    assert response.status_code == 302, response.get_data(as_text=True)[:1000]
    # Nobody at B decides a request about a lesson of A.
    assert 'id="release-requests"' not in b.client("gbr_visitor").get(
        "/lessons?tab=review").get_data(as_text=True)
    nzl = b.client("nzl_user")
    assert "Possumtrail" not in nzl.get("/search?q=possumtrail").get_data(as_text=True)

    ship(b, a, back(tmp_path), 1)
    analyst = a.client("gbr_analyst")
    page = analyst.get("/lessons?tab=review").get_data(as_text=True)
    assert "NZL engineers run the crossing." in page and "asks to add" in page
    request_id = partner_id(a)
    assert analyst.post(f"/reviews/partner/{request_id}",
                        data={"decision": "confirm"}).status_code == 422
    assert analyst.post(f"/reviews/partner/{request_id}",
                        data={"decision": "approve"}).status_code == 302
    with a.app.app_context():
        lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == public_id))
        assert sorted(lesson.releasable_to) == ["AUS", "GBR", "NZL"]

    ship(a, b, tmp_path, 2)
    with b.app.app_context():
        request = db.session.scalar(select(ReleaseRequest))
        assert request.status == "approved"
        assert request.decision_note.startswith("GBR-army analyst (GBR)")
    assert "Possumtrail crossing drill" in nzl.get("/search?q=possumtrail").get_data(
        as_text=True)


def test_a_declined_release_request_comes_back_declined(pair, tmp_path: Path) -> None:
    a, b = pair
    make_lesson(a, title="Echidnaspine cache", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Echidnaspine")
    exercise_id = exercise_at_b(b, received.public_id, nations=["AUS", "NZL"])
    b.client("aus_analyst").post(f"/exercises/{exercise_id}/release-requests", data={
        "lesson_id": received.public_id, "nations": "NZL"})
    ship(b, a, back(tmp_path), 1)
    analyst, request_id = a.client("gbr_analyst"), partner_id(a)
    assert analyst.post(f"/reviews/partner/{request_id}", data={"decision": "decline"}
                        ).status_code == 422
    assert analyst.post(f"/reviews/partner/{request_id}", data={
        "decision": "decline", "note": "GBR eyes only for now."}).status_code == 302
    ship(a, b, tmp_path, 2)
    with b.app.app_context():
        request = db.session.scalar(select(ReleaseRequest))
        assert request.status == "declined" and "GBR eyes only" in request.decision_note
        lesson = db.session.scalar(select(Lesson).where(Lesson.title.contains("Echidna")))
        assert sorted(lesson.releasable_to) == ["AUS", "GBR"]


def test_an_outcome_on_a_lesson_a_no_longer_shares_with_b_is_skipped(
        pair, tmp_path: Path) -> None:
    a, b = pair
    public_id = make_lesson(a, title="Wallabyjump air corridor", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Wallabyjump")
    exercise_id = exercise_at_b(b, received.public_id)
    step(b.client("aus_analyst"), exercise_id, received.public_id, "effective", "Worked.")
    edit(a, public_id, releasable_to=[])  # GBR only, before B's bundle arrives
    result = b.cli("federation", "export", a.name, str(back(tmp_path) / "b-1.zip"))
    assert "bundle 1" in result.output
    assert "1 outcome(s), request(s) or decision(s)" in result.output
    applied = a.cli("federation", "import", str(back(tmp_path) / "b-1.zip"))
    assert "1 skipped" in applied.output
    assert a.count(PartnerRequest) == 0


def test_an_outcome_on_a_lesson_never_sent_to_b_is_skipped(pair, tmp_path: Path) -> None:
    """Released to AUS but created after B's last bundle: B cannot know its id, and a
    record naming it (forged here with B's key) decides nothing."""
    a, b = pair
    make_lesson(a, title="Dugongbay first lesson", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    unsent = make_lesson(a, title="Dugongbay second lesson", releasable_to=["AUS"])
    forged = tmp_path / "forged.zip"
    with b.app.app_context():
        bundles.write(forged, {
            "kind": "lessons", "recipient": "GBR-army", "sequence": 1,
            "sender": {"name": "AUS-army", "nation": "AUS",
                       "key_fingerprint": identity.fingerprint(identity.public_key())}},
            bundles.records_bytes([{
                "type": "outcome", "id": "x.y", "lesson": {"instance": "GBR-army",
                                                           "id": unsent},
                "result": "effective", "evidence": "Guessed.",
                "exercise": {"name": "X", "starts": "", "ends": ""},
                "planner_nation": "AUS"}]))
    assert "1 skipped" in a.cli("federation", "import", str(forged)).output
    assert a.count(PartnerRequest) == 0


def test_a_malformed_return_record_refuses_the_whole_bundle(pair, tmp_path: Path) -> None:
    a, b = pair
    public_id = make_lesson(a, title="Quollscent ration plan", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    before = snapshot(a)
    bad = tmp_path / "bad.zip"
    with b.app.app_context():
        bundles.write(bad, {
            "kind": "lessons", "recipient": "GBR-army", "sequence": 1,
            "sender": {"name": "AUS-army", "nation": "AUS",
                       "key_fingerprint": identity.fingerprint(identity.public_key())}},
            bundles.records_bytes([{
                "type": "outcome", "id": "x.y",
                "lesson": {"instance": "GBR-army", "id": public_id},
                "result": "splendid", "evidence": "",
                "exercise": {"name": "X", "starts": "", "ends": ""},
                "planner_nation": "AUS"}]))
    result = a.cli("federation", "import", str(bad), ok=False)
    assert result.exit_code == 2 and "unknown outcome" in result.output
    assert snapshot(a) == before and a.count(PartnerRequest) == 0


def test_two_analysts_deciding_one_partner_request_at_once_decide_it_once(
        pair, tmp_path: Path) -> None:
    """Through real HTTP, confirm against decline (an outcome) and approve against
    decline (a release request): one decides, the other is told it was decided, and one
    decision travels back."""
    from functools import partial

    from lessons.services.users import create_user
    from tests.http_client import Http, race, serving

    a, _ = pair
    with a.app.app_context():
        create_user("gbr_analyst2", nation="GBR", roles=("analyst",), password="demo",
                    weak_password_ok=True)
    for kind, choices in (("outcome", ("confirm", "decline")),
                          ("release", ("approve", "decline"))):
        public_id = make_lesson(a, title=f"Numbatsift {kind} drill", releasable_to=["AUS"])
        with a.app.app_context():
            peer = db.session.scalar(select(Peer))
            lesson = db.session.scalar(select(Lesson).where(Lesson.public_id == public_id))
            request = PartnerRequest(
                peer_id=peer.id, kind=kind, remote_id=f"race-{kind}", lesson_id=lesson.id,
                exercise_name="Exercise RACE", planner_nation="AUS",
                result="effective" if kind == "outcome" else "",
                nations=[] if kind == "outcome" else ["NZL"], status="pending")
            db.session.add(request)
            db.session.commit()
            request_id = request.public_id
        with serving(a.app) as address:
            analysts = [Http(address).login("gbr_analyst"), Http(address).login("gbr_analyst2")]
            path = f"/reviews/partner/{request_id}"
            responses = race(
                partial(analysts[0].send, "POST", path, form={"decision": choices[0]}),
                partial(analysts[1].send, "POST", path, form={"decision": choices[1],
                                                              "note": "Not ours."}))
        statuses = [r.status for r in responses]
        assert sorted(statuses) == [302, 409], [r.text[:300] for r in responses]
        with a.app.app_context():
            decided = db.session.scalar(select(PartnerRequest).where(
                PartnerRequest.public_id == request_id))
            messages = list(db.session.scalars(select(ReturnMessage).where(
                ReturnMessage.key == f"race-{kind}")))
            status = db.session.scalar(select(Lesson.status).where(
                Lesson.public_id == public_id))
            releasable = db.session.scalar(select(Lesson).where(
                Lesson.public_id == public_id)).releasable_to
        won = choices[0] if statuses[0] == 302 else choices[1]
        assert decided.version == 2 and len(messages) == 1
        assert messages[0].payload["decision"] == decided.status
        assert (status == "learned") == (won == "confirm")
        assert ("NZL" in releasable) == (won == "approve")


def test_the_whole_loop_online(pair) -> None:
    """Each instance serves its feed over real HTTP and pulls the other's with
    ``flask federation sync``: the lesson goes to B, B's outcome comes to A, A's
    confirmation goes back to B, with no file moved by hand."""
    from sqlalchemy import update

    from lessons.models import Peer
    from tests.http_client import serving

    a, b = pair
    public_id = make_lesson(a, title="Platypusdive river crossing", releasable_to=["AUS"])
    with serving(a.app) as address_a, serving(b.app) as address_b:
        for inst, peer, address in ((a, "AUS-army", address_b), (b, "GBR-army", address_a)):
            with inst.app.app_context():
                db.session.execute(update(Peer).where(Peer.name == peer)
                                   .values(url=f"http://{address}"))
                db.session.commit()
        assert "1 new" in b.cli("federation", "sync", "GBR-army").output
        received = foreign(b, "Platypusdive")
        exercise_id = exercise_at_b(b, received.public_id)
        step(b.client("aus_analyst"), exercise_id, received.public_id, "effective",
             "Crossed twice without loss.")
        assert "1 outcome(s) or request(s) received" in a.cli(
            "federation", "sync", "AUS-army").output
        analyst = a.client("gbr_analyst")
        assert analyst.post(f"/reviews/partner/{partner_id(a)}",
                            data={"decision": "confirm"}).status_code == 302
        out = b.cli("federation", "sync", "GBR-army").output
        assert "1 updated" in out and "1 decision(s) settled" in out
        assert link_at(b, exercise_id, received.public_id) == ("effective", "confirmed")
        assert status_at(b, received.public_id) == "learned"
        # Each side's next pull acknowledged what it applied: nothing waits to go back.
        a.cli("federation", "sync", "AUS-army")
        assert a.count(ReturnMessage) == 0 and b.count(ReturnMessage) == 0
    assert status_at(a, public_id) == "learned"


def test_archiving_the_lesson_declines_what_partners_asked_and_tells_them(
        pair, tmp_path: Path) -> None:
    a, b = pair
    public_id = make_lesson(a, title="Tasmandevil ford markers", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Tasmandevil")
    exercise_id = exercise_at_b(b, received.public_id, nations=["AUS", "NZL"])
    b.client("aus_analyst").post(f"/exercises/{exercise_id}/release-requests", data={
        "lesson_id": received.public_id, "nations": "NZL"})
    ship(b, a, back(tmp_path), 1)
    assert a.count(PartnerRequest, PartnerRequest.status == "pending") == 1
    response = a.client("gbr_analyst").post(f"/lessons/{public_id}/transition", data={
        "to": "archived", "note": "Superseded by the 2027 drill."})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert status_at(a, public_id) == "archived"
    assert a.count(PartnerRequest, PartnerRequest.status == "declined") == 1
    ship(a, b, tmp_path, 2)
    with b.app.app_context():
        request = db.session.scalar(select(ReleaseRequest))
        assert request.status == "declined"
        assert "The lesson was archived: Superseded by the 2027 drill." in \
            request.decision_note


def test_a_planner_of_the_originator_nation_at_b_does_not_make_it_learned_there(
        pair, tmp_path: Path) -> None:
    """At A a GBR planner's effective outcome makes a GBR lesson learned at once. At B the
    lesson is A's: a GBR planner there records the outcome, which waits for A."""
    from lessons.services.users import create_user

    a, b = pair
    public_id = make_lesson(a, title="Thylacinetrail liaison desk", releasable_to=["AUS"])
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Thylacinetrail")
    with b.app.app_context():
        create_user("gbr_planner", nation="GBR", roles=("planner",), password="demo",
                    weak_password_ok=True)
    response = b.client("aus_analyst").post("/exercises/new", data=exercise_form(
        name="Exercise TALISMAN SABRE 2027", lead_nation="AUS", nations=["AUS", "GBR"],
        starts_on=day(-1), planners="gbr_planner"))
    assert response.status_code == 302, response.get_data(as_text=True)[:1000]
    exercise_id = exercise_id_from(response.headers["Location"])
    planner = b.client("gbr_planner")
    assert attach(planner, exercise_id, received.public_id).status_code == 302
    walk(planner, exercise_id, received.public_id)
    assert step(planner, exercise_id, received.public_id, "effective",
                "Worked for us too.").status_code == 302
    assert link_at(b, exercise_id, received.public_id) == ("effective", "pending")
    assert status_at(b, received.public_id) == "validated"
    assert b.count(ReturnMessage) == 1
    ship(b, a, back(tmp_path), 1)
    assert a.count(PartnerRequest, PartnerRequest.status == "pending") == 1
    assert status_at(a, public_id) == "validated"
