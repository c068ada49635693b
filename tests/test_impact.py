"""Deploy impact inside GET /api/v1/deploys/{id}: equal windows around the deploy, tested for errors and latency,
on telemetry sent through the real SDK with chosen times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from correlator.api.server import Server
from correlator.correlate.stats import mann_whitney_greater, two_proportion_z
from tests.scenarios import ServiceSim

T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def every(start: datetime, seconds: float, count: int) -> list[datetime]:
    return [start + timedelta(seconds=seconds * i) for i in range(count)]


def deploy(server: Server, deploy_id: str, service: str, version: str, at: datetime) -> dict[str, Any]:
    body = {"deploy_id": deploy_id, "service": service, "version": version, "started_at": iso(at)}
    assert httpx.post(server.url() + "/api/v1/deploys", json=body).status_code == 201
    response = httpx.get(server.url() + f"/api/v1/deploys/{deploy_id}", timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def bad_rollout(server: Server) -> dict[str, str]:
    """checkout (called by web) runs fine at 1.0; 2.0 at T0+60m fails 15% with a new error and is 3x slower."""
    checkout, web = "checkout-impact", "web-impact"
    v1 = ServiceSim(server, checkout, service_version="1.0")
    v2 = ServiceSim(server, checkout, service_version="2.0")
    caller = ServiceSim(server, web, service_version="7")
    for i, at in enumerate(every(T0, 10, 360)):  # one call every 10 s for an hour, 1% failing
        caller.call(at, v1, 40 + i % 7, error=("TimeoutError", "db timeout after 30 ms") if i % 100 == 0 else None)
    for i, at in enumerate(every(T0 + timedelta(minutes=60), 10, 180)):  # 30 min after the deploy
        failing = i % 20 < 3
        error = ("KeyError", f"missing key 'price' for item {i}") if failing else None
        caller.call(at, v2, 3 * (40 + i % 7), error=error)
    for sim in (v1, v2, caller):
        sim.close()
    return {"service": checkout, "caller": web}


def test_a_bad_deploy_is_a_regression_with_evidence(server: Server, bad_rollout: dict[str, str]) -> None:
    service = bad_rollout["service"]
    deploy(server, "imp-1.0", service, "1.0", T0)
    found = deploy(server, "imp-2.0", service, "2.0", T0 + timedelta(minutes=60))
    impact = found["impact"]
    assert impact["verdict"] == "regression"
    before, after = impact["before"], impact["after"]
    assert (before["since"], before["until"]) == (iso(T0 + timedelta(minutes=30)), iso(T0 + timedelta(minutes=60)))
    assert (after["since"], after["until"]) == (iso(T0 + timedelta(minutes=60)), iso(T0 + timedelta(minutes=90)))
    assert before["requests"] == after["requests"] == 180
    assert before["error_ratio"] == pytest.approx(2 / 180)  # calls 200 and 300 of the first hour
    assert after["error_ratio"] == pytest.approx(27 / 180)
    assert impact["error_ratio_delta"] == pytest.approx(25 / 180)
    assert after["p95_ms"] == pytest.approx(3 * before["p95_ms"], rel=0.05)
    assert impact["new_error_types"] == [{"type": "KeyError", "message": "missing key <str> for item <n>", "count": 27}]
    z, p = two_proportion_z(2, 180, 27, 180)
    evidence = impact["evidence"]
    assert evidence[0] == (
        f"{service}'s error ratio rose from 1.1% (2/180) to 15.0% (27/180) after the deploy "
        f"(two-proportion z = {z:.1f}, p < 0.001)"
    )
    assert p < 0.001
    assert evidence[1].startswith(f"{service}'s p95 latency rose from ")
    assert "new error after the deploy: KeyError: missing key <str> for item <n> (27 times)" in evidence[2]
    assert (
        evidence[3]
        == f"{bad_rollout['caller']}'s calls to {service} failed 15.0% after the deploy (27/180), 1.1% before"
    )


def test_a_deploy_without_traffic_before_it_has_insufficient_data(server: Server, bad_rollout: dict[str, str]) -> None:
    service = bad_rollout["service"]
    found = deploy(server, "imp-first", service + "-alone", "1.0", T0)
    assert found["impact"]["verdict"] == "insufficient_data"
    assert found["impact"]["evidence"] == [
        f"{service}-alone served 0 requests before and 0 after the deploy; "
        "at least 50 in each window are needed for a verdict"
    ]


def test_a_steady_service_is_healthy(server: Server) -> None:
    service = "steady-impact"
    sim = ServiceSim(server, service, service_version="3.0")
    for i, at in enumerate(every(T0, 15, 240)):
        sim.request(at, 20 + i % 5, error=("IOError", "disk") if i % 50 == 0 else None)
    sim.close()
    impact = deploy(server, "imp-steady", service, "3.1", T0 + timedelta(minutes=30))["impact"]
    assert impact["verdict"] == "healthy"
    assert impact["before"]["requests"] == impact["after"]["requests"] == 120
    assert impact["new_error_types"] == []
    assert impact["evidence"][0].endswith("no significant rise")


def test_the_rank_test_sees_a_shift_and_not_noise() -> None:
    before = [float(v) for v in range(100, 200)]
    assert mann_whitney_greater(before, [v + 30 for v in before]) < 0.01
    assert mann_whitney_greater(before, before) > 0.4
