"""The real Prometheus Alertmanager (Debian package prometheus-alertmanager) notifies the correlator: one incident
per alert however often it re-notifies, opened at the alert's startsAt and resolved at its endsAt."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from correlator.api.server import Server
from tests.conftest import free_port

ALERTMANAGER = os.environ.get("CORRELATOR_ALERTMANAGER", "/usr/bin/prometheus-alertmanager")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 60) -> Any:
    """Poll until `check` returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def alertmanager(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Alertmanager on loopback whose only receiver is the correlator; re-notifies every 2 s."""
    if shutil.which(ALERTMANAGER) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{ALERTMANAGER} is missing; scripts/test installs the Debian package prometheus-alertmanager")
        pytest.skip(f"{ALERTMANAGER} is not installed (apt-get install prometheus-alertmanager)")
    workdir = tmp_path_factory.mktemp("alertmanager")
    config = workdir / "alertmanager.yml"
    config.write_text(
        f"""
route:
  receiver: correlator
  group_by: ['...']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: correlator
    webhook_configs:
      - url: {server.url()}/api/v1/webhooks/alertmanager
        send_resolved: true
"""
    )
    port = free_port()
    log = (workdir / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            ALERTMANAGER, f"--config.file={config}", f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None  # fail below with the log rather than wait out the deadline

    wait_for("alertmanager to be ready", ready, timeout_s=30)
    assert process.poll() is None, Path(log.name).read_text()
    yield url
    process.terminate()
    process.wait(timeout=30)
    log.close()


def deliveries(server: Server) -> float:
    """How many Alertmanager deliveries the correlator has processed so far."""
    assert server.state is not None
    registry = server.state.metrics.registry
    return sum(
        registry.get_sample_value("correlator_webhook_deliveries_total", {"source": "alertmanager", "outcome": o}) or 0
        for o in ("created", "updated", "duplicate", "ignored")
    )


def incidents_of(api: httpx.Client, service: str) -> list[dict[str, Any]]:
    response = api.get("/api/v1/incidents", params={"service": service, "since": "7d"})
    assert response.status_code == 200, response.text
    return list(response.json()["incidents"])


def test_alerts_open_and_resolve_one_incident_each_at_the_alerts_times(
    server: Server, alertmanager: str, service_name: str
) -> None:
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    alerts = [
        {
            "labels": {"alertname": "HighErrorRate", "service": service_name, "severity": "critical", "shard": str(n)},
            "annotations": {"summary": f"5xx above 5% on shard {n}"},
            "startsAt": iso(starts + timedelta(minutes=n)),
            "generatorURL": "http://prometheus.local/graph",
        }
        for n in (1, 2)
    ]
    with httpx.Client(base_url=server.url(), timeout=30) as api:
        assert httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=10).status_code == 200
        before = deliveries(server)
        # Let Alertmanager re-notify a few times: the incidents must not multiply.
        wait_for("re-notifications", lambda: deliveries(server) >= before + 4)
        opened = incidents_of(api, service_name)
        assert len(opened) == 2
        by_shard = {i["labels"]["shard"]: i for i in opened}
        for n in (1, 2):
            incident = by_shard[str(n)]
            assert incident["status"] == "open"
            assert incident["source"] == "alertmanager"
            assert incident["severity"] == "critical"
            assert incident["opened_at"] == iso(starts + timedelta(minutes=n))
            assert incident["resolved_at"] is None

        # Resolve shard 1 with an end in the past: the incident resolves then, not when the webhook arrives.
        ends = starts + timedelta(minutes=12)
        resolved_alert = {**alerts[0], "endsAt": iso(ends)}
        assert httpx.post(f"{alertmanager}/api/v2/alerts", json=[resolved_alert], timeout=10).status_code == 200

        def shard_one_resolved() -> dict[str, Any] | None:
            found = [i for i in incidents_of(api, service_name) if i["labels"]["shard"] == "1"]
            return found[0] if found and found[0]["status"] == "resolved" else None

        incident = wait_for("the resolved notification", shard_one_resolved)
        assert incident["resolved_at"] == iso(ends)
        assert incident["time_to_resolve_s"] == 11 * 60
        settled = deliveries(server)
        wait_for("more notifications", lambda: deliveries(server) >= settled + 2)
        final = incidents_of(api, service_name)
        assert len(final) == 2
        assert {i["labels"]["shard"]: i["status"] for i in final} == {"1": "resolved", "2": "open"}
        timeline = api.get(f"/api/v1/incidents/{incident['incident_id']}").json()["timeline"]
        kinds = [e["kind"] for e in timeline]
        assert kinds.count("alert_firing") == 1
        assert kinds.count("alert_resolved") == 1
        assert kinds.count("state_change") == 2  # opened, resolved
