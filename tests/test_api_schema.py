"""The API under a property-based tester: schemathesis, driven by the committed docs/openapi.json.

Every operation of the document gets generated requests, valid and invalid, against a running in-process server:
once with tokens off, once with tokens on and the write token sent. No response may be a 5xx, each must carry a
status code and content type its operation declares, with a body that matches the declared schema, and an invalid
request must be refused with a 4xx. What runs, and what it found: docs/api-testing.md.

`API_SCHEMA_EXAMPLES=300 pytest tests/test_api_schema.py` runs the same with more examples per operation.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from correlator.api.server import Server
from tests.conftest import start_server
from tests.factories import span, traces_request

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
SCHEMA = schemathesis.openapi.from_path(DOCUMENT)
OPERATIONS = sorted(
    (method.upper(), path) for path, item in json.loads(DOCUMENT.read_text())["paths"].items() for method in item
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
READ, WRITE = "schema-reader", "schema-writer"
# Examples per operation (valid and invalid drawn together). Tokens on exercises the same code behind the check,
# so it gets fewer. A few reads cost far more than the rest (a health or topology read scans every service's
# telemetry of the window): they get fewer examples, so the whole module stays near two minutes on two cores.
SCALE = int(os.environ.get("API_SCHEMA_EXAMPLES", "20"))
EXAMPLES = {"tokens-off": SCALE, "tokens-on": max(3, SCALE // 3)}
COSTLY = {("GET", "/api/v1/services"), ("GET", "/api/v1/topology"), ("GET", "/api/v1/services/{service}/health")}


@pytest.fixture(scope="module")
def secured(data_dir: Path) -> Iterator[Server]:
    running = start_server(data_dir, api_tokens=f"{READ}:read,{WRITE}:write")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def known(server: Server) -> dict[str, str]:
    """Ids of records that exist, so generated requests also reach real records and not only 404s."""
    service = f"schema-{uuid.uuid4().hex[:8]}"
    api = server.url() + "/api/v1"
    deploy = httpx.post(api + "/deploys", json={"service": service, "version": "1.0.0"}, timeout=60)
    incident = httpx.post(api + "/incidents", json={"title": "schema", "service": service}, timeout=60)
    trace_id = uuid.uuid4().bytes
    body = traces_request(service, [span(trace_id=trace_id, start=time.time_ns() - 10**9)]).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    stored = httpx.post(server.url() + "/v1/traces", content=body, headers=headers, timeout=60)
    assert (deploy.status_code, incident.status_code, stored.status_code) == (201, 201, 200)
    return {
        "deploy_id": deploy.json()["deploy_id"],
        "incident_id": incident.json()["incident_id"],
        "trace_id": trace_id.hex(),
        "service": service,
    }


def _fuzz(base_url: str, method: str, path: str, known: dict[str, str], headers: dict[str, str], n: int) -> None:
    operation = SCHEMA[path][method]
    # Half the valid cases name records that exist, so their full bodies are checked against the schema too.
    valid = st.tuples(operation.as_strategy(GenerationMode.POSITIVE), st.booleans())
    invalid = st.tuples(operation.as_strategy(GenerationMode.NEGATIVE), st.just(False))

    @given(drawn=st.one_of(valid, invalid))
    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def run(drawn: tuple[Any, bool]) -> None:
        case, use_known = drawn
        if use_known:
            for name in case.path_parameters or {}:
                if name in known:
                    case.path_parameters[name] = known[name]
            if isinstance(case.body, dict) and "deploy_id" in case.body and path.endswith("/cause"):
                case.body["deploy_id"] = known["deploy_id"]
        case.call_and_validate(base_url=base_url, session=session, headers=headers, checks=CHECKS, timeout=60)

    # One session per operation, closed after: connections left open would hold up the server's graceful stop.
    with requests.Session() as session:
        run()


def _examples(tokens: str, method: str, path: str) -> int:
    n = EXAMPLES[tokens]
    return max(2, n // 4) if (method, path) in COSTLY else n


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_tokens_off(server: Server, known: dict[str, str], method: str, path: str) -> None:
    _fuzz(server.url(), method, path, known, {}, _examples("tokens-off", method, path))


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_tokens_on(secured: Server, known: dict[str, str], method: str, path: str) -> None:
    headers = {"Authorization": f"Bearer {WRITE}"}
    _fuzz(secured.url(), method, path, known, headers, _examples("tokens-on", method, path))


def test_the_document_declares_no_422() -> None:
    """Validation errors are 400 in the /api error shape (API.md, Conventions): FastAPI's 422 is never answered."""
    document = json.loads(DOCUMENT.read_text())
    declared = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "422" in operation["responses"]
    }
    assert not declared
    assert "HTTPValidationError" not in document["components"]["schemas"]


@pytest.mark.parametrize("event", ["", "ping", "push", "deployment"])
@pytest.mark.parametrize("body", [b"\x00", b"[1]", b"{nope"])
def test_github_refuses_a_body_that_is_no_json_object_whatever_its_event(
    server: Server, event: str, body: bytes
) -> None:
    """Found by schemathesis: an event we do not record was answered 200 `ignored` without its body being read."""
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event}
    response = httpx.post(server.url() + "/api/v1/webhooks/github", content=body, headers=headers, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] in ("bad_request", "undecodable_body")
