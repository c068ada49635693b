"""Route by route, from the committed OpenAPI document: who may call what when tokens (and webhook secrets) are set.

API.md, Auth: every /api route and every OTLP request needs a bearer token, `read` for GET and `write` for the rest;
a missing or unknown token is 401, a read token on a write route 403, and nothing is stored; webhook routes also
take their platform's own proof when its secret is configured; /healthz, /readyz and /metrics stay open.

The routes come from docs/openapi.json, so a new route is covered as soon as it is documented; a route that fits no
class below fails `test_every_documented_route_is_classified` until someone says how it is guarded.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from correlator.api.server import Server
from tests.conftest import query, start_server
from tests.factories import T0, any_value, logs_request, span, summary_request, traces_request
from tests.test_webhooks import SECRETS, _signed_source_payload, fixture, proof

DOCUMENT = json.loads((Path(__file__).resolve().parent.parent / "docs" / "openapi.json").read_text())
ROUTES = sorted((method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item)
READ, WRITE = "route-reader", "route-writer"
OPEN = {"/healthz", "/readyz", "/metrics"}
WEBHOOKS = "/api/v1/webhooks/"
# Webhook platforms that sign their deliveries (the secret each one's proof is checked with), and those that send a
# bearer token through their own HTTP config. Every documented webhook must be in exactly one of the two.
PROOF_PLATFORMS = {"github", "gitlab", "flux", "pagerduty"}
TOKEN_PLATFORMS = {"argocd", "alertmanager", "grafana"}
OTLP_TABLES = {
    "/v1/traces": "otel.otel_traces",
    "/v1/logs": "otel.otel_logs",
    "/v1/metrics": "otel.otel_metrics_summary",
}


def classify(path: str) -> str | None:
    """How a documented path is guarded: open, otlp, webhook or api; None for a path nobody has classified."""
    if path in OPEN:
        return "open"
    if path.startswith("/v1/") and path in OTLP_TABLES:
        return "otlp"
    if path.startswith(WEBHOOKS) and path.removeprefix(WEBHOOKS) in PROOF_PLATFORMS | TOKEN_PLATFORMS:
        return "webhook"
    if path.startswith("/api/") and not path.startswith(WEBHOOKS):
        return "api"
    return None


# A request as sent: the path with its parameters filled, the body, the headers besides the token.
Request = tuple[str, bytes | None, dict[str, str]]


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


@dataclass
class Seeded:
    """Records that exist, so a route with path parameters is asked about something real."""

    service: str
    deploy_id: str
    incident_id: str
    trace_id: str


@pytest.fixture(scope="module")
def secured(data_dir: Path) -> Iterator[Server]:
    running = start_server(
        data_dir,
        api_tokens=f"{READ}:read,{WRITE}:write",
        webhook_github_secret=SECRETS["github"],
        webhook_gitlab_token=SECRETS["gitlab"],
        webhook_flux_secret=SECRETS["flux"],
        webhook_pagerduty_secret=SECRETS["pagerduty"],
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def signed_only(data_dir: Path) -> Iterator[Server]:
    """Webhook secrets without API tokens: the platforms' proofs are then the only guard of their routes."""
    running = start_server(
        data_dir,
        webhook_github_secret=SECRETS["github"],
        webhook_gitlab_token=SECRETS["gitlab"],
        webhook_flux_secret=SECRETS["flux"],
        webhook_pagerduty_secret=SECRETS["pagerduty"],
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def seeded(secured: Server) -> Seeded:
    service = f"auth-{uuid.uuid4().hex[:10]}"
    write = _bearer(WRITE)
    api = secured.url() + "/api/v1"
    deploy = httpx.post(api + "/deploys", json={"service": service, "version": "1.0.0"}, headers=write)
    incident = httpx.post(api + "/incidents", json={"title": "seeded", "service": service}, headers=write)
    trace_id = uuid.uuid4().bytes
    body = traces_request(service, [span(trace_id=trace_id)]).SerializeToString()
    trace = httpx.post(
        secured.url() + "/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf", **write}
    )
    assert deploy.status_code == 201, deploy.text
    assert incident.status_code == 201, incident.text
    assert trace.status_code == 200, trace.text
    return Seeded(service, deploy.json()["deploy_id"], incident.json()["incident_id"], trace_id.hex())


def _path_values(method: str, path: str, seeded: Seeded) -> str:
    """The path with its parameters filled: a seeded record where one fits, else the first allowed value."""
    operation = DOCUMENT["paths"][path][method.lower()]
    for parameter in operation.get("parameters", []):
        if parameter["in"] != "path":
            continue
        name = parameter["name"]
        value = getattr(seeded, name, None) or parameter["schema"].get("enum", ["route-auth"])[0]
        path = path.replace("{" + name + "}", str(value))
    return path


def _webhook_payload(source: str, service: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A delivery that stores a record of `service` when it is let in."""
    if source in PROOF_PLATFORMS:
        return _signed_source_payload(source, service)
    unique = uuid.uuid4().hex
    if source == "argocd":
        payload = fixture("argocd_deployed")
        payload.update(app=service, service=service, revision=unique)
        return payload, {}
    payload = fixture("alertmanager_v4" if source == "alertmanager" else "grafana_unified")
    alert = copy.deepcopy(payload["alerts"][0])
    alert["labels"] = {**alert["labels"], "service": service, "service_name": service}
    alert["fingerprint"] = unique[:16]
    payload["alerts"] = [alert]
    return payload, {}


def _request(method: str, path: str, seeded: Seeded) -> Request:
    """A request that would change something if it were let in: the path filled, a valid body, its headers."""
    filled = _path_values(method, path, seeded)
    if method == "GET":
        return filled, None, {}
    if path in OTLP_TABLES:
        service = seeded.service
        message: Any = {
            "/v1/traces": lambda: traces_request(service, [span(trace_id=uuid.uuid4().bytes)]),
            "/v1/logs": lambda: logs_request(service, [LogRecord(time_unix_nano=T0, body=any_value("route auth"))]),
            "/v1/metrics": lambda: summary_request(service, "route_auth_summary"),
        }[path]()
        return filled, message.SerializeToString(), {"Content-Type": "application/x-protobuf"}
    if path.startswith(WEBHOOKS):
        payload, headers = _webhook_payload(path.removeprefix(WEBHOOKS), seeded.service)
        return filled, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers}
    bodies: dict[str, dict[str, Any]] = {
        "/api/v1/deploys": {"service": seeded.service, "version": f"v-{uuid.uuid4().hex[:6]}"},
        "/api/v1/incidents": {"title": "route auth", "service": seeded.service},
        "/api/v1/incidents/{incident_id}/notes": {"text": "route auth"},
        "/api/v1/incidents/{incident_id}/cause": {"deploy_id": seeded.deploy_id},
    }
    # A write route nobody listed here gets an empty object: its auth is still checked before its body.
    body = json.dumps(bodies.get(path, {})).encode()
    return filled, body, {"Content-Type": "application/json"}


def _state_of(server: Server, seeded: Seeded) -> tuple[Any, ...]:
    """Everything a refused write could have changed about the seeded service, read straight from the store.

    Latest versions rather than row counts for the replacing tables: a background merge may fold rows meanwhile.
    """
    assert server.state is not None
    store = server.state.store
    service, incident = seeded.service, seeded.incident_id
    sql = [
        f"SELECT uniqExact(deploy_id), max(updated_at) FROM {store.table('deployments')} WHERE service = {{s:String}}",
        f"SELECT uniqExact(incident_id), max(updated_at) FROM {store.table('incidents')}"
        " WHERE service = {s:String} OR incident_id = {i:String}",
        f"SELECT uniqExact(incident_id, event_key), max(recorded_at) FROM {store.table('incident_events')}"
        f" WHERE incident_id = {{i:String}} OR incident_id IN (SELECT incident_id FROM {store.table('incidents')}"
        " WHERE service = {s:String})",
        *(f"SELECT count() FROM {table} WHERE ServiceName = {{s:String}}" for table in OTLP_TABLES.values()),
    ]
    return tuple(tuple(query(server, text, s=service, i=incident)[0]) for text in sql)


def _send(server: Server, port: str, method: str, request: Request, token: str | None) -> httpx.Response:
    path, body, headers = request
    return httpx.request(
        method, server.url(port) + path, content=body, headers={**headers, **_bearer(token)}, timeout=60
    )


def test_every_documented_route_is_classified() -> None:
    unclassified = [f"{method} {path}" for method, path in ROUTES if classify(path) is None]
    assert not unclassified, f"say how these routes are guarded (tests/test_route_auth.py): {unclassified}"
    webhooks = {path.removeprefix(WEBHOOKS) for _, path in ROUTES if path.startswith(WEBHOOKS)}
    assert webhooks == PROOF_PLATFORMS | TOKEN_PLATFORMS, "a webhook is documented but not classified, or gone"
    assert not PROOF_PLATFORMS & TOKEN_PLATFORMS
    assert {path for _, path in ROUTES} >= OPEN | set(OTLP_TABLES), "a route this test guards left the document"


GUARDED = [(method, path) for method, path in ROUTES if classify(path) in ("api", "otlp", "webhook")]


@pytest.mark.parametrize(("method", "path"), GUARDED, ids=[f"{m} {p}" for m, p in GUARDED])
def test_a_guarded_route_needs_the_right_token(secured: Server, seeded: Seeded, method: str, path: str) -> None:
    ports = ["http", "otlp_http"] if classify(path) == "otlp" else ["http"]
    write_route = method not in ("GET", "HEAD")
    for port in ports:
        before = _state_of(secured, seeded)
        request = _request(method, path, seeded)
        missing = _send(secured, port, method, request, None)
        assert missing.status_code == 401, (port, missing.text)
        unknown = _send(secured, port, method, request, "not-a-token")
        assert unknown.status_code == 401, (port, unknown.text)
        read = _send(secured, port, method, request, READ)
        if write_route:
            assert read.status_code == 403, (port, read.text)
            assert _state_of(secured, seeded) == before, "a refused write changed the store"
        else:
            assert read.status_code not in (401, 403), (port, read.text)
        written = _send(secured, port, method, _request(method, path, seeded), WRITE)
        assert written.status_code not in (401, 403), (port, written.text)
        assert written.status_code < 500, (port, written.text)


OPEN_ROUTES = [(method, path) for method, path in ROUTES if classify(path) == "open"]


@pytest.mark.parametrize(("method", "path"), OPEN_ROUTES, ids=[f"{m} {p}" for m, p in OPEN_ROUTES])
def test_probes_and_metrics_stay_open(secured: Server, method: str, path: str) -> None:
    for token in (None, "not-a-token", READ):
        response = httpx.request(method, secured.url() + path, headers=_bearer(token), timeout=60)
        assert response.status_code == 200, (token, response.text)


PROOF_ROUTES = sorted(p.removeprefix(WEBHOOKS) for _, p in ROUTES if p.removeprefix(WEBHOOKS) in PROOF_PLATFORMS)


@pytest.mark.parametrize("tokens", ["tokens-on", "tokens-off"])
@pytest.mark.parametrize("source", PROOF_ROUTES)
def test_a_webhook_with_a_secret_refuses_a_bad_proof(
    secured: Server, signed_only: Server, seeded: Seeded, service_name: str, source: str, tokens: str
) -> None:
    server = secured if tokens == "tokens-on" else signed_only
    seeded = dataclasses.replace(seeded, service=service_name)
    payload, headers = _signed_source_payload(source, seeded.service)
    body = json.dumps(payload).encode()
    url = f"{server.url()}{WEBHOOKS}{source}"
    before = _state_of(server, seeded)
    json_type = {"Content-Type": "application/json", **headers}
    wrong_proofs = [{}, proof(source, body, secret="not-the-secret")]
    if source != "gitlab":  # GitLab's token is a shared secret sent as is; it signs no body.
        # The proof of another body (a delivery altered on the way) does not carry over.
        wrong_proofs.append(proof(source, json.dumps({**payload, "altered": True}).encode()))
    for wrong in wrong_proofs:
        refused = httpx.post(url, content=body, headers={**json_type, **wrong})
        assert refused.status_code == 401, (wrong, refused.text)
        assert refused.json()["error"]["type"] == "unauthorized"
    assert _state_of(server, seeded) == before, "a refused delivery changed the store"
    # The same delivery with its own proof is let in and stored: the refusals above were about the proof alone.
    accepted = httpx.post(url, content=body, headers={**json_type, **proof(source, body)})
    assert accepted.status_code == 201, accepted.text
    assert _state_of(server, seeded) != before


WRITES = [(method, path) for method, path in GUARDED if method not in ("GET", "HEAD")]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
@pytest.mark.parametrize(("method", "path"), WRITES, ids=[f"{m} {p}" for m, p in WRITES])
def test_a_bad_body_does_not_get_past_a_missing_token(
    secured: Server, seeded: Seeded, method: str, path: str, content_type: str
) -> None:
    """Auth comes first: an unauthenticated caller learns nothing about its body (API.md, Auth: 401, 403)."""
    url = secured.url() + _path_values(method, path, seeded)
    headers = {"Content-Type": content_type}
    for token, expected in ((None, 401), (READ, 403)):
        response = httpx.request(method, url, content=b"{not json", headers={**headers, **_bearer(token)}, timeout=60)
        assert response.status_code == expected, response.text
    # With the right token the body is judged: a 4xx of its own (or ignored, as GitHub's unknown events are).
    judged = httpx.request(method, url, content=b"{not json", headers={**headers, **_bearer(WRITE)}, timeout=60)
    assert judged.status_code not in (401, 403), judged.text
    assert judged.status_code < 500, judged.text
