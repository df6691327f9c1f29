"""Every route, every method it declares, every caller: anonymous and each demo user, with
ids of things the caller may act on, may only see, may not see, and ids that name
nothing, against the table below.

Why a table: a new route must be classified before the suite passes (the table and
``app.url_map`` are compared both ways), so no route reaches users without someone
having written down who may use it. The table names, per endpoint, what its path ids
are (``target``) and what each class of caller gets; the ids come from the demo data
(``demo`` fixture), picked per user with the access policy, so "may act" means what
``lessons.policy`` says and the table says what each route answers for it.

The rules the table encodes:

- Anonymous: a page redirects to ``/login``; the API answers 401 with a problem
  document. Only the public endpoints answer anyone.
- What a user may not see answers exactly like what does not exist: the same status and
  the same body once the ids are blanked (checked for every such pair, not only listed).
- What a user may see but not change: 403. Where a route reads its form, body or
  ``If-Match`` before asking who may act, the table sends just enough (``form``,
  ``json``, ``headers``) to get past that and no further than a refusal or a change to
  nothing, so the question of who is really asked.
- The admin blueprint: 403 for everyone but administrators, whatever the id.
- An authorised POST is refused as input (400/409/412/422/428) or succeeds (2xx, or a
  redirect); nothing anywhere answers 5xx.

The use cases themselves have their own tests; this one is about who reaches them.
CSRF is off here, as in every test but ``tests/test_csrf.py``, which checks that the
forms refuse a POST without their token. ``HEAD`` and ``OPTIONS`` are left to
``tests/test_http_methods.py``, which sends every method, odd ones included, to every
route.

Routes that change something on an empty POST (logging out, revoking a token, removing
a link, deleting or resetting the glossary) run after the others, or are put back after
each authorised request, so the rest of the matrix sees the demo data as built.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, Response, url_for
from flask.testing import FlaskClient
from sqlalchemy import select

from lessons import policy
from lessons.demo import DEMO_USERS
from lessons.errors import NotFound
from lessons.extensions import db
from lessons.models import (
    Exercise,
    ExerciseLesson,
    GlossaryGroup,
    Lesson,
    LessonFile,
    LessonLink,
    User,
    WatchedSearch,
)
from lessons.models.exercise import ReleaseRequest
from lessons.models.federation import Peer
from lessons.models.partner import PartnerRequest
from lessons.services import aar_drafts, attachments, imports, tokens, watches
from lessons.services import exercises as exercise_service
from lessons.services import files as lesson_files
from lessons.services import lessons as lesson_service
from tests.conftest import login

MISSING = "ZZZZZZZZZZZZ"  # a well-formed public id that names nothing
MISSING_INT = 987654
ANONYMOUS = "anonymous"
USERS = [row[0] for row in DEMO_USERS]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# --- outcome kinds ---------------------------------------------------------------------------
OK = "ok"            # 2xx, or a redirect that is not to the log-in page
INPUT = "input"      # the request reached its checks and its input was refused
DONE = "done"        # OK or INPUT: an authorised request with an empty form
FORBID = "403"
HIDDEN = "404"       # and the same body as for an id that names nothing
LOGIN = "login"      # 302 to /login
UNAUTH = "401"       # a problem document asking for a token

INPUT_STATUSES = frozenset({400, 409, 412, 415, 422, 428})


def outcome_of(response: Response) -> str:
    """The kind of ``response``; ``"<status>"`` when it is none of the kinds."""
    status = response.status_code
    if status == 302 and response.location.split("?")[0].endswith("/login"):
        return LOGIN
    if 200 <= status < 400:
        return OK
    if status in INPUT_STATUSES:
        return INPUT
    if status == 401 and response.mimetype == "application/problem+json":
        return UNAUTH
    return str(status)


def matches(expected: str, got: str) -> bool:
    return got == expected or (expected == DONE and got in (OK, INPUT))


# --- the table ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Access:
    """Who gets what from one endpoint.

    ``target`` names what the path's ids are and which ability makes a caller one who
    may act ("lesson:edit": a lesson, and ``policy.can_edit``); a target without ``:``
    is a role (``login``, ``admin``...) and the route takes no id of a thing. ``act`` is
    the outcome for a caller who may act (default: ``OK`` for GET, ``DONE`` otherwise),
    ``view`` for one who sees the thing but may not act, ``norole`` for one without the
    role the target needs, ``inner`` for a pair whose outer thing the caller may act on
    but whose inner one (the lesson in an exercise, the other end of a link) is hidden or
    missing. ``form`` (the form data posted, as a function of the ids), ``json`` and
    ``headers`` carry just enough for the request to reach the question of who may act,
    and no further than a refusal or a change to nothing.
    """

    target: str
    act: str | dict[str, str] | None = None
    view: str = FORBID
    norole: str = FORBID
    inner: str = HIDDEN
    form: Callable[[dict[str, str]], dict[str, str]] | None = None
    json: dict[str, Any] | Callable[[dict[str, str]], dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    query: Callable[[World, str], dict[str, str]] | None = None

    def expected(self, cls: str, method: str, endpoint: str) -> str:
        if cls == ANONYMOUS:
            if self.target == "public":
                return DONE if method != "GET" else OK
            return UNAUTH if endpoint.startswith("api.") else LOGIN
        if cls == "act":
            if isinstance(self.act, dict):
                return self.act[method]
            return self.act or (OK if method == "GET" else DONE)
        return {"view": self.view, "norole": self.norole, "hidden": HIDDEN,
                "missing": HIDDEN, "hidden_inner": self.inner,
                "missing_inner": self.inner}[cls]


def decline(_ids: dict[str, str]) -> dict[str, str]:
    """A decision without its reason: refused as input by whoever may decide (no change)."""
    return {"decision": "decline"}


def no_nations(ids: dict[str, str]) -> dict[str, str]:
    """A release request naming the attached lesson and no nation: refused as input."""
    return {"lesson_id": ids["lesson_id"], "nations": ""}


def reject_without_reason(_ids: dict[str, str]) -> dict[str, str]:
    """The move an analyst of the originator makes from submitted; without its reason it
    is refused as input (422), by anyone else as not theirs (403)."""
    return {"to": "rejected"}


def same_status(ids: dict[str, str]) -> dict[str, str]:
    """The action's own status: for whoever manages actions a change to nothing."""
    return {"status": ids["status"]}


ANY_VERSION = {"If-Match": "*"}  # past the version check, to the question of who


def as_migration(ids: dict[str, str]) -> dict[str, str]:
    """Administrators import as a migration only (without the box: 422 whatever the
    upload, which tells nothing either)."""
    return {"as_migration": "y"} if ids.get("as_migration") else {}


def attach_query(world: World, user: str) -> dict[str, str]:
    return {"lesson": world.any_lesson[user]}


def attach_start_query(world: World, user: str) -> dict[str, str]:
    return {"exercise": world.any_exercise[user], "lesson": world.any_lesson[user]}


TABLE: dict[str, Access] = {
    # public
    "auth.login": Access("public"),  # a logged-in user is sent home; anonymous POST: 422
    "static": Access("public"),
    "health.health": Access("public"),
    "api_docs.index": Access("public"),
    "api.openapi": Access("public"),
    # any logged-in user
    # GET asks; POST logs out, to the log-in page (the client logs in again after it)
    "auth.logout": Access("login", act={"GET": OK, "POST": LOGIN}),
    "main.index": Access("login"),
    "lessons.index": Access("login"),
    "search.index": Access("login"),
    "search.export": Access("login"),
    "search.watch": Access("login", act=INPUT),  # no name, no search: 422
    "exercises.index": Access("login"),
    "dashboard.index": Access("login"),  # figures over the lessons the caller may see
    "exercises.attach_start": Access("login", query=attach_start_query),  # redirects
    "account.index": Access("login"),
    "account.change_password": Access("login", act=INPUT),
    "account.create_token": Access("login", act=INPUT),
    "account.revoke_token": Access("token:own"),
    # Watched searches are the caller's own: another user's answers like none at all. An
    # empty rename is refused (422); an empty delete deletes the caller's spare watch.
    "account.watch_list": Access("login"),
    "account.rename_watch": Access("watch:own", act=INPUT),
    "account.delete_watch": Access("watch:own"),
    # Notifications are the caller's own: no id in the path. Marking one read names it in
    # the form (none here: 400); marking all read and the settings' empty form (422) change
    # nothing another user could see.
    "notifications.index": Access("login"),
    "notifications.read": Access("login", act=INPUT),
    "notifications.read_all": Access("login"),
    "notifications.settings": Access("login", act={"GET": OK, "POST": INPUT}),
    # Answers only another Muster instance signing its request (its own tests); a user's
    # token is no peer's signature: 401 for everyone here.
    "api.federation_feed": Access("login", act=UNAUTH),
    "api.list_lessons": Access("login"),
    "api.list_exercises": Access("login"),
    "api.create_lesson": Access("contributor", act=OK, json={
        "title": "Matrix probe", "observation": "Made by the route matrix."}),
    "api.create_exercise": Access("planner", act=OK, json={
        "name": "Exercise MATRIX PROBE", "starts_on": "2030-01-01", "ends_on": "2030-01-02"}),
    # roles
    "lessons.new": Access("contributor", act={"GET": OK, "POST": INPUT}),
    "exercises.new": Access("planner", act={"GET": OK, "POST": INPUT}),
    "lessons.import_file": Access("importer", act={"GET": OK, "POST": INPUT}),
    "lessons.confirm_import": Access("import:own", form=as_migration),
    # After-action reports in: uploading is a contributor's; the review and "Create
    # drafts" are the uploader's own (anyone else's report answers like none at all). An
    # empty POST uploads no file, or keeps no proposal: 422 either way.
    "aar.upload": Access("contributor", act={"GET": OK, "POST": INPUT}),
    "aar.review": Access("aar:own", act={"GET": OK, "POST": INPUT}),
    "admin.glossary": Access("admin"),
    "admin.audit_trail": Access("admin"),
    "admin.audit_csv": Access("admin"),
    "admin.glossary_new": Access("admin", act={"GET": OK, "POST": INPUT}),
    "admin.glossary_reset": Access("admin"),
    # An empty POST is no form data at all: Flask-WTF then keeps the group's own values.
    "admin.glossary_edit": Access("group:admin"),
    "admin.glossary_delete": Access("group:admin"),
    "admin.users_list": Access("admin"),
    "admin.user_new": Access("admin", act={"GET": OK, "POST": INPUT}),
    # Another user's account; an empty POST keeps its values (a change to nothing).
    "admin.user_edit": Access("user:admin"),
    "admin.user_password": Access("user:admin", act={"GET": OK, "POST": INPUT}),
    # Federation peers: an empty POST registers nothing (422); removing names the peer in
    # the query (GET, to confirm) or the form (POST): without one, 400.
    "admin.peers": Access("admin", act={"GET": OK, "POST": INPUT}),
    "admin.peer_remove": Access("admin", act=INPUT),
    # lessons
    "lessons.detail": Access("lesson:view"),
    "lessons.edit": Access("lesson:edit", act={"GET": OK, "POST": INPUT}),  # no version
    "lessons.transition": Access("lesson:reject", act=INPUT, form=reject_without_reason),
    "lessons.add_action": Access("lesson:actions", act=INPUT),
    "lessons.action_status": Access("action:manage", form=same_status),
    "lessons.add_link": Access("lesson:edit", act=INPUT),
    "lessons.remove_link": Access("lessonlink:edit"),
    # A lesson's files: an empty upload is refused (422) by whoever may edit the lesson.
    "files.upload": Access("lesson:edit", act=INPUT),
    "files.download": Access("lessonfile:view"),
    "files.remove": Access("lessonfile:edit"),
    "api.get_lesson": Access("lesson:view"),
    "api.update_lesson": Access("lesson:edit", json={}, headers=ANY_VERSION),
    "api.transition_lesson": Access("lesson:reject", act=INPUT, json={"to": "rejected"}),
    # exercises
    "exercises.detail": Access("exercise:view"),
    "exercises.recommended": Access("exercise:view"),
    "exercises.packet": Access("exercise:view"),
    "exercises.edit": Access("exercise:plan", act={"GET": OK, "POST": INPUT}),
    "exercises.attach": Access("exercise:plan", act={"GET": OK, "POST": INPUT},
                               query=attach_query),
    "exercises.by_tag": Access("exercise:plan", act={"GET": OK, "POST": INPUT}),
    "exercises.edit_link": Access("link:plan", act={"GET": OK, "POST": INPUT}),
    "exercises.step": Access("link:plan", act=INPUT),  # no step named: 409
    "exercises.remove_link": Access("link:plan"),
    "exercises.request_release": Access("link:plan", act=INPUT, form=no_nations),
    "api.get_exercise": Access("exercise:view"),
    "api.update_exercise": Access("exercise:plan", json={}, headers=ANY_VERSION),
    "api.exercise_recommendations": Access("exercise:view"),
    "api.exercise_lessons": Access("exercise:view"),
    "api.exercise_packet": Access("exercise:view"),
    # The lesson is attached already: refused as input once the caller may plan.
    "api.attach_lesson": Access("link:plan", act=INPUT, json=lambda ids: {
        "lesson_id": ids["lesson_id"], "purpose": "read_ahead"}),
    "api.get_exercise_lesson": Access("link:view"),
    "api.update_exercise_lesson": Access("link:plan", json={}, headers=ANY_VERSION),
    # analysts' decisions asked for by other nations
    "reviews.outcome": Access("outcome:decide", act=INPUT, form=decline),
    "reviews.release": Access("release:decide", act=INPUT, form=decline),
    "reviews.partner": Access("partner:decide", act=INPUT, form=decline),
}

# Run after every other endpoint, in this order: each changes what the others would see.
RUN_LAST = ("admin.glossary_delete", "admin.glossary_reset", "auth.logout")


# --- the ids ----------------------------------------------------------------------------------
Variant = tuple[str, dict[str, str]]  # (class, path values)


@dataclass
class World:
    """Per user and target: the (class, path values) to request with."""

    variants: dict[tuple[str, str], list[Variant]] = field(default_factory=dict)
    any_lesson: dict[str, str] = field(default_factory=dict)
    any_exercise: dict[str, str] = field(default_factory=dict)
    api_secret: dict[str, str] = field(default_factory=dict)
    # What an authorised empty POST may remove, to put back: (user, endpoint) -> restore
    restore: dict[tuple[str, str], Callable[[], None]] = field(default_factory=dict)


def _first(items, test: Callable[[Any], bool]):
    return next((item for item in items if test(item)), None)


def _classes(items, visible: Callable, able: Callable) -> dict[str, Any]:
    """The first item the user may act on, the first they only see, the first hidden."""
    return {"act": _first(items, lambda i: visible(i) and able(i)),
            "view": _first(items, lambda i: visible(i) and not able(i)),
            "hidden": _first(items, lambda i: not visible(i))}


def _variants(found: dict[str, Any], values: Callable[[Any], dict[str, str]],
              missing: dict[str, str]) -> list[Variant]:
    out = [(cls, values(item)) for cls, item in found.items() if item is not None]
    return out + [("missing", missing)]


def _lesson_variants(user: User, lessons: list[Lesson], able: Callable) -> list[Variant]:
    found = _classes(lessons, lambda lesson: policy.can_view(user, lesson),
                     lambda lesson: able(user, lesson))
    out = _variants(found, lambda lesson: {"public_id": lesson.public_id},
                    {"public_id": MISSING})
    # Hidden for the other reason too: released to the user's nation, but someone
    # else's draft (or withdrawn, or rejected elsewhere) rather than not released at all.
    other = _first(lessons, lambda lesson: not policy.can_view(user, lesson)
                   and (user.nation_code in lesson.releasable_to)
                   != (user.nation_code in found["hidden"].releasable_to)) \
        if found["hidden"] is not None else None
    if other is not None:
        out.append(("hidden", {"public_id": other.public_id}))
    return out


def _exercise_variants(user: User, exercises: list[Exercise], able: Callable) -> list[Variant]:
    found = _classes(exercises, lambda e: policy.can_view_exercise(user, e),
                     lambda e: able(user, e))
    return _variants(found, lambda e: {"public_id": e.public_id}, {"public_id": MISSING})


def _pair(exercise: Exercise, lesson_id: str) -> dict[str, str]:
    return {"public_id": exercise.public_id, "exercise_id": exercise.public_id,
            "lesson_id": lesson_id}


def _link_variants(user: User, links: list[ExerciseLesson], lessons: list[Lesson],
                   able: Callable) -> list[Variant]:
    def visible(link: ExerciseLesson) -> bool:
        return (policy.can_view_exercise(user, link.exercise)
                and policy.can_view(user, link.lesson))

    found = _classes(links, visible, lambda link: able(user, link.exercise))
    hidden = _first(links, lambda link: not policy.can_view_exercise(user, link.exercise))
    found["hidden"] = hidden
    # Missing: an exercise that is not there, holding the hidden link's lesson.
    out = _variants(found, lambda link: _pair(link.exercise, link.lesson.public_id),
                    {**_pair(links[0].exercise, (hidden or links[0]).lesson.public_id),
                     "public_id": MISSING, "exercise_id": MISSING})
    if found["act"] is not None:
        exercise = found["act"].exercise
        inner = _first(links, lambda link: link.exercise is exercise
                       and not policy.can_view(user, link.lesson)) or _first(
            lessons, lambda lesson: not policy.can_view(user, lesson))
        lesson = inner.lesson if isinstance(inner, ExerciseLesson) else inner
        if lesson is not None:
            out.append(("hidden_inner", _pair(exercise, lesson.public_id)))
        out.append(("missing_inner", _pair(exercise, MISSING)))
    return out


def _stage_import(user: User) -> str | None:
    try:
        staged = imports.stage(user, "matrix.jsonl", b'{"title": "Matrix probe"}\n',
                               migration=policy.can_admin(user))
    except Exception:  # noqa: BLE001 - a user who cannot stage simply has no upload
        db.session.rollback()
        return None
    return staged.staged.token


def _stage_report(user: User) -> str:
    return aar_drafts.stage(user, "matrix.txt", b"Observation: Matrix probe.\n").token


def build_world(app: Flask) -> World:
    """Look up (and where the demo has none, make) what each user may and may not see."""
    world = World()
    with app.app_context():
        users = {u.username: u for u in db.session.scalars(select(User))}
        au_planner = users["au.planner"]
        # An exercise only AUS takes part in: hidden from every non-AUS user.
        solo = exercise_service.create_exercise(au_planner, {
            "name": "Exercise MATRIX SOLO", "nations": ["AUS"], "lead_nation": "AUS",
            "starts_on": exercise_service.today(), "ends_on": exercise_service.today()})
        lessons = list(db.session.scalars(select(Lesson).order_by(Lesson.id)))
        attachable = _first(lessons, lambda lesson: lesson.status == "validated"
                            and policy.can_view(au_planner, lesson))
        attachments.attach_lesson(au_planner, solo.public_id, attachable.public_id,
                                  {"purpose": "read_ahead"})
        # A link per editor, for the link-removal route to find one it may remove.
        for user in users.values():
            mine = _first(lessons, lambda lesson, u=user: policy.can_edit(u, lesson))
            other = _first(lessons, lambda lesson, u=user, m=mine: policy.can_view(u, lesson)
                           and lesson is not m)
            if mine is not None and other is not None:
                lesson_service.link_lessons(user, mine.public_id, other.public_id)
            if mine is not None:  # and a file, for the file routes
                lesson_files.upload_file(user, mine.public_id, "matrix.txt", MATRIX_FILE)
        _partner_requests(lessons)
        group_id = db.session.scalars(select(GlossaryGroup.id).order_by(GlossaryGroup.id)).first()
        spare = {name: tokens.create_token(u, "matrix spare")[0].id for name, u in users.items()}
        secrets = {name: tokens.create_token(u, "matrix")[1] for name, u in users.items()}
        watched = {name: watches.save_watch(u, "matrix", "radios", {}, "relevance").public_id
                   for name, u in users.items()}
        staged = {name: _stage_import(u) for name, u in users.items()
                  if imports.may_open(u)}
        staged = {name: token for name, token in staged.items() if token}
        reports = {name: _stage_report(u) for name, u in users.items()
                   if aar_drafts.may_open(u)}
        # Everything made: load afresh what the policy will be asked about.
        users = {u.username: u for u in db.session.scalars(select(User))}
        lessons = list(db.session.scalars(select(Lesson).order_by(Lesson.id)))
        by_id = {lesson.id: lesson for lesson in lessons}
        exercises = list(db.session.scalars(select(Exercise).order_by(Exercise.id)))
        links = list(db.session.scalars(select(ExerciseLesson).order_by(ExerciseLesson.id)))
        lesson_links = [(by_id[link.lesson_id], by_id[link.linked_lesson_id])
                        for link in db.session.scalars(select(LessonLink).order_by(
                            LessonLink.lesson_id, LessonLink.linked_lesson_id))]
        lesson_file_rows = [(by_id[item.lesson_id], item) for item in db.session.scalars(
            select(LessonFile).order_by(LessonFile.id))]
        pending = [link for link in links if link.confirmation == "pending"]
        requests = list(db.session.scalars(select(ReleaseRequest).order_by(ReleaseRequest.id)))
        partner = list(db.session.scalars(select(PartnerRequest).order_by(PartnerRequest.id)))
        assert pending and requests, "the demo data should hold a pending outcome and request"

        for name, user in users.items():
            world.api_secret[name] = secrets[name]
            v = world.variants
            v[(name, "lesson:view")] = _lesson_variants(user, lessons, lambda u, x: True)
            v[(name, "lesson:edit")] = _lesson_variants(user, lessons, policy.can_edit)
            v[(name, "lesson:actions")] = _lesson_variants(user, lessons,
                                                           policy.can_manage_actions)
            v[(name, "lesson:reject")] = _lesson_variants(  # not their own lesson
                user, [lesson for lesson in lessons if lesson.status == "submitted"],
                lambda u, lesson: "rejected" in {
                    t.to for t in policy.allowed_transitions(u, lesson)})
            with_actions = [lesson for lesson in lessons if lesson.actions]
            first_action = {lesson.public_id: lesson.actions[0].status
                            for lesson in with_actions}
            v[(name, "action:manage")] = [
                (cls, {**values, "position": "1",
                       "status": first_action.get(values["public_id"], "open")})
                for cls, values in _lesson_variants(user, with_actions,
                                                    policy.can_manage_actions)]
            v[(name, "exercise:view")] = _exercise_variants(user, exercises, lambda u, x: True)
            v[(name, "exercise:plan")] = _exercise_variants(user, exercises,
                                                            policy.can_edit_exercise)
            v[(name, "link:view")] = _link_variants(user, links, lessons, lambda u, x: True)
            v[(name, "link:plan")] = _link_variants(user, links, lessons,
                                                    policy.can_edit_exercise)
            v[(name, "lessonlink:edit")] = _lessonlink_variants(user, lesson_links, lessons)
            v[(name, "lessonfile:view")] = _lessonfile_variants(user, lesson_file_rows,
                                                                lambda u, x: True)
            v[(name, "lessonfile:edit")] = _lessonfile_variants(user, lesson_file_rows,
                                                                policy.can_edit)
            v[(name, "outcome:decide")] = _decision_variants(
                user, pending, lambda link: _pair(link.exercise, link.lesson.public_id),
                lambda link, u=user: policy.can_view_exercise(u, link.exercise),
                {"exercise_id": pending[0].exercise.public_id, "lesson_id": MISSING})
            v[(name, "release:decide")] = _decision_variants(
                user, requests, lambda r: {"request_id": r.public_id}, lambda r: True,
                {"request_id": MISSING})
            v[(name, "partner:decide")] = _decision_variants(
                user, partner, lambda r: {"public_id": r.public_id}, lambda r: True,
                {"public_id": MISSING})
            other = next(n for n in users if n != name)
            v[(name, "token:own")] = [("act", {"token_id": str(spare[name])}),
                                      ("hidden", {"token_id": str(spare[other])}),
                                      ("missing", {"token_id": str(MISSING_INT)})]
            v[(name, "watch:own")] = [("act", {"public_id": watched[name]}),
                                      ("hidden", {"public_id": watched[other]}),
                                      ("missing", {"public_id": MISSING})]
            admin = policy.can_admin(user)
            v[(name, "group:admin")] = [("act" if admin else "norole",
                                         {"group_id": str(group_id)}),
                                        ("missing" if admin else "norole",
                                         {"group_id": str(MISSING_INT)})]
            v[(name, "user:admin")] = [("act" if admin else "norole",
                                        {"user_id": str(users["au.contributor"].id)}),
                                       ("missing" if admin else "norole",
                                        {"user_id": str(MISSING_INT)})]
            importer = imports.may_open(user)
            someone_else = next(t for n, t in staged.items() if n != name)
            v[(name, "import:own")] = [(cls, {**values, "as_migration": "y"} if admin else values)
                                       for cls, values in (
                ([("act", {"token": staged[name]})] if name in staged else [])
                + [("hidden", {"token": someone_else}), ("missing", {"token": MISSING})]
                if importer else [("norole", {"token": someone_else}),
                                  ("norole", {"token": MISSING})])]
            elsewhere = next(t for n, t in reports.items() if n != name)
            v[(name, "aar:own")] = (
                [("act", {"token": reports[name]}), ("hidden", {"token": elsewhere}),
                 ("missing", {"token": MISSING})] if name in reports
                else [("norole", {"token": elsewhere}), ("norole", {"token": MISSING})])
            roles = {"public": True, "login": True, "admin": admin, "importer": importer,
                     "contributor": policy.can_create_lesson(user),
                     "planner": policy.can_create_exercise(user)}
            for role, has in roles.items():
                v[(name, role)] = [("act" if has else "norole",
                                    {"filename": "css/muster.css"})]
            world.any_lesson[name] = _first(
                lessons, lambda lesson, u=user: policy.can_view(u, lesson)).public_id
            seen = _first(exercises, lambda e, u=user: policy.can_view_exercise(u, e))
            world.any_exercise[name] = seen.public_id if seen else MISSING
            _restorers(world, name, v)
    return world


def _lessonlink_variants(user: User, links: list[tuple[Lesson, Lesson]],
                         lessons: list[Lesson]) -> list[Variant]:
    def visible(link: tuple[Lesson, Lesson]) -> bool:
        return policy.can_view(user, link[0]) and policy.can_view(user, link[1])

    found = _classes(links, visible, lambda link: policy.can_edit(user, link[0]))
    found["hidden"] = _first(links, lambda link: not policy.can_view(user, link[0]))
    out = _variants(found, lambda link: {"public_id": link[0].public_id,
                                         "other_id": link[1].public_id},
                    {"public_id": MISSING, "other_id": links[0][1].public_id})
    if found["act"] is not None:
        mine = found["act"][0].public_id
        hidden = _first(lessons, lambda lesson: not policy.can_view(user, lesson))
        if hidden is not None:
            out.append(("hidden_inner", {"public_id": mine, "other_id": hidden.public_id}))
        out.append(("missing_inner", {"public_id": mine, "other_id": MISSING}))
    return out


MATRIX_FILE = b"Matrix probe."


def _lessonfile_variants(user: User, items: list[tuple[Lesson, LessonFile]],
                         able: Callable) -> list[Variant]:
    """A lesson's file: the lesson decides (seen, editable, hidden); inside a lesson the
    user may act on, another lesson's file and a made-up one answer alike."""
    found = _classes(items, lambda item: policy.can_view(user, item[0]),
                     lambda item: able(user, item[0]))
    out = _variants(found, lambda item: {"public_id": item[0].public_id,
                                         "file_id": item[1].public_id},
                    {"public_id": MISSING, "file_id": items[0][1].public_id})
    if found["act"] is not None:
        mine = found["act"][0].public_id
        hidden = _first(items, lambda item: not policy.can_view(user, item[0]))
        if hidden is not None:
            out.append(("hidden_inner", {"public_id": mine, "file_id": hidden[1].public_id}))
        out.append(("missing_inner", {"public_id": mine, "file_id": MISSING}))
    return out


def _partner_requests(lessons: list[Lesson]) -> None:
    """Release requests from a partner instance, one on a shared lesson of each
    originator nation (the demo has no peer)."""
    peer = Peer(name="AUS-army", nations_csv="AUS", public_key="A" * 43 + "=",
                last_out_sequence=0, acked_sequence=0, last_in_sequence=0, last_error="")
    db.session.add(peer)
    db.session.flush()
    firsts: dict[str, Lesson] = {}
    for lesson in lessons:
        if lesson.status == "validated" and policy.peer_may_receive(["AUS"], lesson):
            firsts.setdefault(lesson.originator_nation, lesson)
    for number, lesson in enumerate(firsts.values()):
        db.session.add(PartnerRequest(
            peer_id=peer.id, kind="release", remote_id=f"matrix{number}",
            lesson_id=lesson.id, exercise_name="Exercise MATRIX PARTNER",
            planner_nation="AUS", nations=["NZL"], text="", status="pending"))
    db.session.commit()


def _decision_variants(user: User, items: list, values: Callable, takes_part: Callable,
                       missing: dict[str, str]) -> list[Variant]:
    """Decisions (outcomes, release requests): the originator's analysts decide; others
    who see the lesson (and, for an outcome, take part in the exercise) are refused; the
    rest are told there is no such thing."""
    found = _classes(items, lambda i: policy.can_view(user, i.lesson) and takes_part(i),
                     lambda i: policy.can_decide_for_originator(user, i.lesson))
    return _variants(found, values, missing)


def _restorers(world: World, name: str, v: dict[tuple[str, str], list[Variant]]) -> None:
    """Put back what an authorised empty POST removes, for the routes that remove things."""
    watched = dict(v[(name, "watch:own")])["act"]["public_id"]

    def rewatch(watched=watched):
        user = db.session.scalar(select(User).where(User.username == name))
        if db.session.scalar(select(WatchedSearch.id)
                             .where(WatchedSearch.public_id == watched)) is None:
            again = watches.save_watch(user, "matrix", "radios", {}, "relevance")
            again.public_id = watched  # the id the rest of the matrix names
            db.session.commit()
    world.restore[(name, "account.delete_watch")] = rewatch
    link = dict(v[(name, "lessonlink:edit")]).get("act")
    if link:
        def relink(link=link):
            user = db.session.scalar(select(User).where(User.username == name))
            lesson_service.link_lessons(user, link["public_id"], link["other_id"])
        world.restore[(name, "lessons.remove_link")] = relink
    filed = dict(v[(name, "lessonfile:edit")]).get("act")
    if filed:
        def refile(filed=filed):
            if db.session.scalar(select(LessonFile.id).where(
                    LessonFile.public_id == filed["file_id"])) is None:
                user = db.session.scalar(select(User).where(User.username == name))
                again = lesson_files.upload_file(user, filed["public_id"], "matrix.txt",
                                                 MATRIX_FILE)
                again.public_id = filed["file_id"]  # the id the rest of the matrix names
                db.session.commit()
        world.restore[(name, "files.remove")] = refile
    attached = dict(v[(name, "link:plan")]).get("act")
    if attached:
        def reattach(attached=attached):
            user = db.session.scalar(select(User).where(User.username == name))
            try:
                attachments.get_link(user, attached["public_id"], attached["lesson_id"])
            except NotFound:  # removed: attach it again
                db.session.rollback()
                attachments.attach_lesson(user, attached["public_id"], attached["lesson_id"],
                                          {"purpose": "read_ahead"})
        world.restore[(name, "exercises.remove_link")] = reattach


# --- running it ----------------------------------------------------------------------------------
@dataclass
class Cell:
    user: str
    endpoint: str
    method: str
    cls: str
    url: str
    expected: str
    got: str
    status: int
    body: str
    seconds: float = 0.0


def _rules(app: Flask) -> list:
    order = {endpoint: i for i, endpoint in enumerate(RUN_LAST)}
    return sorted(app.url_map.iter_rules(),
                  key=lambda r: (order.get(r.endpoint, -1), r.endpoint, r.rule))


def _normalised(response: Response, url: str, ids: dict[str, str]) -> str:
    """The body with the address and the ids it may echo blanked (short numbers stay:
    blanking "1" would blank every 1 on the page)."""
    text = response.get_data(as_text=True).replace(url, "<url>")
    for value in sorted(ids.values(), key=len, reverse=True):
        if len(value) >= 6:
            text = text.replace(value, "<id>")
    return re.sub(r"\s+", " ", text)


def run_matrix(app: Flask, world: World) -> Iterator[Cell]:
    clients: dict[str, FlaskClient] = {ANONYMOUS: app.test_client()}
    for name in USERS:
        clients[name] = app.test_client()
        login(clients[name], name)
    for rule in _rules(app):
        access = TABLE.get(rule.endpoint)
        if access is None:
            continue
        methods = [m for m in METHODS if m in rule.methods]
        for method in methods:
            for name in [ANONYMOUS, *USERS]:
                who = "us.analyst" if name == ANONYMOUS else name
                variants = world.variants[(who, access.target)]
                if name == ANONYMOUS:  # a thing that exists, and one that does not
                    chosen = variants[:1] + variants[1:][-1:]
                    variants = [(ANONYMOUS, values) for _cls, values in chosen]
                order = {"act": 2, "view": 1}  # acting last: it may change things
                for cls, values in sorted(variants, key=lambda v: order.get(v[0], 0)):
                    yield _request(app, world, clients, name, rule, method, access, cls,
                                   values)


def _request(app: Flask, world: World, clients: dict[str, FlaskClient], name: str, rule,
             method: str, access: Access, cls: str, values: dict[str, str]) -> Cell:
    missing = sorted(set(rule.arguments) - set(values))
    assert not missing, f"{rule.endpoint}: target {access.target} gives no {missing}"
    who = "us.analyst" if name == ANONYMOUS else name
    query = access.query(world, who) if access.query else {}
    with app.test_request_context():
        url = url_for(rule.endpoint, **{k: values[k] for k in rule.arguments}, **query)
    headers = dict(access.headers)
    if rule.endpoint.startswith("api.") and name != ANONYMOUS:
        headers["Authorization"] = f"Bearer {world.api_secret[name]}"
    data = access.form(values) if access.form else None
    client = clients[name]
    started = time.perf_counter()
    payload = access.json(values) if callable(access.json) else access.json
    try:
        response = client.open(url, method=method, headers=headers, data=data, json=payload)
    except Exception as exc:  # noqa: BLE001 - testing apps raise what would be a 500
        response = Response(f"{type(exc).__name__}: {exc}", 500)
    seconds = time.perf_counter() - started
    if rule.endpoint == "auth.logout" and method == "POST" and name != ANONYMOUS:
        login(client, name)
    if response.status_code in (301, 302, 303):
        # The message a redirect leaves would show on the next page this client gets.
        with client.session_transaction() as session:
            session.pop("_flashes", None)
    restore = world.restore.get((name, rule.endpoint))
    if restore is not None and cls == "act":
        with app.app_context():
            restore()
    expected = access.expected(cls, method, rule.endpoint)
    body = _normalised(response, url, values)
    response.close()  # a static file's handle, among others
    return Cell(name, rule.endpoint, method, cls, url, expected, outcome_of(response),
                response.status_code, body, seconds)


def first_difference(a: str, b: str, around: int = 60) -> str:
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
              min(len(a), len(b)))
    return f"{a[max(0, at - around):at + around]!r} vs {b[max(0, at - around):at + around]!r}"


def test_every_route_is_in_the_table(app):
    """A new route must be classified here; a removed one must leave the table."""
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert sorted(endpoints - set(TABLE)) == [], "routes missing from the table"
    assert sorted(set(TABLE) - endpoints) == [], "table entries with no route"
    assert set(RUN_LAST) <= set(TABLE)


def test_every_route_answers_every_caller_as_the_table_says(app, demo):
    started = time.perf_counter()
    world = build_world(app)
    built = time.perf_counter()
    cells = list(run_matrix(app, world))
    done = time.perf_counter()
    print(f"\nroute matrix: {len(cells)} requests in {done - built:.1f} s "
          f"(ids found in {built - started:.1f} s)")

    wrong = [c for c in cells if not matches(c.expected, c.got)]
    # Hidden and missing answer alike: same status and same body once the ids are blanked.
    by_key: dict[tuple, dict[str, list[Cell]]] = {}
    for c in cells:
        by_key.setdefault((c.user, c.endpoint, c.method), {}).setdefault(c.cls, []).append(c)
    leaks = []
    for key, row in by_key.items():
        # Without the role, an id that names something and one that does not: alike too.
        for hidden, missing in (("hidden", "missing"), ("hidden_inner", "missing_inner"),
                                ("norole", "norole")):
            absent = row.get(missing, [])[:1]
            for h, m in ((h, m) for h in row.get(hidden, []) for m in absent):
                if (h.status, h.body) != (m.status, m.body):
                    leaks.append(f"{key}: {hidden} {h.status} at {h.url} vs {missing} "
                                 f"{m.status} at {m.url}: {first_difference(h.body, m.body)}")
    # Every endpoint was requested, and every id target gave each user a thing to act on
    # somewhere (else the matrix would only ever test refusals).
    requested = {c.endpoint for c in cells}
    assert requested == set(TABLE), sorted(set(TABLE) - requested)
    acted = {c.endpoint for c in cells if c.cls == "act"}
    assert acted == set(TABLE), sorted(set(TABLE) - acted)

    counts: dict[str, int] = {}
    for c in cells:
        counts[c.cls] = counts.get(c.cls, 0) + 1
    print("by class:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    spent: dict[str, float] = {}
    for c in cells:
        spent[c.endpoint] = spent.get(c.endpoint, 0.0) + c.seconds
    print("slowest:", ", ".join(f"{e} {t:.1f} s" for e, t in sorted(
        spent.items(), key=lambda item: -item[1])[:6]))

    report = [f"{c.method} {c.url} as {c.user} ({c.endpoint}, {c.cls}): expected "
              f"{c.expected}, got {c.status}" + (f" ({c.body[:200]})" if c.status >= 500 else "")
              for c in wrong]
    assert not report + leaks, "\n" + "\n".join(report + leaks)


@pytest.mark.parametrize("kind,status,location,expected", [
    (LOGIN, 302, "/login?next=%2F", True),
    (OK, 302, "/lessons", True),
    (INPUT, 422, None, True),
    (HIDDEN, 404, None, True),
    (FORBID, 404, None, False),
    (DONE, 500, None, False),
])
def test_outcome_kinds_read_statuses_as_documented(kind, status, location, expected):
    """The matrix is only as good as its reading of a response."""
    headers = {"Location": location} if location else {}
    response = Response(b"", status, headers)
    assert matches(kind, outcome_of(response)) is expected
