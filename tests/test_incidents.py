"""Incidents over the HTTP API: the manual lifecycle, its refusals, lists by status and window, the timeline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from correlator.api.server import Server

NOW = datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url(), timeout=30) as client:
        yield client


def declare(api: httpx.Client, service: str, opened_at: datetime, **extra: Any) -> str:
    body = {"title": "checkout errors", "service": service, "opened_at": iso(opened_at), **extra}
    response = api.post("/api/v1/incidents", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["incident_id"])


def test_an_incident_goes_through_its_states_with_a_timeline(api: httpx.Client, service_name: str) -> None:
    opened = NOW - timedelta(hours=1)
    incident_id = declare(api, service_name, opened, severity="Critical", labels={"team": "payments"})
    ack = api.post(f"/api/v1/incidents/{incident_id}/acknowledge", json={"at": iso(opened + timedelta(minutes=3))})
    assert ack.status_code == 200, ack.text
    assert ack.json()["status"] == "acknowledged"
    note = api.post(
        f"/api/v1/incidents/{incident_id}/notes",
        json={"text": "rolling back", "at": iso(opened + timedelta(minutes=5))},
    )
    assert note.status_code == 201
    mitigated = api.post(f"/api/v1/incidents/{incident_id}/mitigate", json={"at": iso(opened + timedelta(minutes=9))})
    assert mitigated.json()["status"] == "mitigated"
    resolved = api.post(
        f"/api/v1/incidents/{incident_id}/resolve", json={"at": iso(opened + timedelta(minutes=20)), "note": "fixed"}
    )
    assert resolved.status_code == 200

    incident = api.get(f"/api/v1/incidents/{incident_id}").json()
    assert incident["status"] == "resolved"
    assert incident["severity"] == "critical"
    assert incident["source"] == "manual"
    assert incident["labels"] == {"team": "payments"}
    assert incident["opened_at"] == iso(opened)
    assert incident["acknowledged_at"] == iso(opened + timedelta(minutes=3))
    assert incident["mitigated_at"] == iso(opened + timedelta(minutes=9))
    assert incident["resolved_at"] == iso(opened + timedelta(minutes=20))
    assert incident["time_to_resolve_s"] == 20 * 60
    assert incident["affected_services"] == [service_name]
    assert [(e["kind"], e["text"]) for e in incident["timeline"]] == [
        ("state_change", "declared by hand"),
        ("state_change", "acknowledged by hand"),
        ("note", "rolling back"),
        ("state_change", "mitigated by hand"),
        ("state_change", "resolved by hand: fixed"),
    ]


def test_impossible_transitions_are_refused(api: httpx.Client, service_name: str) -> None:
    opened = NOW - timedelta(hours=1)
    incident_id = declare(api, service_name, opened)
    early = api.post(f"/api/v1/incidents/{incident_id}/acknowledge", json={"at": iso(opened - timedelta(minutes=1))})
    assert early.status_code == 400
    assert "before the incident opened" in early.json()["error"]["message"]
    assert api.post(f"/api/v1/incidents/{incident_id}/resolve").status_code == 200
    again = api.post(f"/api/v1/incidents/{incident_id}/acknowledge")
    assert again.status_code == 409
    assert again.json()["error"] == {
        "type": "conflict",
        "message": f"cannot acknowledge incident {incident_id}: it is resolved",
    }
    assert api.post(f"/api/v1/incidents/{incident_id}/resolve").status_code == 409
    assert api.post(f"/api/v1/incidents/{incident_id}/explode").status_code == 400
    assert api.post("/api/v1/incidents/inc-nope/resolve").status_code == 404
    assert api.get("/api/v1/incidents/inc-nope").status_code == 404


def test_the_cause_is_named_by_hand(api: httpx.Client, service_name: str) -> None:
    incident_id = declare(api, service_name, NOW - timedelta(minutes=30))
    deploy_id = api.post("/api/v1/deploys", json={"service": service_name, "version": "9.9"}).json()["deploy_id"]
    assert api.post(f"/api/v1/incidents/{incident_id}/cause", json={"deploy_id": "nope"}).status_code == 404
    named = api.post(f"/api/v1/incidents/{incident_id}/cause", json={"deploy_id": deploy_id})
    assert named.status_code == 200
    assert named.json()["cause_deploy_id"] == deploy_id
    timeline = api.get(f"/api/v1/incidents/{incident_id}").json()["timeline"]
    assert [e["kind"] for e in timeline] == ["state_change", "deploy", "cause_set"]


def test_deploys_of_the_service_while_open_join_the_timeline(api: httpx.Client, service_name: str) -> None:
    opened = NOW - timedelta(hours=2)
    incident_id = declare(api, service_name, opened)
    for version, minutes in (("1.0", -30), ("1.1", 10), ("1.2", 40)):
        api.post(
            "/api/v1/deploys",
            json={"service": service_name, "version": version, "started_at": iso(opened + timedelta(minutes=minutes))},
        )
    api.post(f"/api/v1/incidents/{incident_id}/resolve", json={"at": iso(opened + timedelta(minutes=30))})
    timeline = api.get(f"/api/v1/incidents/{incident_id}").json()["timeline"]
    deploys = [e["text"] for e in timeline if e["kind"] == "deploy"]
    assert len(deploys) == 1
    assert deploys[0].startswith(f"{service_name} 1.1 (from 1.0) deployed to production")


def test_lists_by_status_service_and_window(api: httpx.Client, service_name: str) -> None:
    old_open = declare(api, service_name, NOW - timedelta(days=40), severity="warning")
    recent_resolved = declare(api, service_name, NOW - timedelta(days=2), severity="critical")
    api.post(f"/api/v1/incidents/{recent_resolved}/resolve")
    recent_open = declare(api, service_name, NOW - timedelta(hours=1), severity="critical")

    def ids(**params: Any) -> list[str]:
        response = api.get("/api/v1/incidents", params={"service": service_name, **params})
        assert response.status_code == 200, response.text
        return [i["incident_id"] for i in response.json()["incidents"]]

    assert ids() == [recent_open, recent_resolved]  # 30 days, newest first
    # Only unresolved states asked for: the window does not apply.
    assert ids(status="active") == [recent_open, old_open]
    assert ids(status="open,resolved") == [recent_open, recent_resolved]
    assert ids(severity="CRITICAL") == [recent_open, recent_resolved]
    assert ids(since="1d") == [recent_open]
    bad = api.get("/api/v1/incidents", params={"status": "burning"})
    assert bad.status_code == 400
    assert "burning" in bad.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"service": "s"}, "title", id="no-title"),
        pytest.param({"title": "t"}, "service", id="no-service"),
        pytest.param({"title": "t", "service": "s", "opened_at": "2099-01-01T00:00:00Z"}, "future", id="future"),
        pytest.param({"title": "t", "service": "s", "opened_at": "0001-01-01T00:00:00Z", "x": 1}, "x", id="unknown"),
    ],
)
def test_bad_declarations_are_refused(api: httpx.Client, body: dict[str, Any], message: str) -> None:
    response = api.post("/api/v1/incidents", json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
