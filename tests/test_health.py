"""Service health over the HTTP API and the CLI: RED, status thresholds, error logs, versions, deploys, incidents,
neighbours, top errors and endpoints, on telemetry with chosen times."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from correlator.api.server import Server
from tests.factories import logs_request
from tests.processes import correlator_command
from tests.scenarios import ServiceSim, ns

W0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
WINDOW = {"since": W0.isoformat(), "until": (W0 + timedelta(hours=1)).isoformat()}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def scenario(server: Server) -> dict[str, str]:
    """front calls orders; orders fails 10%; search is slow against its own day; idle has only a deploy."""
    names = {k: f"{k}-health" for k in ("front", "orders", "search", "idle")}
    front = ServiceSim(server, names["front"], service_version="9.1")
    orders = ServiceSim(server, names["orders"], service_version="2.4.0", deployment_id="orders-d7")
    search = ServiceSim(server, names["search"])
    for i in range(100):
        at = W0 + timedelta(seconds=30 * i)
        error = None
        if i % 10 == 0:
            error = ("TypeError", f"bad item {i}") if i % 20 == 0 else ("ValueError", f"quantity '{i}' too large")
        front.call(at, orders, 20, name="GET /orders" if i % 4 else "POST /orders", error=error)
    for i in range(60):  # the day before: 10 ms; the window: 50 ms
        search.request(W0 - timedelta(hours=5) + timedelta(seconds=60 * i), 10)
        search.request(W0 + timedelta(seconds=60 * i), 50)
    for sim in (front, orders, search):
        sim.close()
    records = [
        LogRecord(time_unix_nano=ns(W0 + timedelta(minutes=m)), severity_number=17, severity_text="ERROR", body=None)
        for m in (1, 2, 3)
    ] + [LogRecord(time_unix_nano=ns(W0 + timedelta(minutes=4)), severity_number=9, severity_text="INFO")]
    response = httpx.post(
        server.url() + "/v1/logs",
        content=logs_request(names["orders"], records).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    api = server.url() + "/api/v1"
    httpx.post(
        api + "/deploys",
        json={
            "deploy_id": "orders-d7",
            "service": names["orders"],
            "version": "2.4.0",
            "started_at": iso(W0 - timedelta(days=1)),
        },
    )
    httpx.post(
        api + "/deploys", json={"service": names["idle"], "version": "1.0", "started_at": iso(W0 - timedelta(days=2))}
    )
    incident = httpx.post(
        api + "/incidents",
        json={"title": "orders 5xx", "service": names["orders"], "opened_at": iso(W0 + timedelta(minutes=30))},
    )
    names["incident"] = incident.json()["incident_id"]
    return names


def health(server: Server, service: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url()}/api/v1/services/{service}/health", params=WINDOW, timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_failing_service_in_full(server: Server, scenario: dict[str, str]) -> None:
    orders = health(server, scenario["orders"])
    assert orders["status"] == "failing"
    assert orders["requests"] == 100
    assert orders["rate_rps"] == pytest.approx(100 / 3600)
    assert orders["error_ratio"] == pytest.approx(0.10)
    assert orders["latency_ms"]["p50"] == pytest.approx(18.0)
    assert orders["log_errors"] == 3
    assert orders["current_version"] == "2.4.0"
    assert orders["current_deploy_id"] == "orders-d7"
    assert [d["deploy_id"] for d in orders["recent_deploys"]] == ["orders-d7"]
    assert [i["incident_id"] for i in orders["open_incidents"]] == [scenario["incident"]]
    assert orders["upstream"] == [scenario["front"]]
    assert orders["downstream"] == []
    assert orders["top_errors"] == [
        {"type": "TypeError", "message": "bad item <n>", "count": 5},
        {"type": "ValueError", "message": "quantity <str> too large", "count": 5},
    ]
    assert orders["top_endpoints"] == [
        {"name": "GET /orders", "requests": 75, "error_ratio": pytest.approx(5 / 75), "p95_ms": pytest.approx(18.0)},
        {"name": "POST /orders", "requests": 25, "error_ratio": pytest.approx(5 / 25), "p95_ms": pytest.approx(18.0)},
    ]


def test_statuses_follow_the_thresholds(server: Server, scenario: dict[str, str]) -> None:
    search = health(server, scenario["search"])
    assert search["status"] == "degraded"  # p95 50 ms against 10 ms over its previous day
    assert search["error_ratio"] == 0
    front = health(server, scenario["front"])
    assert front["status"] == "no_data"  # it only calls: no requests of its own
    assert front["downstream"] == [scenario["orders"]]
    idle = health(server, scenario["idle"])
    assert idle["status"] == "no_data"
    assert idle["current_version"] == "1.0"


def test_the_service_list_and_unknown_services(server: Server, scenario: dict[str, str]) -> None:
    listed = httpx.get(f"{server.url()}/api/v1/services", params=WINDOW, timeout=60).json()["services"]
    statuses = {s["service"]: s["status"] for s in listed}
    assert statuses[scenario["orders"]] == "failing"
    assert statuses[scenario["search"]] == "degraded"
    assert statuses[scenario["front"]] == "no_data"
    missing = httpx.get(f"{server.url()}/api/v1/services/never-seen/health", timeout=30)
    assert missing.status_code == 404
    assert "never-seen" in missing.json()["error"]["message"]
    reversed_window = {"since": WINDOW["until"], "until": WINDOW["since"]}
    assert httpx.get(f"{server.url()}/api/v1/services", params=reversed_window).status_code == 400


def test_the_health_command(server: Server, scenario: dict[str, str]) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    args = ["--url", server.url(), "--since", WINDOW["since"], "--until", WINDOW["until"]]
    detail = subprocess.run(
        correlator_command("health", scenario["orders"], *args), capture_output=True, text=True, env=env, timeout=60
    )
    assert detail.returncode == 0, detail.stderr
    assert "failing" in detail.stdout
    assert "TypeError" in detail.stdout
    assert "orders 5xx" in detail.stdout
    listing = subprocess.run(correlator_command("health", *args), capture_output=True, text=True, env=env, timeout=60)
    assert listing.returncode == 0
    assert scenario["search"] in listing.stdout
