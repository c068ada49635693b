"""Webhook routes end to end: each platform's proof or a write token, redeliveries and reordering, bad bodies.

Payloads are the real formats in tests/fixtures/webhooks/ (sources in its README), with ids made unique per test.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from correlator.api.server import Server
from tests.conftest import start_server

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
SECRETS = {"github": "gh-secret", "gitlab": "gl-token", "flux": "flux-secret", "pagerduty": "pd-secret"}
WRITE = {"Authorization": "Bearer writer"}
# The fixtures happened in April 2026.
FIXTURE_WINDOW = {"since": "2026-04-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"}
READ = {"Authorization": "Bearer reader"}


@pytest.fixture(scope="module")
def secured(data_dir: Path) -> Iterator[Server]:
    running = start_server(
        data_dir,
        api_tokens="reader:read,writer:write",
        webhook_github_secret=SECRETS["github"],
        webhook_gitlab_token=SECRETS["gitlab"],
        webhook_flux_secret=SECRETS["flux"],
        webhook_pagerduty_secret=SECRETS["pagerduty"],
    )
    yield running
    running.stop()


@pytest.fixture
def api(secured: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=secured.url(), timeout=30, headers=READ) as client:
        yield client


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return copy.deepcopy(data)


def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def proof(source: str, body: bytes, *, secret: str | None = None) -> dict[str, str]:
    """The header a platform signs a delivery with."""
    key = secret or SECRETS[source]
    if source == "github":
        return {"X-Hub-Signature-256": "sha256=" + hmac_hex(key, body)}
    if source == "gitlab":
        return {"X-Gitlab-Token": key}
    if source == "flux":
        return {"X-Signature": "sha256=" + hmac_hex(key, body)}
    return {"X-PagerDuty-Signature": "v1=" + hmac_hex(key, body)}


def deliver(server: Server, source: str, payload: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.post(
        f"{server.url()}/api/v1/webhooks/{source}",
        content=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )


def github(event: str, deployment_id: int, service: str) -> tuple[dict[str, Any], dict[str, str]]:
    payload = fixture(f"github_{event}")
    payload["deployment"]["id"] = deployment_id
    payload["deployment"]["payload"] = {"service": service}
    return payload, {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4())}


def signed(source: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, str]:
    return {**(headers or {}), **proof(source, json.dumps(payload).encode())}


def test_github_status_before_deployment_and_redeliveries_leave_one_deploy(
    secured: Server, api: httpx.Client, service_name: str
) -> None:
    number = int(uuid.uuid4().int % 10**9)
    status, status_headers = github("deployment_status", number, service_name)
    created = deliver(secured, "github", status, signed("github", status, status_headers))
    assert created.status_code == 201, created.text
    assert created.json()["deploy_ids"] == [f"github-{number}"]
    # The same delivery again: recognised by X-GitHub-Delivery, nothing changes.
    again = deliver(secured, "github", status, signed("github", status, status_headers))
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    # The older `deployment` event arrives last: it must not undo the finished status.
    deployment, deployment_headers = github("deployment", number, service_name)
    late = deliver(secured, "github", deployment, signed("github", deployment, deployment_headers))
    assert late.status_code == 200, late.text
    [deploy] = api.get("/api/v1/deploys", params={"service": service_name, **FIXTURE_WINDOW}).json()["deploys"]
    assert deploy["deploy_id"] == f"github-{number}"
    assert deploy["status"] == "succeeded"
    assert deploy["source"] == "github"
    assert deploy["finished_at"] == "2026-04-28T10:04:41Z"


@pytest.mark.parametrize("source", ["github", "gitlab", "flux", "pagerduty"])
def test_a_bad_proof_is_refused_and_nothing_is_stored(secured: Server, source: str, service_name: str) -> None:
    payload, headers = _signed_source_payload(source, service_name)
    wrong = proof(source, json.dumps(payload).encode(), secret="not-the-secret")
    refused = deliver(secured, source, payload, {**headers, **wrong})
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["type"] == "unauthorized"
    missing = deliver(secured, source, payload, headers)
    assert missing.status_code == 401
    assert _records_of(secured, service_name) == 0
    # A read token is not enough; a write token is, without the platform's proof.
    assert deliver(secured, source, payload, {**headers, **READ}).status_code == 403
    assert _records_of(secured, service_name) == 0
    accepted = deliver(secured, source, payload, {**headers, **WRITE})
    assert accepted.status_code == 201, accepted.text
    assert _records_of(secured, service_name) == 1


@pytest.mark.parametrize("source", ["github", "gitlab", "flux", "pagerduty"])
def test_the_platforms_own_proof_is_enough(secured: Server, source: str, service_name: str) -> None:
    payload, headers = _signed_source_payload(source, service_name)
    response = deliver(secured, source, payload, signed(source, payload, headers))
    assert response.status_code == 201, response.text
    assert _records_of(secured, service_name) == 1


def _signed_source_payload(source: str, service: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A payload of a signed source whose record belongs to `service` alone."""
    number = int(uuid.uuid4().int % 10**9)
    if source == "github":
        return github("deployment_status", number, service)
    if source == "gitlab":
        payload = fixture("gitlab_deployment")
        payload["deployment_id"] = number
        payload["project"]["name"] = service
        return payload, {"X-Gitlab-Event": "Deployment Hook"}
    if source == "flux":
        payload = fixture("flux_kustomization_succeeded")
        payload["involvedObject"]["name"] = service
        return payload, {}
    payload = fixture("pagerduty_incident_triggered")
    payload["event"]["id"] = f"evt-{number}"
    payload["event"]["data"]["id"] = f"PD{number}"
    payload["event"]["data"]["service"]["summary"] = service
    return payload, {}


def _records_of(server: Server, service: str) -> int:
    params = {"service": service, **FIXTURE_WINDOW}
    headers = READ
    deploys = httpx.get(f"{server.url()}/api/v1/deploys", params=params, headers=headers).json()["deploys"]
    incidents = httpx.get(f"{server.url()}/api/v1/incidents", params=params, headers=headers).json()["incidents"]
    return len(deploys) + len(incidents)


def test_pagerduty_trigger_then_resolve_is_one_incident(secured: Server, api: httpx.Client, service_name: str) -> None:
    triggered, _ = _signed_source_payload("pagerduty", service_name)
    resolved = fixture("pagerduty_incident_resolved")
    resolved["event"]["id"] = triggered["event"]["id"] + "-resolved"
    resolved["event"]["data"]["id"] = triggered["event"]["data"]["id"]
    resolved["event"]["data"]["service"]["summary"] = service_name
    # Resolution first, then the trigger: still one incident, resolved.
    assert deliver(secured, "pagerduty", resolved, signed("pagerduty", resolved)).status_code == 201
    assert deliver(secured, "pagerduty", triggered, signed("pagerduty", triggered)).status_code == 200
    replay = deliver(secured, "pagerduty", triggered, signed("pagerduty", triggered))
    assert replay.json()["duplicate"] is True
    incidents = api.get("/api/v1/incidents", params={"service": service_name, **FIXTURE_WINDOW}).json()["incidents"]
    assert len(incidents) == 1
    assert incidents[0]["status"] == "resolved"
    assert incidents[0]["source"] == "pagerduty"
    assert incidents[0]["resolved_at"] == "2026-04-28T10:41:55.102000Z"


@pytest.mark.parametrize(
    ("source", "name"),
    [
        pytest.param("argocd", "argocd_deployed", id="argocd"),
        pytest.param("alertmanager", "alertmanager_v4", id="alertmanager"),
        pytest.param("grafana", "grafana_unified", id="grafana"),
    ],
)
def test_token_sources_need_a_write_token(secured: Server, source: str, name: str) -> None:
    payload = fixture(name)
    assert deliver(secured, source, payload, {}).status_code == 401
    assert deliver(secured, source, payload, READ).status_code == 403
    accepted = deliver(secured, source, payload, WRITE)
    assert accepted.status_code in (200, 201), accepted.text
    assert accepted.json()["deploy_ids"] or accepted.json()["incident_ids"]


def test_bad_bodies_get_a_precise_4xx(secured: Server) -> None:
    url = f"{secured.url()}/api/v1/webhooks/alertmanager"
    not_json = httpx.post(url, content=b"{nope", headers={"Content-Type": "application/json", **WRITE})
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]["message"]
    form = httpx.post(url, content=b"a=b", headers={"Content-Type": "application/x-www-form-urlencoded", **WRITE})
    assert form.status_code == 415
    huge = httpx.post(url, content=b" " * (4 * 1024 * 1024 + 1), headers={"Content-Type": "application/json", **WRITE})
    assert huge.status_code == 413
    wrong_version = {**fixture("alertmanager_v4"), "version": "3"}
    response = deliver(secured, "alertmanager", wrong_version, WRITE)
    assert response.status_code == 400
    assert "version" in response.json()["error"]["message"]
    no_version = fixture("argocd_deployed")
    del no_version["images"], no_version["revision"]
    refused = deliver(secured, "argocd", no_version, WRITE)
    assert refused.status_code == 400, refused.text
    assert httpx.get(f"{secured.url()}/healthz").status_code == 200
