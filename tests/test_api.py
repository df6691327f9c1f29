"""The JSON API: tokens, every endpoint's success and its errors as RFC 9457 problems,
the sharing policy through the API, and no lost updates (ETag / If-Match)."""

from __future__ import annotations

import itertools
import json
import re
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from lessons.extensions import db
from lessons.models import ApiToken, ExerciseLesson, Lesson, User
from lessons.services import tokens

SOON = date.today() + timedelta(days=30)


@pytest.fixture
def people(make_user):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("gb.planner", "GBR", ("contributor", "planner"))
    make_user("us.author", "USA", ("contributor",))
    make_user("us.an", "USA", ("contributor", "analyst"))
    make_user("au.planner", "AUS", ("contributor", "planner"))


@pytest.fixture
def token_for(app):
    numbers = itertools.count(1)

    def _token(username: str, name: str = "script") -> str:
        with app.app_context():
            user = db.session.scalar(select(User).where(User.username == username))
            return tokens.create_token(user, f"{name} {next(numbers)}")[1]

    return _token


class Api:
    """A test client speaking to the API as one token."""

    def __init__(self, client, token: str | None) -> None:
        self.client, self.token = client, token

    def call(self, method: str, path: str, body: Any = None, *, raw: str | None = None,
             headers: dict[str, str] | None = None, content_type: str = "application/json"):
        all_headers = dict(headers or {})
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        kwargs: dict[str, Any] = {"headers": all_headers}
        if body is not None:
            kwargs["data"] = json.dumps(body, default=str)
            kwargs["content_type"] = content_type
        elif raw is not None:
            kwargs["data"] = raw
            kwargs["content_type"] = content_type
        return self.client.open(f"/api/v1{path}", method=method.upper(), **kwargs)

    def get(self, path: str, **kw):
        return self.call("get", path, **kw)

    def post(self, path: str, body: Any = None, **kw):
        return self.call("post", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw):
        return self.call("patch", path, body, **kw)


@pytest.fixture
def api(app, people, token_for):
    def _api(username: str | None) -> Api:
        return Api(app.test_client(), token_for(username) if username else None)

    return _api


def assert_problem(response, status: int, detail: str = "") -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.get_json(force=True)
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert detail in problem["detail"] or any(
        detail in e["message"] for e in problem.get("errors") or []), problem
    return problem


NEW_LESSON = {
    "title": "Partner LNOs could not reach the coalition chat",
    "observation": "The AUS liaison officers had no account on the division chat server.",
    "recommendation": "Request partner accounts at the initial planning conference.",
    "tags": ["liaison", "mission-network"], "releasable_to": ["FVEY"],
}


# --- tokens --------------------------------------------------------------------------------
def test_calls_without_a_valid_token_get_401(api):
    anonymous = api(None)
    for path in ("/lessons", "/exercises", "/lessons/abc"):
        response = anonymous.get(path)
        assert_problem(response, 401, "Bearer")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(Api(anonymous.client, "mus_not-a-token").get("/lessons"), 401)


def test_a_session_cookie_does_not_authenticate_the_api(app, people, login_as):
    client = login_as("gb.author")
    assert client.get("/lessons").status_code == 200
    assert_problem(client.get("/api/v1/lessons"), 401)


def test_tokens_are_stored_hashed_and_a_revoked_token_stops_working(app, api, login_as):
    client = login_as("gb.author")
    response = client.post("/account/tokens", data={"name": "CALL export"})
    assert response.status_code == 201
    secret = re.search(r'data-testid="new-token">([^<]+)<', response.get_data(as_text=True))[1]
    with app.app_context():
        stored = db.session.scalar(select(ApiToken).where(ApiToken.name == "CALL export"))
        assert secret not in (stored.digest, stored.prefix) and len(stored.digest) == 64
        token_id = stored.id
    caller = Api(app.test_client(), secret)
    assert caller.get("/lessons").status_code == 200
    page = client.get("/account").get_data(as_text=True)
    assert "CALL export" in page and secret not in page  # shown once only
    assert client.post(f"/account/tokens/{token_id}/revoke").status_code == 302
    assert_problem(caller.get("/lessons"), 401)
    assert "No active tokens." in client.get("/account").get_data(as_text=True)


def test_a_token_needs_a_name(app, people, login_as):
    response = login_as("gb.author").post("/account/tokens", data={"name": " "})
    assert response.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_another_users_token_cannot_be_revoked(app, people, login_as, token_for):
    token_for("us.author")
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
    assert login_as("gb.author").post(f"/account/tokens/{token_id}/revoke").status_code == 404


def test_the_cli_prints_the_token_alone_on_its_last_line(app, people, runner):
    result = runner.invoke(args=["users", "token", "gb.author", "--name", "nightly sync"])
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"mus_[A-Za-z0-9_-]{40,}", secret)
    assert Api(app.test_client(), secret).get("/lessons").status_code == 200
    result = runner.invoke(args=["users", "token", "nobody", "--name", "x"])
    assert result.exit_code == 2 and "no active user" in result.output


# --- lessons ----------------------------------------------------------------------------------
def test_create_read_search_and_edit_a_lesson(api):
    gb = api("gb.author")
    response = gb.post("/lessons", NEW_LESSON)
    assert response.status_code == 201
    lesson = response.get_json()
    assert lesson["status"] == "draft" and lesson["version"] == 1
    assert lesson["releasable_to"] == ["AUS", "CAN", "GBR", "NZL", "USA"]
    assert lesson["marking"] == "UNCLASSIFIED // REL TO AUS, CAN, GBR, NZL, USA"
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/api/v1/lessons/{lesson['id']}"
    got = gb.get(f"/lessons/{lesson['id']}")
    assert got.get_json() == lesson and got.headers["ETag"] == '"1"'
    response = gb.patch(f"/lessons/{lesson['id']}", {"discussion": "Two weeks' vetting."},
                        headers={"If-Match": '"1"'})
    assert response.status_code == 200
    assert response.get_json()["discussion"] == "Two weeks' vetting."
    assert response.headers["ETag"] == '"2"'
    response = gb.post(f"/lessons/{lesson['id']}/transitions", {"to": "submitted"})
    assert response.get_json()["status"] == "submitted"
    found = gb.get("/lessons?q=coalition+chat").get_json()
    assert found["total"] == 1 and found["items"][0]["id"] == lesson["id"]
    assert {"kind", "status", "tag", "nation"} <= set(found["facets"])


def test_submit_true_submits_and_checks_the_submit_rules(api):
    gb = api("gb.author")
    response = gb.post("/lessons", {**NEW_LESSON, "submit": True})
    assert response.get_json()["status"] == "submitted"
    problem = assert_problem(gb.post("/lessons", {"title": "T", "observation": "O",
                                                  "submit": True}), 422)
    assert [e["field"] for e in problem["errors"]] == ["recommendation"]


def test_analyst_moves_a_lesson_with_what_the_table_requires(api):
    lesson = api("gb.author").post("/lessons", {**NEW_LESSON, "submit": True}).get_json()
    analyst = api("gb.an")
    path = f"/lessons/{lesson['id']}/transitions"
    assert_problem(analyst.post(path, {"to": "rejected"}), 422, "Reason is required.")
    assert_problem(analyst.post(path, {"to": "learned", "note": "x"}), 409)
    assert_problem(api("gb.author").post(path, {"to": "validated"}), 403)
    assert analyst.post(path, {"to": "validated"}).get_json()["status"] == "validated"
    learned = analyst.post(path, {"to": "learned", "evidence": "Worked in two CPXs."})
    assert learned.get_json()["status"] == "learned"
    assert_problem(analyst.post(path, {"to": "archived", "reason": "old"},
                                headers={"If-Match": '"1"'}), 412)


@pytest.mark.parametrize(("raw", "content_type", "status"), [
    ("{not json", "application/json", 400),
    ('{"title": "x"}', "text/plain", 400),
    ("[1, 2]", "application/json", 422),
])
def test_unreadable_bodies_are_refused(api, raw, content_type, status):
    assert_problem(api("gb.author").post("/lessons", raw=raw, content_type=content_type),
                   status)


def test_a_body_breaking_rules_lists_every_bad_field(api):
    problem = assert_problem(api("gb.author").post("/lessons", {
        "title": "", "observation": "o", "kind": "rumour", "domains": ["cooking"],
        "colour": "red", "observed_on": "yesterday"}), 422)
    fields = {e["field"] for e in problem["errors"]}
    assert {"title", "kind", "domains.0", "colour", "observed_on"} <= fields


def test_text_no_database_can_store_is_refused(api):
    assert_problem(api("gb.author").post("/lessons", {**NEW_LESSON, "title": "a\x00b"}),
                   422, "NUL")
    problem = assert_problem(api("gb.author").post("/lessons", {
        **NEW_LESSON, "tags": ["liaison", "half \ud800 a pair"]}), 422, "surrogate")
    assert [e["field"] for e in problem["errors"]] == ["tags.1"]


def test_unknown_nations_are_refused_by_the_rules(api):
    problem = assert_problem(api("gb.author").post("/lessons", {
        **NEW_LESSON, "releasable_to": ["XXX"]}), 422)
    assert problem["errors"][0] == {"field": "releasable_to",
                                    "message": "Unknown nation or group: XXX."}


def test_an_oversized_body_gets_413(api):
    huge = {**NEW_LESSON, "observation": "x" * (3 * 1024 * 1024)}
    assert_problem(api("gb.author").post("/lessons", huge), 413)


def test_patch_needs_if_match_and_a_stale_one_is_refused(app, api):
    gb = api("gb.author")
    lesson = gb.post("/lessons", NEW_LESSON).get_json()
    path = f"/lessons/{lesson['id']}"
    assert_problem(gb.patch(path, {"title": "New"}), 428, "If-Match")
    assert gb.patch(path, {"title": "New"}, headers={"If-Match": '"1"'}).status_code == 200
    assert_problem(gb.patch(path, {"title": "Newer"}, headers={"If-Match": '"1"'}), 412,
                   "version 2")
    assert_problem(gb.patch(path, {"title": "Newer"}, headers={"If-Match": "soon"}), 412)
    with app.app_context():
        stored = db.session.scalar(select(Lesson).where(Lesson.public_id == lesson["id"]))
        assert (stored.title, stored.version) == ("New", 2)


def test_someone_who_may_see_but_not_edit_gets_403(api):
    lesson = api("gb.author").post("/lessons", {**NEW_LESSON, "submit": True}).get_json()
    assert_problem(api("us.author").patch(f"/lessons/{lesson['id']}", {"title": "Mine"},
                                          headers={"If-Match": '"2"'}), 403)


def test_a_gbr_token_cannot_read_search_count_or_attach_a_usa_only_lesson(app, api,
                                                                         make_lesson):
    hidden = make_lesson("us.author", "validated", analyst="us.an",
                         title="Crypto keys for the US cell only", tags=["crypto"])
    gb = api("gb.author")
    assert_problem(gb.get(f"/lessons/{hidden.public_id}"), 404)
    assert_problem(gb.patch(f"/lessons/{hidden.public_id}", {"title": "x"},
                            headers={"If-Match": '"1"'}), 404)
    assert_problem(gb.post(f"/lessons/{hidden.public_id}/transitions",
                           {"to": "archived", "note": "x"}), 404)
    found = gb.get("/lessons?q=crypto").get_json()
    assert found["total"] == 0 and found["items"] == []
    assert gb.get("/lessons?q=*&tag=crypto").get_json()["total"] == 0
    everything = gb.get("/lessons?q=*").get_json()
    assert all(v["value"] != "crypto" for v in everything["facets"].get("tag", []))
    planner = api("gb.planner")
    exercise = planner.post("/exercises", {"name": "Exercise X", "starts_on": SOON,
                                           "ends_on": SOON, "nations": ["GBR", "USA"]})
    exercise_id = exercise.get_json()["id"]
    assert_problem(planner.post(f"/exercises/{exercise_id}/lessons", {
        "lesson_id": hidden.public_id, "purpose": "inject"}), 404)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ExerciseLesson)) == 0
    # The USA author's token sees it, counted.
    assert api("us.author").get("/lessons?q=crypto").get_json()["total"] == 1


def test_list_parameters_are_checked(api):
    gb = api("gb.author")
    assert_problem(gb.get("/lessons?per_page=1000"), 422, "1 to 100")
    assert_problem(gb.get("/lessons?page=zero"), 422)
    assert_problem(gb.get("/lessons?sort=random"), 422)
    assert gb.get("/lessons?per_page=5&page=3&kind=lesson,workaround").status_code == 200


# --- exercises --------------------------------------------------------------------------------
EXERCISE = {"name": "Exercise SOUTHERN JACKAL", "type": "cpx", "lead_nation": "GBR",
            "nations": ["GBR", "USA", "AUS"], "starts_on": SOON.isoformat(),
            "ends_on": (SOON + timedelta(days=5)).isoformat(),
            "objectives": ["Exchange liaison officers", "Combined fires"],
            "tags": ["liaison"], "milestones": {"initial_planning_conference":
                                                date.today().isoformat(),
                                                "site_survey": None},
            "planners": ["au.planner"]}


def test_exercise_create_read_list_and_edit(api):
    planner = api("gb.planner")
    response = planner.post("/exercises", EXERCISE)
    assert response.status_code == 201, response.get_json()
    exercise = response.get_json()
    assert exercise["objectives"][0]["text"] == "Exchange liaison officers"
    assert set(exercise["milestones"]) >= {"concept_development", "site_survey",
                                           "after_action_review"}
    assert sorted(exercise["planners"]) == ["au.planner", "gb.planner"]
    assert exercise["status"] == "planned" and response.headers["ETag"] == '"1"'
    assert exercise["marking"] == "UNCLASSIFIED // REL TO AUS, GBR, USA"
    path = f"/exercises/{exercise['id']}"
    assert api("au.planner").get(path).get_json()["name"] == EXERCISE["name"]
    assert [e["id"] for e in api("us.author").get("/exercises").get_json()["items"]] == [
        exercise["id"]]
    first = exercise["objectives"][0]["id"]
    response = planner.patch(path, {"objectives": [
        {"id": first, "text": "Exchange LNOs before day one"}, "Combined fires"]},
        headers={"If-Match": '"1"'})
    assert response.status_code == 200
    assert response.get_json()["objectives"][0] == {"id": first,
                                                    "text": "Exchange LNOs before day one"}
    assert_problem(planner.patch(path, {"name": "Y"}), 428)
    assert_problem(planner.patch(path, {"name": "Y"}, headers={"If-Match": '"1"'}), 412)
    assert_problem(api("gb.author").patch(path, {"name": "Y"}, headers={"If-Match": '"2"'}),
                   403)


def test_exercise_errors(api, make_user):
    make_user("fr.planner", "FRA", ("planner",))
    planner = api("gb.planner")
    assert_problem(api("gb.author").post("/exercises", EXERCISE), 403)
    problem = assert_problem(planner.post("/exercises", {**EXERCISE, "ends_on": "2000-01-01",
                                                         "type": "parade"}), 422)
    assert {"type"} <= {e["field"] for e in problem["errors"]}
    problem = assert_problem(planner.post("/exercises", {
        **EXERCISE, "ends_on": (SOON - timedelta(days=1)).isoformat()}), 422)
    assert problem["errors"][0]["field"] == "ends_on"
    exercise = planner.post("/exercises", EXERCISE).get_json()
    assert_problem(api("fr.planner").get(f"/exercises/{exercise['id']}"), 404)
    assert_problem(planner.get("/exercises?when=someday"), 422)


def test_recommendations_attach_track_and_packet_through_the_api(api, make_lesson):
    wide = make_lesson("gb.author", "validated", analyst="gb.an", tags=["liaison"],
                       releasable_to=["USA", "AUS"])
    narrow = make_lesson("gb.author", "validated", analyst="gb.an", tags=["liaison"],
                         releasable_to=["USA"], title="Narrow one")
    planner = api("gb.planner")
    exercise = planner.post("/exercises", EXERCISE).get_json()
    base = f"/exercises/{exercise['id']}"
    recommended = planner.get(f"{base}/recommendations").get_json()["items"]
    by_id = {item["lesson"]["id"]: item for item in recommended}
    assert by_id[wide.public_id]["releasable_to_all"] is True
    assert by_id[narrow.public_id]["releasable_to_all"] is False
    assert any(r.startswith("shares tags: liaison") for r in by_id[wide.public_id]["reasons"])
    objective = exercise["objectives"][0]
    for lesson, objective_ref in ((wide, objective["id"]), (narrow, objective["text"])):
        response = planner.post(f"{base}/lessons", {
            "lesson_id": lesson.public_id, "purpose": "read_ahead",
            "objective": objective_ref, "milestone": "initial_planning_conference"})
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["objective"] == objective
    assert_problem(planner.post(f"{base}/lessons", {"lesson_id": wide.public_id,
                                                    "purpose": "read_ahead"}), 422,
                   "already attached")
    link_path = f"{base}/lessons/{wide.public_id}"
    response = planner.get(link_path)
    assert response.status_code == 200 and response.headers["ETag"] == '"1"'
    assert response.get_json()["status"] == "proposed"
    assert_problem(planner.patch(link_path, {"status": "incorporated"},
                                 headers={"If-Match": '"1"'}), 409)
    assert_problem(planner.patch(link_path, {"status": "accepted"}), 428)
    response = planner.patch(link_path, {"status": "accepted", "note": "Agreed at IPC"},
                             headers={"If-Match": '"1"'})
    assert response.status_code == 200, response.get_json()
    link = response.get_json()
    assert link["status"] == "accepted" and link["note"] == "Agreed at IPC"
    assert [(s["to_status"], s["by"]) for s in link["steps"]] == [
        ("proposed", "gb.planner"), ("accepted", "gb.planner")]
    assert_problem(planner.patch(link_path, {"status": "accepted"},
                                 headers={"If-Match": '"1"'}), 412)
    planner.patch(f"{base}/lessons/{narrow.public_id}", {"status": "accepted"},
                  headers={"If-Match": '"1"'})
    # The packet for all three participants holds the wide lesson; the narrow one is
    # withheld for AUS. Through an AUS planner's token the narrow one does not exist.
    packet = planner.get(f"{base}/packet?milestone=initial_planning_conference").get_json()
    assert [item["id"] for item in packet["lessons"]] == [wide.public_id]
    assert packet["withheld"] == {"count": 1, "nations": {"AUS": 1}}
    assert packet["audience"] == ["AUS", "GBR", "USA"]
    narrowed = planner.get(f"{base}/packet?milestone=initial_planning_conference"
                           "&audience=GBR,USA").get_json()
    assert sorted(item["id"] for item in narrowed["lessons"]) == sorted(
        [wide.public_id, narrow.public_id])
    au = api("au.planner")
    packet = au.get(f"{base}/packet?milestone=initial_planning_conference").get_json()
    assert packet["withheld"] == {"count": 0, "nations": {}}
    listed = au.get(f"{base}/lessons").get_json()["items"]
    assert [item["lesson_id"] for item in listed] == [wide.public_id]
    assert_problem(au.get(f"{base}/lessons/{narrow.public_id}"), 404)
    assert_problem(planner.get(f"{base}/packet?audience=FRA"), 422, "Not participating")
    assert_problem(planner.get(f"{base}/packet?milestone=nope"), 404)


def test_an_outcome_through_the_api_needs_evidence_and_makes_the_lesson_learned(
        app, api, make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an", releasable_to=["USA"])
    planner = api("gb.planner")
    started = (date.today() - timedelta(days=1)).isoformat()  # outcomes from the start
    exercise = planner.post("/exercises", {**EXERCISE, "starts_on": started}).get_json()
    path = f"/exercises/{exercise['id']}/lessons/{lesson.public_id}"
    planner.post(f"/exercises/{exercise['id']}/lessons",
                 {"lesson_id": lesson.public_id, "purpose": "inject"})
    for version, to in ((1, "accepted"), (2, "incorporated")):
        planner.patch(path, {"status": to}, headers={"If-Match": f'"{version}"'})
    assert_problem(planner.patch(path, {"status": "effective"}, headers={"If-Match": '"3"'}),
                   422, "Evidence")
    response = planner.patch(path, {"status": "effective", "evidence": "It worked."},
                             headers={"If-Match": '"3"'})
    assert response.get_json()["confirmation"] == "confirmed"
    assert api("gb.an").get(f"/lessons/{lesson.public_id}").get_json()["status"] == "learned"


# --- the document ---------------------------------------------------------------------------
def test_the_openapi_document_describes_every_api_route(app, api):
    document = api(None).get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    described = {(method.upper(), "/api/v1" + re.sub(r"\{(\w+)\}", r"<\1>", path))
                 for path, methods in document["paths"].items() for method in methods}
    routes = {(method, rule.rule) for rule in app.url_map.iter_rules()
              if rule.endpoint.startswith("api.")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == described
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if path != "/openapi.json":
                assert "401" in operation["responses"], (method, path)
    assert document["components"]["schemas"]["LessonCreate"]["properties"]["title"][
        "maxLength"] == 300


def test_the_api_docs_page_renders_the_document(app, client):
    html = client.get("/api/docs").get_data(as_text=True)
    assert "PATCH /exercises/{public_id}/lessons/{lesson_id}" in html
    assert 'id="schema-LessonCreate"' in html and "If-Match" in html


def test_a_query_parameter_the_operation_does_not_take_is_refused(api):
    problem = assert_problem(api("gb.author").get("/lessons?stauts=validated"), 422)
    assert problem["errors"] == [{"field": "stauts",
                                  "message": "Not a parameter of this operation."}]


def test_nul_characters_anywhere_in_a_request_get_400_not_a_server_error(api, login_as):
    gb = api("gb.author")
    assert_problem(gb.get("/lessons/ab%00cd"), 400, "NUL")
    assert_problem(gb.get("/lessons?q=a%00b"), 400, "NUL")
    page = login_as("gb.an")
    assert page.get("/lessons/ab%00cd").status_code == 400
    assert page.post("/lessons/new", data={"title": "a\x00b"}).status_code == 400


def test_a_link_patch_whose_step_is_refused_changes_nothing_else(app, api, make_lesson):
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    planner = api("gb.planner")
    exercise = planner.post("/exercises", EXERCISE).get_json()
    planner.post(f"/exercises/{exercise['id']}/lessons",
                 {"lesson_id": lesson.public_id, "purpose": "inject", "note": "Before"})
    path = f"/exercises/{exercise['id']}/lessons/{lesson.public_id}"
    assert_problem(planner.patch(path, {"note": "After", "status": "effective",
                                        "evidence": "x"}, headers={"If-Match": '"1"'}), 409)
    link = planner.get(path)
    assert (link.get_json()["note"], link.headers["ETag"]) == ("Before", '"1"')
