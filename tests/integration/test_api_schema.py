"""A schemathesis run over OncallM's own OpenAPI document finds no 5xx and no drift.

Every operation the app documents is exercised in-process (ASGI, lifespan running) with
generated valid and invalid requests against a SQLite database seeded with real alerts,
so the read routes answer with data and not only with 404s. Two properties are checked:

- no request makes the server fail (no 5xx), and every error is an RFC 9457 problem
  document carrying the request id, with no stack trace in it;
- every response matches what the OpenAPI document promises: a documented status code,
  a documented content type and a body valid against the documented schema.

The run is bounded (``MAX_EXAMPLES`` per operation) and derandomized, so it is
reproducible and finishes in well under a minute.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from oncallm.api import create_app
from oncallm.config import Settings
from tests.conftest import app_client, make_settings
from tests.support.payloads import am_alert, am_notification, resolved

MAX_EXAMPLES = 30
PROBLEM_JSON = "application/problem+json"
PROBLEM_KEYS = ("type", "title", "status", "detail", "instance", "request_id")
WEBHOOK = "/api/v1/alerts/alertmanager"


def _openapi_document() -> dict[str, Any]:
    """The document the app serves at /openapi.json; building it opens no database."""
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))
    document: dict[str, Any] = json.loads(json.dumps(app.openapi()))
    return document


# Loaded from the dict rather than with ``from_asgi`` (which would start an app lifespan at
# import) or ``schemathesis.pytest.from_fixture`` (broken on pytest 9: it reads the removed
# ``Function._nodeid``). The app under test is passed per call; the test below checks that
# it serves this very document.
SCHEMA = schemathesis.openapi.from_dict(_openapi_document())
SCHEMA.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True)


async def _seed(settings: Settings) -> None:
    """Alerts in every state the read API can show, with a finished triage."""
    crash = am_notification(
        am_alert("5eed000000000001", namespace="shop", pod="api-1", cluster="prod"),
        am_alert("5eed000000000002", namespace="shop", deployment="api", severity="critical"),
    )
    first = am_notification(am_alert("5eed000000000003", alertname="NodeDown", node="n1"))
    again = am_notification(
        am_alert(
            "5eed000000000003", alertname="NodeDown", node="n1", starts_at="2026-11-26T05:00:00Z"
        )
    )
    async with app_client(settings) as client:
        for note in (crash, first, resolved(first), again):
            response = await client.post(WEBHOOK, json=note)
            assert response.status_code == 202, response.text
        for _ in range(200):  # the embedded worker triages them within milliseconds
            page = (await client.get("/api/v1/alerts")).json()
            if {i["triage_status"] for i in page["items"]} == {"succeeded"}:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"seeded alerts were not triaged: {page}")


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """The app under test, on a seeded SQLite database; schemathesis runs its lifespan."""
    url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('schema')) / 'oncallm.db'}"
    asyncio.run(_seed(make_settings(url)))
    # No embedded worker during the run: the seeded state stays as it is.
    app = create_app(make_settings(url, server={"embedded_worker": False}))
    try:
        yield app
    finally:
        asgi.shutdown_lifespans()


def test_the_served_document_is_the_one_under_test(api_app: FastAPI) -> None:
    with asgi.get_client(cast("Any", api_app)) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == _openapi_document()


def problem_details(
    ctx: schemathesis.CheckContext, response: Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Errors are problem documents with the request id, and never show a stack trace."""
    body = response.content.decode("utf-8", "replace")
    assert "Traceback" not in body, "a stack trace reached the client"
    assert 'File "' not in body, "a stack trace reached the client"
    request_ids = response.headers.get("x-request-id", [])
    assert len(request_ids) == 1, f"expected one X-Request-ID header, got {request_ids}"
    if response.status_code < 400 or case.operation.path == "/readyz":
        return None  # /readyz answers 503 with its documented Health body
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith(PROBLEM_JSON), (
        f"{response.status_code} answered with {content_type!r}, not {PROBLEM_JSON}"
    )
    problem = response.json()
    missing = [key for key in PROBLEM_KEYS if key not in problem]
    assert not missing, f"problem document lacks {missing}: {problem}"
    assert problem["status"] == response.status_code
    assert problem["request_id"] == request_ids[0]
    static_prefix = case.operation.path.split("{", 1)[0]
    assert problem["instance"].startswith(static_prefix), problem["instance"]
    return None


@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_makes_the_server_fail(case: schemathesis.Case[Any], api_app: FastAPI) -> None:
    case.call_and_validate(app=api_app, checks=[not_a_server_error, problem_details])


@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_responses_match_the_openapi_document(
    case: schemathesis.Case[Any], api_app: FastAPI
) -> None:
    case.call_and_validate(
        app=api_app,
        checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
    )


def test_problem_responses_are_documented_as_problem_json() -> None:
    """Clients generated from the document must expect the media type errors really use."""
    document = _openapi_document()
    wrong = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, documented in operation["responses"].items():
                if not status.startswith("4"):
                    continue
                content = documented.get("content", {})
                schema = content.get(PROBLEM_JSON, {}).get("schema", {})
                if schema.get("$ref") != "#/components/schemas/Problem" or "application/json" in (
                    content
                ):
                    wrong.append(f"{method.upper()} {path} {status}: {sorted(content)}")
    assert not wrong, "\n".join(wrong)
