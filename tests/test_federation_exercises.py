"""Received lessons in exercises, across two instances in one run (tests/test_federation.py's
``pair``: A is GBR-army, B is AUS-army serving AUS and NZL).

At B a lesson received from A is recommended, attached (one by one and by tag) and put
in read-ahead packets like any other; when A narrows its REL TO the revocation takes it
out of everything at B (search, lists, packets, recommendations, the by-tag preview, the
API), and an exercise that had taken it up names it only as withdrawn by originator. An
edit at A replaces the old version at B everywhere. All of it checked over HTTP as B's
users see it, and never shown to NZL users when the lesson is not REL TO NZL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from lessons.extensions import db
from lessons.models import User
from lessons.services import tokens
from tests.test_exercises import attach, exercise_form, exercise_id_from, step
from tests.test_federation import (  # noqa: F401 - pair is a fixture
    Instance,
    edit,
    foreign,
    make_lesson,
    pair,
    ship,
)

MILESTONE = "initial_planning_conference"
TAG = "bandicootmesh"


def lesson_words(title: str, **overrides: Any) -> dict[str, Any]:
    """A GBR lesson's fields whose words are its own: nothing in it matches another
    lesson's text or the default exercise's tags."""
    fields: dict[str, Any] = {
        "title": title, "tags": [TAG], "nations": ["AUS", "GBR"],
        "observation": f"{title}: observed at the relay site.",
        "discussion": "The relay was sited below the crest.",
        "conclusion": "Site relays on the crest.",
        "recommendation": "Survey relay sites by day before a night move.",
    }
    fields.update(overrides)
    return fields


def plan(b: Instance, nations: list[str]) -> tuple[FlaskClient, str]:
    """An exercise at B planned by ``aus_analyst`` (a planner) over HTTP; its id."""
    planner = b.client("aus_analyst")
    response = planner.post("/exercises/new", data=exercise_form(
        name="Exercise QUOLL RELAY 2027", lead_nation="AUS", nations=nations,
        location="Shoalwater Bay", tags=TAG,
        description="Bandicootmesh radio relays for a combined night move.",
        **{"objectives-0-text": "Relay bandicootmesh radios through the night",
           "objectives-1-text": "Hand over the relay between nations"}))
    assert response.status_code == 302, response.get_data(as_text=True)[:1000]
    return planner, exercise_id_from(response.headers["Location"])


def html(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def recommended(client: FlaskClient, exercise_id: str) -> list[str]:
    page = html(client, f"/exercises/{exercise_id}/recommendations")
    return re.findall(r'class="recommendation" data-lesson="([a-z0-9]{10})"', page)


def by_tag_offered(client: FlaskClient, exercise_id: str) -> list[str]:
    page = html(client, f"/exercises/{exercise_id}/attach-by-tag?tag={TAG}")
    return re.findall(r'name="lesson_ids" value="([a-z0-9]{10})"', page)


def packet_page(client: FlaskClient, exercise_id: str, audience: list[str]) -> str:
    query = "".join(f"&audience={code}" for code in audience)
    return html(client, f"/exercises/{exercise_id}/packet?milestone={MILESTONE}{query}")


def packet_ids(page: str) -> list[str]:
    return re.findall(r'class="packet-lesson" data-lesson="([a-z0-9]{10})"', page)


def packet_json(client: FlaskClient, exercise_id: str, audience: list[str]) -> dict:
    response = client.get(f"/exercises/{exercise_id}/packet?milestone={MILESTONE}"
                          f"&audience={','.join(audience)}&format=json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return json.loads(response.get_data(as_text=True))


def token(b: Instance, username: str) -> dict[str, str]:
    with b.app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        return {"Authorization": f"Bearer {tokens.create_token(user, 'federation test')[1]}"}


def api(client: FlaskClient, headers: dict[str, str], path: str) -> tuple[int, dict]:
    response = client.get(f"/api/v1{path}", headers=headers)
    return response.status_code, response.get_json(silent=True) or {}


def search_ids(client: FlaskClient, words: str) -> str:
    return html(client, f"/search?q={words}")


def test_a_received_lesson_is_recommended_attached_and_packed_until_revoked(
        pair, tmp_path: Path) -> None:  # noqa: F811
    a, b = pair
    attached_id = make_lesson(a, **lesson_words(
        "Quollspire relay failed at dusk", releasable_to=["AUS"]))
    make_lesson(a, **lesson_words(
        "Dibblerwake relay handover drill", releasable_to=["AUS", "NZL"]))
    spare_id = make_lesson(a, **lesson_words(
        "Bettongcrest relay batteries ran flat", releasable_to=["AUS"]))
    ship(a, b, tmp_path, 1)
    attached, tagged, spare = (foreign(b, word) for word in (
        "Quollspire", "Dibblerwake", "Bettongcrest"))
    planner, exercise_id = plan(b, ["AUS", "NZL"])
    nzl = b.client("nzl_user")

    # Recommended like any lesson (the page and the API), and offered by tag.
    ranked = recommended(planner, exercise_id)
    assert {attached.public_id, tagged.public_id, spare.public_id} <= set(ranked)
    headers = token(b, "aus_analyst")
    status, body = api(planner, headers, f"/exercises/{exercise_id}/recommendations")
    assert status == 200
    assert attached.public_id in [item["lesson"]["id"] for item in body["items"]]
    assert set(by_tag_offered(planner, exercise_id)) == {
        attached.public_id, tagged.public_id, spare.public_id}

    # Attached one by one and by tag, then accepted into the packet.
    assert attach(planner, exercise_id, attached.public_id).status_code == 302
    response = planner.post(f"/exercises/{exercise_id}/attach-by-tag", data={
        "tag": TAG, "lesson_ids": [tagged.public_id], "purpose": "read_ahead",
        "objective": "", "milestone": MILESTONE, "note": ""})
    assert response.status_code == 302, response.get_data(as_text=True)[:1000]
    for lesson in (attached, tagged):
        assert step(planner, exercise_id, lesson.public_id, "accepted").status_code == 302
    assert set(recommended(planner, exercise_id)) & {attached.public_id, tagged.public_id} \
        == set()
    assert by_tag_offered(planner, exercise_id) == [spare.public_id]

    # The AUS packet holds both; one for AUS and NZL only the lesson released to NZL.
    page = packet_page(planner, exercise_id, ["AUS"])
    assert sorted(packet_ids(page)) == sorted([attached.public_id, tagged.public_id])
    assert "Quollspire relay failed at dusk" in page
    document = packet_json(planner, exercise_id, ["AUS"])
    assert sorted(item["id"] for item in document["lessons"]) == sorted(
        [attached.public_id, tagged.public_id])
    item = next(i for i in document["lessons"] if i["id"] == attached.public_id)
    assert item["originator_nation"] == "GBR" and item["title"] == "Quollspire relay failed at dusk"
    both = packet_json(planner, exercise_id, ["AUS", "NZL"])
    assert [i["id"] for i in both["lessons"]] == [tagged.public_id]
    assert both["withheld"] == {"count": 1, "nations": {"NZL": 1}}
    assert attached.public_id not in packet_ids(packet_page(planner, exercise_id,
                                                            ["AUS", "NZL"]))

    # NZL at B never sees the lesson not released to NZL, on any page.
    for path in (f"/exercises/{exercise_id}", f"/exercises/{exercise_id}/packet?milestone="
                 f"{MILESTONE}", "/search?q=quollspire", "/lessons?tab=all"):
        page = html(nzl, path)
        assert "Quollspire" not in page and attached.public_id not in page, path
    assert tagged.public_id in html(nzl, f"/exercises/{exercise_id}")

    # A narrows REL TO on two of them (one attached, one not): revoked at B.
    edit(a, attached_id, releasable_to=[])
    edit(a, spare_id, releasable_to=[])
    ship(a, b, tmp_path, 2)
    assert foreign(b, "Quollspire").status == "withdrawn"
    gone = {"Quollspire": attached.public_id, "Bettongcrest": spare.public_id}

    def absent(page: str, where: str) -> None:
        for word, public_id in gone.items():
            assert word not in page and public_id not in page, (where, word)

    for words in ("quollspire", "bettongcrest", "relay"):
        absent(search_ids(planner, words), f"search {words}")
    absent(html(planner, "/lessons?tab=all"), "lessons list")
    assert "Dibblerwake" in search_ids(planner, "relay")  # the kept one still found
    for lesson in (attached, spare):
        assert planner.get(f"/lessons/{lesson.public_id}").status_code == 404
    assert recommended(planner, exercise_id) == []
    assert by_tag_offered(planner, exercise_id) == []
    assert packet_ids(packet_page(planner, exercise_id, ["AUS"])) == [tagged.public_id]
    absent(packet_page(planner, exercise_id, ["AUS"]), "packet")
    document = packet_json(planner, exercise_id, ["AUS"])
    assert [i["id"] for i in document["lessons"]] == [tagged.public_id]
    assert document["withheld"] == {"count": 0, "nations": {}}
    absent(planner.get(f"/exercises/{exercise_id}/packet?milestone={MILESTONE}"
                       "&audience=AUS&format=csv").get_data(as_text=True), "packet csv")

    # The API says the same.
    status, body = api(planner, headers, "/lessons?q=quollspire")
    assert status == 200 and body["total"] == 0
    status, body = api(planner, headers, "/lessons?q=relay")
    assert [i["id"] for i in body["items"]] == [tagged.public_id]
    assert api(planner, headers, f"/lessons/{attached.public_id}")[0] == 404
    status, body = api(planner, headers, f"/exercises/{exercise_id}/lessons")
    assert status == 200
    assert [i["lesson"]["id"] for i in body["items"]] == [tagged.public_id], body
    status, body = api(planner, headers, f"/exercises/{exercise_id}/packet?audience=AUS"
                                         f"&milestone={MILESTONE}")
    assert [i["id"] for i in body["lessons"]] == [tagged.public_id]
    status, body = api(planner, headers, f"/exercises/{exercise_id}/recommendations")
    assert status == 200 and body["items"] == []

    # The exercise page names the attached one as withdrawn by originator, no content.
    page = html(planner, f"/exercises/{exercise_id}")
    withdrawn = re.search(rf'<li id="withdrawn-{attached.public_id}"[^>]*>(.*?)</li>', page,
                          re.S)
    assert withdrawn, page
    assert "withdrawn by originator" in withdrawn.group(1)
    assert attached_id in withdrawn.group(1) and "GBR-army" in withdrawn.group(1)
    for word in ("Quollspire", "observed at the relay site", "dusk"):
        assert word not in page, word
    assert "Dibblerwake relay handover drill" in page
    # NZL was never told of it: not even that it was withdrawn.
    nzl_page = html(nzl, f"/exercises/{exercise_id}")
    assert "withdrawn by originator" not in nzl_page and attached_id not in nzl_page
    assert "Dibblerwake" in nzl_page


def test_a_newer_version_replaces_the_older_one_everywhere(
        pair, tmp_path: Path) -> None:  # noqa: F811
    a, b = pair
    attached_id = make_lesson(a, **lesson_words(
        "Antechinus relay masts blew down", releasable_to=["AUS"]))
    spare_id = make_lesson(a, **lesson_words(
        "Potoroo relay cables were chewed", releasable_to=["AUS"]))
    ship(a, b, tmp_path, 1)
    attached, spare = foreign(b, "Antechinus"), foreign(b, "Potoroo")
    planner, exercise_id = plan(b, ["AUS", "NZL"])
    assert attach(planner, exercise_id, attached.public_id).status_code == 302
    assert step(planner, exercise_id, attached.public_id, "accepted").status_code == 302

    edit(a, attached_id, title="Numbatguy relay masts need guy lines",
         observation="Numbatguy masts stood once guyed.")
    edit(a, spare_id, title="Sugargliderfix relay cables in conduit",
         observation="Cables left on the ground were chewed through.")
    ship(a, b, tmp_path, 2)
    assert foreign(b, "Numbatguy").id == attached.id and foreign(b, "Antechinus") is None
    assert foreign(b, "Sugargliderfix").id == spare.id

    for old, new, public_id in (("antechinus", "numbatguy", attached.public_id),
                                ("potoroo", "sugargliderfix", spare.public_id)):
        assert public_id not in search_ids(planner, old)
        assert public_id in search_ids(planner, new)
        assert old not in html(planner, f"/lessons/{public_id}").lower()
    listing = html(planner, "/lessons?tab=all")
    assert "Numbatguy" in listing and "Antechinus" not in listing
    page = html(planner, f"/exercises/{exercise_id}")
    assert "Numbatguy relay masts need guy lines" in page and "Antechinus" not in page
    packet = packet_page(planner, exercise_id, ["AUS"])
    assert packet_ids(packet) == [attached.public_id]
    assert "Numbatguy" in packet and "Antechinus" not in packet
    document = packet_json(planner, exercise_id, ["AUS"])
    assert document["lessons"][0]["title"] == "Numbatguy relay masts need guy lines"
    assert document["lessons"][0]["observation"] == "Numbatguy masts stood once guyed."
    rec = html(planner, f"/exercises/{exercise_id}/recommendations")
    assert "Sugargliderfix relay cables in conduit" in rec and "Potoroo" not in rec
    headers = token(b, "aus_analyst")
    status, body = api(planner, headers, "/lessons?q=potoroo")
    assert status == 200 and body["total"] == 0
    status, body = api(planner, headers, f"/lessons/{spare.public_id}")
    assert status == 200 and body["title"] == "Sugargliderfix relay cables in conduit"


def test_a_lesson_released_again_after_a_revocation_comes_back(
        pair, tmp_path: Path) -> None:  # noqa: F811
    """Narrowed, then widened again at A: B holds it again under the same id, and the
    exercise that had taken it up shows it once more instead of the withdrawn line."""
    a, b = pair
    public_id = make_lesson(a, **lesson_words("Phascogale relay codes", releasable_to=["AUS"]))
    ship(a, b, tmp_path, 1)
    received = foreign(b, "Phascogale")
    planner, exercise_id = plan(b, ["AUS"])
    assert attach(planner, exercise_id, received.public_id).status_code == 302
    edit(a, public_id, releasable_to=[])
    ship(a, b, tmp_path, 2)
    assert "withdrawn by originator" in html(planner, f"/exercises/{exercise_id}")
    edit(a, public_id, releasable_to=["AUS"])
    ship(a, b, tmp_path, 3)
    back = foreign(b, "Phascogale")
    assert back.id == received.id and back.status == "validated"
    page = html(planner, f"/exercises/{exercise_id}")
    assert "withdrawn by originator" not in page and "Phascogale relay codes" in page
    assert received.public_id in search_ids(planner, "phascogale")
