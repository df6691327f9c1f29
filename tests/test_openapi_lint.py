"""The OpenAPI document declares its limits, rate limiting and audience, as the OWASP API
Security Top 10 ruleset asks, and describes what the server really does.

CI runs the real linter (Spectral with the OWASP ruleset, pinned in .ci/spectral/) in
.ci/run; the test below runs it too when it is installed here. The other tests check
the same properties without Node, and check them against real answers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from lessons import create_app
from lessons.api.openapi import OPERATIONS
from lessons.extensions import db
from tests.test_headers import secret  # noqa: F401  (a fixture: a user with a token)

ROOT = Path(__file__).resolve().parent.parent
SPECTRAL = ROOT / ".ci/spectral/node_modules/.bin/spectral"
# The two lists the document says have no cap (.spectral.yaml turns the rule off there).
UNCAPPED = {"components.schemas.PacketOut.properties.lessons",
            "paths./exercises/{public_id}/lessons.get.responses.200.content.application/json"
            ".schema.properties.items"}
RATE_LIMIT_HEADERS = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                      "Retry-After"}


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def schemas_in(node, where: str = ""):
    """Every schema object in ``node``, with a readable place."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            yield where, node
        for key, value in node.items():
            yield from schemas_in(value, f"{where}.{key}" if where else key)
    elif isinstance(node, list):
        for value in node:
            yield from schemas_in(value, where)


def test_every_string_array_and_integer_declares_its_limits(document):
    unbounded = []
    for where, schema in schemas_in(document):
        kind = schema["type"]
        if kind == "string" and not {"maxLength", "enum", "const"} & set(schema):
            unbounded.append(where)
        elif kind == "array" and "maxItems" not in schema and where not in UNCAPPED:
            unbounded.append(where)
        elif kind == "integer" and not {"minimum", "maximum", "format"} <= set(schema):
            unbounded.append(where)
    assert unbounded == []


def test_limits_come_from_the_rules(document):
    from lessons.rules import NATIONS_MAX, TAGS_MAX, TEXT_MAX, TITLE_MAX

    lesson = document["components"]["schemas"]["LessonOut"]["properties"]
    assert lesson["title"]["maxLength"] == TITLE_MAX
    assert lesson["observation"]["maxLength"] == TEXT_MAX
    assert lesson["tags"]["maxItems"] == TAGS_MAX
    created = document["components"]["schemas"]["LessonCreate"]["properties"]
    assert created["nations"]["anyOf"][0]["maxItems"] == NATIONS_MAX


def test_every_operation_declares_rate_limits_a_429_and_the_server_its_audience(document):
    assert document["servers"][0]["x-internal"] is True
    assert "no Access-Control-* (CORS) headers" in document["info"]["description"]
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert len(operations) == len(OPERATIONS)
    for operation in operations:
        refused = operation["responses"]["429"]
        assert "application/problem+json" in refused["content"]
        assert "Retry-After" in refused["headers"]
        for status, response in operation["responses"].items():
            if status[0] in "24":
                assert set(response["headers"]) >= RATE_LIMIT_HEADERS, (
                    operation["operationId"], status)


def test_the_declared_rate_limit_headers_are_the_ones_the_server_sends(app, document,
                                                                        secret):  # noqa: F811
    limited = create_app("testing", SQLALCHEMY_DATABASE_URI=app.config[
        "SQLALCHEMY_DATABASE_URI"], API_RATE_LIMIT="2 per minute")
    client = limited.test_client()
    auth = {"Authorization": f"Bearer {secret}"}
    try:
        answers = [client.get("/api/v1/lessons", headers=auth) for _ in range(3)]
    finally:
        with limited.app_context():
            db.engine.dispose()
    assert [a.status_code for a in answers] == [200, 200, 429]
    for answer in answers:
        assert RATE_LIMIT_HEADERS <= set(answer.headers.keys())
        for name in RATE_LIMIT_HEADERS:
            assert int(answer.headers[name]) >= 0
    refused = answers[-1]
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["status"] == 429


def test_a_query_value_longer_than_declared_is_refused(client, secret):  # noqa: F811
    response = client.get("/api/v1/lessons?tag=" + "t" * 3000,
                          headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 422
    assert response.get_json()["errors"] == [{"field": "tag",
                                              "message": "At most 2,020 characters."}]


@pytest.mark.skipif(not SPECTRAL.exists() or shutil.which("node") is None,
                    reason="Spectral is not installed here (`npm ci` in .ci/spectral); "
                           ".ci/run installs it and runs this lint itself")
def test_spectral_with_the_owasp_ruleset_finds_no_error(tmp_path):
    result = subprocess.run([ROOT / ".ci/spectral/lint"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # The same linter fails a document that loses one declared limit.
    document = json.loads((ROOT / ".ci/spectral/openapi.json").read_text())
    del document["components"]["schemas"]["LessonOut"]["properties"]["title"]["maxLength"]
    broken = tmp_path / "openapi.json"
    broken.write_text(json.dumps(document))
    result = subprocess.run(
        [SPECTRAL, "lint", "--ruleset", ROOT / ".spectral.yaml", "--fail-severity=error",
         broken], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"NODE_PATH": str(ROOT / ".ci/spectral/node_modules"),
             "PATH": str(Path(shutil.which("node")).parent)})
    assert result.returncode != 0
    assert "LessonOut.properties.title" in result.stdout
