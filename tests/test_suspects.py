"""Incident analysis inside GET /api/v1/incidents/{id}: the impact start found in telemetry, the suspect deploys
scored with evidence, affected services and exemplars, on scenarios sent through the real SDK with chosen times."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from correlator.api.server import Server
from tests.scenarios import ServiceSim

T = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=4)
STEPS = [T + timedelta(seconds=10 * i) for i in range(6 * 100)]  # every 10 s for 100 minutes


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def post_deploy(server: Server, service: str, version: str, at: datetime) -> str:
    body = {"service": service, "version": version, "started_at": iso(at)}
    response = httpx.post(server.url() + "/api/v1/deploys", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return str(response.json()["deploy_id"])


def declare(server: Server, service: str, opened_at: datetime) -> dict[str, Any]:
    body = {"title": f"{service} errors", "service": service, "opened_at": iso(opened_at)}
    incident_id = httpx.post(server.url() + "/api/v1/incidents", json=body, timeout=30).json()["incident_id"]
    response = httpx.get(server.url() + f"/api/v1/incidents/{incident_id}", timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


Failure = tuple[str, str] | None


def run_chain(
    server: Server, names: tuple[str, str, str], failures: Callable[[int, datetime], tuple[Failure, Failure]]
) -> None:
    """web -> api -> db every 10 s; `failures(i, at)` says how api and db fail on that request."""
    # No service.version in the resource: the deploys of these scenarios are the explicit ones alone.
    web, api, db = (ServiceSim(server, name) for name in names)
    for i, at in enumerate(STEPS):
        api_error, db_error = failures(i, at)

        def api_inside(context: Any, at: datetime = at, db_error: Failure = db_error) -> None:
            api.call(at, db, 5, error=db_error, parent=context)

        web.call(
            at,
            api,
            30 + i % 5,
            error=api_error or (db_error and ("UpstreamError", "db call failed")),
            inside=api_inside,
        )
    for sim in (web, api, db):
        sim.close()


@pytest.fixture(scope="module")
def bad_api_deploy(server: Server) -> dict[str, Any]:
    """api 2.0 at T+60m fails a fifth of its requests with a new KeyError; db and web deploys are healthy."""
    names = ("web-sus-a", "api-sus-a", "db-sus-a")

    def failures(i: int, at: datetime) -> tuple[Failure, Failure]:
        bad = at >= T + timedelta(minutes=60) and i % 5 == 0
        return (("KeyError", f"missing key 'sku' in order {i}") if bad else None), None

    run_chain(server, names, failures)
    deploys = {
        "api 1.0": post_deploy(server, names[1], "1.0", T),
        "db 5.0": post_deploy(server, names[2], "5.0", T + timedelta(minutes=30)),
        "web 3.0": post_deploy(server, names[0], "3.0", T + timedelta(minutes=40)),
        "api 2.0": post_deploy(server, names[1], "2.0", T + timedelta(minutes=60)),
    }
    return {"incident": declare(server, names[1], T + timedelta(minutes=75)), "deploys": deploys, "names": names}


def test_the_bad_deploy_is_the_top_suspect(bad_api_deploy: dict[str, Any]) -> None:
    incident, deploys = bad_api_deploy["incident"], bad_api_deploy["deploys"]
    web, api, _ = bad_api_deploy["names"]
    assert incident["impact_started_at"] == iso(T + timedelta(minutes=60))
    suspects = incident["suspects"]
    top = suspects[0]
    assert top["deploy_id"] == deploys["api 2.0"]
    assert top["relation"] == "same_service"
    assert top["score"] >= 0.5
    assert incident["cause_deploy_id"] == deploys["api 2.0"]
    assert all(s["score"] < 0.5 for s in suspects[1:]), json.dumps(suspects, indent=1)
    assert {s["deploy_id"]: s["relation"] for s in suspects} == {
        deploys["api 2.0"]: "same_service",
        deploys["api 1.0"]: "same_service",
        deploys["db 5.0"]: "downstream",
        deploys["web 3.0"]: "upstream",
    }
    evidence = top["evidence"]
    assert evidence[0] == f"{api} 2.0 started 0 s before the impact began"
    assert any(line.startswith(f"  {api}'s error ratio rose from 0.0% (0/180) to 20.0% (36/180)") for line in evidence)
    assert f"{api} fails with KeyError: missing key <str> in order <n> (36 times), not seen before it" in evidence
    assert incident["affected_services"] == [api, web]
    assert incident["top_errors"][0]["type"] == "KeyError"
    assert 1 <= len(incident["exemplar_trace_ids"]) <= 5


def test_a_failing_dependency_is_found_downstream(server: Server) -> None:
    names = ("web-sus-b", "api-sus-b", "db-sus-b")

    def failures(i: int, at: datetime) -> tuple[Failure, Failure]:
        bad = at >= T + timedelta(minutes=60) and i % 4 == 0
        return None, (("ConnectionError", "too many connections") if bad else None)

    run_chain(server, names, failures)
    db_deploy = post_deploy(server, names[2], "8.1", T + timedelta(minutes=58))
    other = post_deploy(server, "elsewhere-sus-b", "1.0", T + timedelta(minutes=59))
    incident = declare(server, names[1], T + timedelta(minutes=70))
    suspects = incident["suspects"]
    assert suspects[0]["deploy_id"] == db_deploy
    assert suspects[0]["relation"] == "downstream"
    assert suspects[0]["score"] >= 0.5
    assert other not in {s["deploy_id"] for s in suspects}  # unrelated services are no candidates
    assert incident["impact_started_at"] == iso(T + timedelta(minutes=60))
    assert f"{names[1]} depends on {names[2]} (directly or through other services)" in suspects[0]["evidence"]


def test_when_nothing_changed_no_suspect_scores_high(server: Server) -> None:
    names = ("web-sus-c", "api-sus-c", "db-sus-c")

    def failures(i: int, at: datetime) -> tuple[Failure, Failure]:
        bad = at >= T + timedelta(minutes=60) and i % 5 == 0
        return (("TimeoutError", "upstream timed out") if bad else None), None

    run_chain(server, names, failures)
    healthy = post_deploy(server, names[1], "4.2", T + timedelta(minutes=10))
    incident = declare(server, names[1], T + timedelta(minutes=75))
    assert [s["deploy_id"] for s in incident["suspects"]] == [healthy]
    assert incident["suspects"][0]["score"] < 0.5
    assert incident["cause_deploy_id"] is None
    assert f"{names[1]} stayed healthy after the deploy" in incident["suspects"][0]["evidence"]


def test_the_analysis_is_stored_and_lists_read_it(server: Server, bad_api_deploy: dict[str, Any]) -> None:
    incident = bad_api_deploy["incident"]
    listed = httpx.get(
        server.url() + "/api/v1/incidents", params={"service": bad_api_deploy["names"][1], "since": "1d"}, timeout=30
    ).json()["incidents"]
    assert [(i["incident_id"], i["cause_deploy_id"], i["impact_started_at"]) for i in listed] == [
        (incident["incident_id"], incident["cause_deploy_id"], incident["impact_started_at"])
    ]


def test_an_incident_open_for_weeks_reads_the_topology_around_its_impact_only(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refreshed every few seconds while open, an old incident must not read weeks of calls each time."""
    import correlator.service.analysis as analysis

    windows: list[timedelta] = []
    real = analysis.service_topology

    def recording(store: Any, since: datetime, until: datetime, now: datetime | None = None) -> Any:
        windows.append(until - since)
        return real(store, since, until, now)

    monkeypatch.setattr(analysis, "service_topology", recording)
    declare(server, "api-sus-old", datetime.now(UTC) - timedelta(days=21))
    assert windows, "the analysis read no topology"
    rules = analysis.SuspectRules()
    assert max(windows) <= rules.lookback + analysis.RELATIONS_AFTER


def test_a_refresh_adds_the_callers_failing_since_the_last_one_reading_only_since_then(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failing callers are read from CALLS_SLACK before the last computation on and added to what it found."""
    import correlator.service.analysis as analysis
    from correlator.store import analysis_queries

    assert server.state is not None
    analyses = server.state.analyses
    reads: list[datetime] = []
    real = analysis_queries.failing_callers

    def recording(store: Any, services: Any, since: datetime, until: datetime) -> list[str]:
        if "shop-calls" in services:  # the session's server also refreshes other tests' open incidents meanwhile
            reads.append(since)
        return real(store, services, since, until)

    monkeypatch.setattr(analysis_queries, "failing_callers", recording)
    now = datetime.now(UTC).replace(microsecond=0)
    shop, early = ServiceSim(server, "shop-calls"), ServiceSim(server, "early-calls")
    for i in range(20):
        early.call(now - timedelta(minutes=25, seconds=-10 * i), shop, 20, error=("Timeout", "shop timed out"))
    early.close()
    shop.close()
    incident = declare(server, "shop-calls", now - timedelta(minutes=20))
    first = analyses.stored([incident["incident_id"]])[incident["incident_id"]]
    assert incident["affected_services"] == ["shop-calls", "early-calls"]
    assert reads == [now - timedelta(minutes=20) - analysis.DEFAULT_IMPACT]  # no impact start: the half hour before

    shop, late = ServiceSim(server, "shop-calls"), ServiceSim(server, "late-calls")
    for i in range(5):
        late.call(now - timedelta(seconds=30 - 5 * i), shop, 20, error=("Timeout", "shop timed out"))
    late.close()
    shop.close()
    reads.clear()
    monkeypatch.setattr(analysis, "REFRESH_EVERY", timedelta(0))
    view = analyses.detail(incident["incident_id"])
    assert view.analysis is not None
    assert view.analysis.affected_services == ["shop-calls", "early-calls", "late-calls"]
    # From the last computation on, never from the impact start again (the background pass may have refreshed
    # it first, from the same point, and the read then went on from that refresh).
    assert reads[0] == first.computed_at - analysis.CALLS_SLACK
    assert all(since >= reads[0] for since in reads)


def test_the_background_refresh_comes_less_often_as_an_incident_ages() -> None:
    from correlator.model import Incident, IncidentAnalysis
    from correlator.service.analysis import _due

    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def due(opened_ago: timedelta, computed_ago: timedelta, *, resolved: bool = False, frozen: bool = False) -> bool:
        incident = Incident(
            "i", "t", "svc", "resolved" if resolved else "open", "manual", now - opened_ago,
            resolved_at=now - timedelta(minutes=1) if resolved else None,
        )  # fmt: skip
        analysis = IncidentAnalysis(
            "i", "svc", None, "none", [], None, None, ["svc"], [], [], now - computed_ago, frozen
        )
        return _due(incident, analysis, now)

    # Due at a sixtieth of the incident's age, and never more often than every 15 s.
    assert due(timedelta(minutes=5), timedelta(seconds=15))
    assert not due(timedelta(minutes=5), timedelta(seconds=14))
    assert due(timedelta(hours=1), timedelta(minutes=1))
    assert not due(timedelta(hours=1), timedelta(seconds=59))
    assert due(timedelta(hours=10), timedelta(minutes=10))
    assert not due(timedelta(hours=10), timedelta(minutes=9))
    assert due(timedelta(hours=10), timedelta(seconds=15), resolved=True)  # resolved: every 15 s until frozen
    assert not due(timedelta(hours=10), timedelta(hours=1), frozen=True)
    assert _due(Incident("i", "t", "svc", "open", "manual", now), None, now)
