"""MTTR and DORA reports over the HTTP API and the CLI, on incidents and deploys with chosen times, and the
headline gauges on /metrics."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from correlator.api.server import Server
from tests.conftest import start_server
from tests.processes import correlator_command

NOW = datetime.now(UTC).replace(microsecond=0)
# A window no other test writes incidents into: reports are over every incident.
SINCE, UNTIL = NOW - timedelta(days=89), NOW - timedelta(days=75)
WINDOW = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def day(n: float, minutes: float = 0) -> datetime:
    return SINCE + timedelta(days=n, minutes=minutes)


@pytest.fixture(scope="module")
def seeded(server: Server) -> dict[str, str]:
    api = server.url() + "/api/v1"

    def incident(service: str, severity: str, opened: datetime, resolved: datetime | None, **extra: Any) -> str:
        body = {"title": "t", "service": service, "severity": severity, "opened_at": iso(opened), **extra}
        incident_id = str(httpx.post(api + "/incidents", json=body).json()["incident_id"])
        if "ack" in extra.get("labels", {}):
            httpx.post(api + f"/incidents/{incident_id}/acknowledge", json={"at": iso(opened + timedelta(minutes=5))})
        if resolved is not None:
            assert httpx.post(api + f"/incidents/{incident_id}/resolve", json={"at": iso(resolved)}).status_code == 200
        return incident_id

    ids = {
        "a": incident("rep-s1", "critical", day(1), day(1, 30), labels={"ack": "yes"}),
        "b": incident("rep-s1", "warning", day(2), day(2, 90)),
        "c": incident("rep-s2", "critical", day(3), day(3, 10), labels={"env": "staging"}),
        "d": incident("rep-s2", "critical", day(4), None),
        "e": incident("rep-s1", "critical", day(13), UNTIL + timedelta(hours=1)),  # resolved after the window
    }

    def deploy(version: str, at: datetime, **extra: Any) -> str:
        body = {"service": "rep-d1", "version": version, "environment": "dora-env", "started_at": iso(at), **extra}
        response = httpx.post(api + "/deploys", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["deploy_id"])

    ids["v1"] = deploy("1", day(1), commit_time=iso(day(1) - timedelta(hours=2)), finished_at=iso(day(1, 10)))
    ids["v2"] = deploy("2", day(3), status="failed")
    ids["v3"] = deploy("3", day(5), commit_time=iso(day(4)), finished_at=iso(day(5, 5)))
    ids["v4"] = deploy("4", day(7))
    ids["v3-again"] = deploy("3", day(8))
    caused = incident("rep-d1", "critical", day(1, 20), day(1, 140), labels={"env": "dora-env"})
    assert httpx.post(api + f"/incidents/{caused}/cause", json={"deploy_id": ids["v1"]}).status_code == 200
    return ids


def report(server: Server, kind: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url()}/api/v1/reports/{kind}", params={**WINDOW, **params}, timeout=60)


def test_mttr_counts_open_incidents_without_averaging_them(server: Server, seeded: dict[str, str]) -> None:
    body = report(server, "mttr").json()
    assert body["incidents"] == 6  # five, and the one caused by rep-d1's deploy
    assert body["open_incidents"] == 2
    # Resolved in the window: 30 min, 90 min, 10 min and 120 min.
    assert body["mttr_s"] == pytest.approx((1800 + 5400 + 600 + 7200) / 4)
    assert body["median_ttr_s"] == pytest.approx((1800 + 5400) / 2)
    assert body["p90_ttr_s"] == pytest.approx(7200)
    assert body["mean_tta_s"] == pytest.approx(300)
    assert body["mean_ttd_s"] is None
    assert body["definition"]["time_to_resolve"] == "resolved_at - opened_at"
    assert body["groups"] == []


def test_mttr_groups_and_exclusions(server: Server, seeded: dict[str, str]) -> None:
    groups = {g["key"]: g for g in report(server, "mttr", group_by="severity").json()["groups"]}
    assert set(groups) == {"critical", "warning"}
    assert groups["critical"]["incidents"] == 5
    assert groups["critical"]["open_incidents"] == 2
    assert groups["critical"]["mttr_s"] == pytest.approx((1800 + 600 + 7200) / 3)
    assert groups["warning"]["median_ttr_s"] == pytest.approx(5400)
    months = report(server, "mttr", group_by="month").json()["groups"]
    assert sum(g["incidents"] for g in months) == 6
    excluded = report(server, "mttr", exclude=[seeded["a"], "label:env=staging"]).json()
    assert excluded["incidents"] == 4
    assert excluded["mttr_s"] == pytest.approx((5400 + 7200) / 2)


def test_mttr_as_csv_and_markdown(server: Server, seeded: dict[str, str]) -> None:
    csv = report(server, "mttr", group_by="service", format="csv")
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0] == "key,incidents,open_incidents,mttr_s,median_ttr_s,p90_ttr_s"
    assert lines[-1] == "total,6,2,3750.0,3600.0,7200.0"
    assert "rep-s2,2,1,600.0,600.0,600.0" in lines
    markdown = report(server, "mttr", format="md").text
    assert "| total | 6 | 2 | 3750.0 | 3600.0 | 7200.0 |" in markdown
    assert "- `time_to_resolve`: resolved_at - opened_at" in markdown


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param({"group_by": "colour"}, "service, severity, team, month", id="group-by"),
        pytest.param({"format": "xml"}, "json, csv, md", id="format"),
        pytest.param({"exclude": "label:nokey"}, "label:<key>=<value>", id="exclude"),
    ],
)
def test_bad_report_parameters_list_the_valid_values(server: Server, params: dict[str, str], message: str) -> None:
    response = report(server, "mttr", **params)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_an_empty_period_is_zeros_and_nulls(server: Server) -> None:
    params = {"since": iso(NOW - timedelta(days=90)), "until": iso(NOW - timedelta(days=89, hours=23))}
    body = httpx.get(f"{server.url()}/api/v1/reports/mttr", params=params).json()
    assert (body["incidents"], body["open_incidents"], body["mttr_s"], body["p90_ttr_s"]) == (0, 0, None, None)
    dora = httpx.get(f"{server.url()}/api/v1/reports/dora", params={**params, "environment": "nowhere"}).json()
    assert (dora["deploys"], dora["change_failure_rate"], dora["lead_time_s"]) == (0, None, None)
    assert dora["bands"] == {k: None for k in dora["bands"]}


def test_dora_keys_and_bands(server: Server, seeded: dict[str, str]) -> None:
    body = report(server, "dora", environment="dora-env").json()
    assert body["deploys"] == 4  # the rollback is not counted
    assert body["deploys_per_day"] == pytest.approx(4 / 14)
    # v2 failed, v4 was rolled back, v1 is named as an incident's cause.
    assert body["failed_deploys"] == 3
    assert body["change_failure_rate"] == pytest.approx(0.75)
    assert body["lead_time_s"] == pytest.approx(((2 * 3600 + 600) + (86400 + 300)) / 2)
    assert body["median_ttr_s"] == pytest.approx(7200)  # only the incident labelled env=dora-env
    assert body["bands"] == {
        "deployment_frequency": "high",
        "lead_time": "elite",
        "change_failure_rate": "low",
        "time_to_restore": "high",
    }


def test_the_report_commands(server: Server, seeded: dict[str, str]) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    base = ["--url", server.url(), "--since", WINDOW["since"], "--until", WINDOW["until"]]
    table = subprocess.run(
        correlator_command("report", "mttr", *base, "--group-by", "severity"),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr
    assert "critical" in table.stdout
    assert "resolved_at - opened_at" in table.stdout
    csv = subprocess.run(
        correlator_command("report", "mttr", *base, "--format", "csv"),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert csv.stdout.splitlines()[-1] == "total,6,2,3750.0,3600.0,7200.0"
    dora = subprocess.run(
        correlator_command("report", "dora", *base, "--environment", "dora-env"),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert dora.returncode == 0, dora.stderr
    assert "75.0% (3 failed)" in dora.stdout
    bad = subprocess.run(
        correlator_command("report", "mttr", *base, "--group-by", "colour"),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "group_by" in bad.stderr


@pytest.fixture
def fresh_server(data_dir: Path) -> Iterator[Server]:
    """A server of its own, so its headline gauges are not cached from another test's scrape."""
    running = start_server(data_dir)
    yield running
    running.stop()


def test_headline_gauges_on_metrics(fresh_server: Server) -> None:
    api = fresh_server.url() + "/api/v1"
    opened = NOW - timedelta(hours=3)
    body = {"title": "t", "service": "gauge-svc", "severity": "Page", "opened_at": iso(opened)}
    assert httpx.post(api + "/incidents", json=body).status_code == 201
    done = httpx.post(api + "/incidents", json={**body, "severity": "low"}).json()["incident_id"]
    httpx.post(api + f"/incidents/{done}/resolve", json={"at": iso(opened + timedelta(minutes=20))})
    httpx.post(api + "/deploys", json={"service": "gauge-svc", "version": "1", "started_at": iso(opened)})
    metrics = httpx.get(fresh_server.url() + "/metrics").text
    assert 'correlator_incidents_active{service="gauge-svc",severity="page"} 1.0' in metrics
    assert 'correlator_mttr_seconds{window="30d"}' in metrics
    assert 'correlator_change_failure_ratio{environment="production",window="30d"}' in metrics
