"""Schemathesis against the OpenAPI document, in process: generated requests, valid and
invalid, to every operation must never get a server error, and every response must
match the document (status codes, content types, headers, bodies).

Bounded: EXAMPLES cases per operation and generation mode, derandomised so a failure
reproduces, no deadline (shared CI machines are noisy). Driven through hypothesis
directly rather than schemathesis' pytest plugin, which does not load under pytest 9.

Every default check runs except ``positive_data_acceptance``: it expects any body the
schema allows to succeed, but some rules need the database (is this nation code one we
know, is this an objective of that exercise, may this status move now), and refusing
those with a 422 or 409 listed in the document is the API keeping its promise.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from sqlalchemy import select

from lessons.extensions import db
from lessons.models import User
from lessons.services import attachments, exercises, tokens

EXAMPLES = 20


@pytest.fixture
def fuzz_target(app, make_user, make_lesson):
    """Some real data behind the API (so list and search responses have items) and a
    token for a user holding every role that changes things."""
    make_user("gb.planner", "GBR", ("contributor", "planner", "analyst"))
    make_user("us.author", "USA", ("contributor",))
    make_user("gb.an", "GBR", ("analyst",))  # nobody validates their own lesson
    lesson = make_lesson("gb.planner", "validated", analyst="gb.an",
                         releasable_to=["USA"])
    make_lesson("us.author", "submitted")
    with app.app_context():
        planner = db.session.scalar(select(User).where(User.username == "gb.planner"))
        soon = date.today() + timedelta(days=20)
        exercise = exercises.create_exercise(planner, {
            "name": "Exercise FUZZ", "starts_on": soon, "ends_on": soon,
            "nations": ["GBR", "USA"], "objectives": ["Fuzz the API"]})
        attachments.attach_lesson(planner, exercise.public_id, lesson.public_id,
                                  {"purpose": "inject"})
        secret = tokens.create_token(planner, "fuzz")[1]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    return schema, {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_its_documented_promises(fuzz_target, mode):
    schema, headers = fuzz_target
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.call_and_validate(headers=headers,
                                   excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Exception as exc:
            exc.add_note(f"operation: {operation.label} ({mode.value})")
            raise
