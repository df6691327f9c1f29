"""The access policy: the rule itself on a crafted matrix, agreement of its Python and
SQL forms over the demo data, and the same answers through every page."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from lessons import policy
from lessons.extensions import db
from lessons.models import Lesson, User

# (status, REL TO as given, viewer) -> may the viewer see it?
# Viewers: the GBR author, a GBR analyst, a USA analyst, an AUS contributor.
VIEW_CASES = [
    ("draft", ["FVEY"], {"author": True, "gb_an": False, "us_an": False, "au": False}),
    ("withdrawn", ["FVEY"], {"author": True, "gb_an": False, "us_an": False, "au": False}),
    ("submitted", [], {"author": True, "gb_an": True, "us_an": False, "au": False}),
    ("submitted", ["FVEY"], {"author": True, "gb_an": True, "us_an": True, "au": True}),
    ("validated", ["USA"], {"author": True, "gb_an": True, "us_an": True, "au": False}),
    ("rejected", ["FVEY"], {"author": True, "gb_an": True, "us_an": False, "au": False}),
    ("learned", ["AUS"], {"author": True, "gb_an": True, "us_an": False, "au": True}),
    ("archived", ["FVEY"], {"author": True, "gb_an": True, "us_an": True, "au": True}),
]


@pytest.fixture
def viewers(make_user):
    return {
        "author": make_user("gb.author", "GBR", ("contributor",)),
        "gb_an": make_user("gb.an", "GBR", ("contributor", "analyst")),
        "us_an": make_user("us.an", "USA", ("contributor", "analyst")),
        "au": make_user("au.user", "AUS", ("contributor",)),
    }


@pytest.mark.parametrize("status,rel,expected", VIEW_CASES,
                         ids=[f"{c[0]}-{'+'.join(c[1]) or 'GBR'}" for c in VIEW_CASES])
def test_visibility_rule_on_crafted_lessons(app, viewers, make_lesson, login_as,
                                            status, rel, expected):
    lesson = make_lesson("gb.author", status, analyst="gb.an", releasable_to=rel)
    with app.app_context():
        row = db.session.scalar(select(Lesson).where(Lesson.public_id == lesson.public_id))
        for key, viewer in viewers.items():
            user = db.session.get(User, viewer.id)
            sql_ids = set(db.session.scalars(select(Lesson.id).where(
                policy.visible_lessons(user))))
            assert policy.can_view(user, row) is expected[key], key
            assert (row.id in sql_ids) is expected[key], key
            assert (row.id in _index_ids(user)) is expected[key], key
    for key, viewer in viewers.items():
        status_code = login_as(viewer.username).get(f"/lessons/{lesson.public_id}").status_code
        assert status_code == (200 if expected[key] else 404), key


def test_releasable_to_always_includes_the_originator(make_user, make_lesson):
    make_user("gb.author", "GBR")
    assert make_lesson("gb.author", releasable_to=["USA"]).releasable_to == ["GBR", "USA"]


def test_anonymous_and_inactive_users_see_nothing(app, make_user, make_lesson):
    make_user("gb.author", "GBR")
    make_user("gb.an", "GBR", ("analyst",))
    gone = make_user("gb.gone", "GBR", ("analyst",), active=False)
    lesson = make_lesson("gb.author", "validated", analyst="gb.an")
    from flask_login import AnonymousUserMixin

    with app.app_context():
        row = db.session.scalar(select(Lesson).where(Lesson.public_id == lesson.public_id))
        inactive = db.session.get(User, gone.id)
        for user in (None, AnonymousUserMixin(), inactive):
            assert not policy.can_view(user, row)
            assert db.session.scalars(select(Lesson).where(
                policy.visible_lessons(user))).all() == []


def _index_ids(user: User) -> set[int]:
    """Every indexed lesson the index filter lets ``user`` see."""
    from whoosh.query import Every

    from lessons import search
    from lessons.search.query import to_whoosh

    searcher = search.store().searcher()
    found = searcher.search(Every(), limit=None, filter=to_whoosh(policy.visibility_rule(user)))
    return {int(hit["lesson_id"]) for hit in found}


def test_can_view_sql_filter_and_index_filter_agree_for_every_demo_user_and_lesson(app, demo):
    with app.app_context():
        users = db.session.scalars(select(User)).all()
        lessons = db.session.scalars(select(Lesson)).all()
        assert len(users) >= 6 and len(lessons) >= 40
        for user in users:
            sql_ids = set(db.session.scalars(select(Lesson.id).where(
                policy.visible_lessons(user))))
            python_ids = {lesson.id for lesson in lessons if policy.can_view(user, lesson)}
            assert python_ids == sql_ids, user.username
            assert python_ids == _index_ids(user), user.username
            if user.has_role("contributor"):
                # The matrix is not trivial: every contributor sees some lessons, not all.
                assert 0 < len(python_ids) < len(lessons), user.username


def _listed_ids(client) -> set[str]:
    ids: set[str] = set()
    page = 1
    while True:
        html = client.get(f"/lessons?tab=all&page={page}").text
        found = set(re.findall(r'href="/lessons/([a-z0-9]{10})"', html))
        if not found:
            return ids
        ids |= found
        page += 1


def test_pages_lists_and_edit_follow_the_policy_for_every_demo_user(app, demo, login_as):
    with app.app_context():
        users = db.session.scalars(select(User)).all()
        lessons = db.session.scalars(select(Lesson)).all()
        expected = {
            user.username: {
                lesson.public_id: (policy.can_view(user, lesson), policy.can_edit(user, lesson))
                for lesson in lessons
            }
            for user in users
        }
    for username, answers in expected.items():
        client = login_as(username)
        visible = {pid for pid, (view, _) in answers.items() if view}
        assert _listed_ids(client) == visible, username
        for public_id, (view, edit) in answers.items():
            page = client.get(f"/lessons/{public_id}").status_code
            edit_page = client.get(f"/lessons/{public_id}/edit").status_code
            assert page == (200 if view else 404), (username, public_id)
            assert edit_page == (200 if edit else 403 if view else 404), (username, public_id)


def test_unknown_lesson_and_hidden_lesson_answer_alike(make_user, make_lesson, login_as):
    make_user("gb.author", "GBR")
    make_user("au.user", "AUS")
    hidden = make_lesson("gb.author", "draft")
    client = login_as("au.user")
    unknown = client.get("/lessons/zzzzzzzzzz")
    secret = client.get(f"/lessons/{hidden.public_id}")
    assert unknown.status_code == secret.status_code == 404
    assert unknown.text == secret.text
    for path in ("edit", "transition", "actions"):
        assert client.post(f"/lessons/{hidden.public_id}/{path}",
                           data={"to": "withdrawn"}).status_code == 404
